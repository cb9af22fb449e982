"""Intensity units: the contract records aerobic intensity in % HRmax, Hoffman's thresholds
are in % VO2max; the simulator and the derived dose feature convert with the same numbers
(Swain et al. 1994)."""

from __future__ import annotations

import numpy as np
import pytest

from features import derived as D
from simulation import model as M
from simulation import params as P


def test_the_two_copies_of_the_conversion_agree():
    assert D.SWAIN_SLOPE == P.SWAIN_SLOPE and D.SWAIN_INTERCEPT == P.SWAIN_INTERCEPT
    assert D.AEROBIC_VO2_ONSET == P.AEROBIC_VO2_ONSET and D.AEROBIC_VO2_FULL == P.AEROBIC_VO2_FULL
    grid = np.linspace(10, 100, 91)
    np.testing.assert_array_equal(D.vo2max_from_hrmax(grid), P.vo2max_from_hrmax(grid))
    np.testing.assert_allclose(P.hrmax_from_vo2max(P.vo2max_from_hrmax(grid)), grid)


@pytest.mark.parametrize("vo2, hrmax", [(50, 69.0), (75, 85.0)])
def test_swain_anchor_points(vo2, hrmax):
    assert P.hrmax_from_vo2max(vo2) == pytest.approx(hrmax)


def test_simulator_and_feature_share_the_aerobic_thresholds():
    """Where the simulator's aerobic gain is zero the derived dose is zero, and where the
    gain reaches its 75 % VO2max level the dose is 1, over a grid of % HRmax at 30 min."""
    grid = np.arange(40.0, 100.01, 0.5)
    aer = np.full(len(grid), M.MOD.index("aerobic"))
    G, _, _ = M.protocol_terms(aer, grid, np.full(len(grid), 30.0))
    dose = D.DERIVED[D.EXERCISE_DOSE].compute({
        "exercise_modality": aer.astype(float), "exercise_intensity_pct": grid,
        "exercise_duration_min": np.full(len(grid), 30.0)})
    np.testing.assert_array_equal(G == 0, dose == 0)
    full = G >= M.GAIN[M.MOD.index("aerobic")] - 1e-9
    np.testing.assert_array_equal(full, dose == 1)
    assert grid[G == 0].max() == 69.0 and grid[full].min() == 85.0


def test_the_load_feature_is_the_simulators_load_shape():
    """With every modality's load magnitude set to 1 the simulator's load sensitivity H is the
    derived load share exactly, over a grid of intensity and duration for each modality."""
    from simulation.world import World

    unit = World(index=-1, gain=M.GAIN.copy(), load=np.ones(len(M.MOD)), r_male=0.0)
    inten, dur = np.meshgrid(np.arange(10.0, 100.01, 2.5), np.arange(1.0, 60.01, 1.0))
    inten, dur = inten.ravel(), dur.ravel()
    assert D.AEROBIC_LOAD_VO2 == P.AEROBIC_LOAD_VO2
    for code, name in enumerate(M.MOD):
        mod = np.full(len(inten), code)
        _, H, _ = M.protocol_terms(mod, inten, dur, unit)
        load = D.DERIVED[D.EXERCISE_LOAD].compute({
            "exercise_modality": mod.astype(float), "exercise_intensity_pct": inten, "exercise_duration_min": dur})
        np.testing.assert_allclose(load, H, rtol=0, atol=1e-12, err_msg=name)
        assert 0.0 <= load.min() and load.max() == pytest.approx(1.0), name
