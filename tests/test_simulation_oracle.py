"""The exact oracle: calibration, exactness, discrimination, directions of effect, and
use on any contract-valid predictor frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from scipy.stats import kstest

from data_contracts.fields import BY_NAME, OPTIONAL_PREDICTORS, PREDICTORS, RESPONSES
from data_contracts.labels import eih_pct, response_codes
from simulation import oracle_probabilities, simulate
from simulation.calibration import auroc_macro
from simulation.cohort import cohort_frame, draw, observed_of, site_effect_rows
from simulation.oracle import oracle_moments, predictive

P_COLUMNS = [f"p_{r}" for r in RESPONSES]
SITE_COLUMNS = [f"p_site_{r}" for r in RESPONSES]
HYPO, NO_CHANGE, HYPER = 0, 1, 2


@pytest.fixture(scope="module")
def big():
    cohort, oracle = simulate(60_000, seed=17, n_sites=3)
    return cohort, oracle[SITE_COLUMNS].to_numpy(), response_codes(eih_pct(cohort))


@pytest.fixture(scope="module")
def small():
    cohort, _ = simulate(400, seed=23, n_sites=4)
    return cohort


def test_site_oracle_is_calibrated_in_bins(big):
    _, P, y = big
    for k, name in enumerate(RESPONSES):
        edges = np.quantile(P[:, k], np.linspace(0, 1, 11))
        bins = np.clip(np.searchsorted(edges, P[:, k], side="right") - 1, 0, 9)
        for b in range(10):
            sel = bins == b
            pred, obs = P[sel, k].mean(), np.mean(y[sel] == k)
            se = np.sqrt(max(pred * (1 - pred), 1e-4) / sel.sum())
            assert abs(pred - obs) < max(0.015, 4 * se), (name, b, pred, obs)


def test_oracle_macro_auroc_is_realistic(big):
    _, P, y = big
    auc = auroc_macro(y, P)
    assert 0.65 <= auc <= 0.80, auc


def test_predictive_distribution_is_exact():
    """The probability integral transform of every simulated eih_pct under the oracle's
    predictive mixture at the row's site is uniform: the oracle is the exact conditional
    law, including rows whose mechanism or optional values are missing."""
    d, sites = draw(120_000, seed=31, n_sites=2)
    obs = observed_of(d)
    pred = predictive(obs, site=site_effect_rows(d.site, sites))
    e = eih_pct(cohort_frame(d, sites)).to_numpy()
    pit = (pred.weights * ndtr((e[:, None] - pred.means) / pred.sd[:, None])).sum(axis=1)
    assert kstest(pit, "uniform").statistic < 0.006
    missing_mech = (obs.mech < 0) & (d.x.cond != BY_NAME["pain_condition"].categories.index("pain_free"))
    assert missing_mech.sum() > 10_000
    assert kstest(pit[missing_mech], "uniform").statistic < 0.015
    z = (e - pred.mean()) / np.sqrt(pred.var())
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.02


def test_mean_and_variance_helpers(small):
    m, v = oracle_moments(small)
    assert m.shape == v.shape == (len(small),)
    assert (v > 0).all() and np.isfinite(m).all()


def test_rows_sum_to_one_and_threshold_moves_mass(small):
    p10 = oracle_probabilities(small)
    p20 = oracle_probabilities(small, threshold_pct=20.0)
    np.testing.assert_allclose(p10.sum(axis=1), 1.0, atol=1e-12)
    assert (p20[:, NO_CHANGE] >= p10[:, NO_CHANGE] - 1e-12).all()
    assert (p20[:, HYPO] <= p10[:, HYPO] + 1e-12).all()
    with pytest.raises(ValueError):
        oracle_probabilities(small, threshold_pct=0)


def test_any_contract_frame_strings_and_absent_optional_columns(small):
    p = oracle_probabilities(small)
    as_strings = small.copy()
    for name in PREDICTORS:
        if BY_NAME[name].kind == "category":
            as_strings[name] = as_strings[name].astype(object).where(as_strings[name].notna(), None)
    np.testing.assert_array_equal(oracle_probabilities(as_strings), p)
    # predictors only, optional columns dropped entirely: still a valid distribution
    bare = small[[c for c in PREDICTORS if c not in OPTIONAL_PREDICTORS]]
    pb = oracle_probabilities(bare)
    assert pb.shape == (len(small), 3)
    np.testing.assert_allclose(pb.sum(axis=1), 1.0, atol=1e-12)
    # dropping columns equals setting them missing
    blank = small.copy()
    for name in OPTIONAL_PREDICTORS:
        blank[name] = None if BY_NAME[name].kind == "category" else np.nan
    np.testing.assert_allclose(oracle_probabilities(blank), pb, atol=1e-12)
    # a hand-written one-row frame
    one = pd.DataFrame([{
        "age_years": 52, "sex": "female", "pain_condition": "fibromyalgia", "pain_duration_months": 120,
        "pain_intensity_nrs": 7, "ppt_baseline_kpa": 180, "cpm_pct": -5, "pcs_total": 38, "tsk17_total": 44,
        "pseq_total": 15, "exercise_modality": "hiit", "exercise_intensity_pct": 95, "exercise_duration_min": 20,
        "csi_score": 70, "bdnf_ng_ml": 2.1, "bdnf_matrix": "plasma",
    }])
    p1 = oracle_probabilities(one)
    assert p1.shape == (1, 3) and p1[0, HYPER] > p1[0, HYPO]


def test_missing_required_field_is_an_error(small):
    with pytest.raises(ValueError, match="cpm_pct"):
        oracle_probabilities(small.drop(columns=["cpm_pct"]))
    bad = small.copy()
    bad.loc[bad.index[0], "pain_condition"] = None
    with pytest.raises(ValueError, match="pain_condition"):
        oracle_probabilities(bad)


# --- directions of effect -----------------------------------------------------------------

DIRECTIONS = [  # field, class index, grid: P(class) must never fall as the field rises
    ("cpm_pct", HYPO, np.linspace(-100, 300, 41)),
    ("pseq_total", HYPO, np.arange(0, 61, 3.0)),
    ("csi_score", HYPER, np.linspace(0.0, 100.0, 41)),
    ("pcs_total", HYPER, np.arange(0, 53, 2.0)),
]


@pytest.fixture(scope="module")
def stress_frame():
    """Simulated people with extra random masking and random protocols over the whole
    contract range (including the extremes)."""
    rng = np.random.default_rng(0)
    c, _ = simulate(2500, seed=41, n_sites=4)
    for name in OPTIONAL_PREDICTORS:
        f = BY_NAME[name]
        if f.kind == "number" and name != "bdnf_ng_ml":
            c.loc[rng.random(len(c)) < 0.3, name] = np.nan
    c.loc[rng.random(len(c)) < 0.5, "pain_mechanism"] = None
    mods = list(BY_NAME["exercise_modality"].categories)
    c["exercise_modality"] = pd.Categorical(rng.choice(mods, len(c)), categories=mods)
    c["exercise_intensity_pct"] = rng.uniform(10, 100, len(c))
    c["exercise_duration_min"] = rng.uniform(1, 120, len(c))
    return c


@pytest.mark.parametrize("field,k,grid", DIRECTIONS, ids=[d[0] for d in DIRECTIONS])
def test_directions_of_effect_on_a_grid(stress_frame, field, k, grid):
    prev = None
    for v in grid:
        p = oracle_probabilities(stress_frame.assign(**{field: v}))[:, k]
        if prev is not None:
            assert (p >= prev - 1e-12).all(), (field, v, float((p - prev).min()))
        prev = p


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    row=st.integers(0, 399),
    which=st.sampled_from(range(len(DIRECTIONS))),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    mask=st.lists(st.booleans(), min_size=len(OPTIONAL_PREDICTORS), max_size=len(OPTIONAL_PREDICTORS)),
    modality=st.sampled_from(BY_NAME["exercise_modality"].categories),
    intensity=st.floats(10, 100),
    duration=st.floats(1, 120),
)
def test_directions_of_effect_property(small, row, which, a, b, mask, modality, intensity, duration):
    field, k, grid = DIRECTIONS[which]
    lo, hi = sorted((a, b))
    f = BY_NAME[field]
    x = small.iloc[[row]].copy()
    for name, drop in zip(OPTIONAL_PREDICTORS, mask):
        if drop and name != field:
            x[name] = None if BY_NAME[name].kind == "category" else np.nan
    x["exercise_modality"] = pd.Categorical([modality], categories=list(BY_NAME["exercise_modality"].categories))
    x["exercise_intensity_pct"] = intensity
    x["exercise_duration_min"] = duration
    v_lo = f.min + lo * (f.max - f.min)
    v_hi = f.min + hi * (f.max - f.min)
    p_lo = oracle_probabilities(x.assign(**{field: v_lo}))[0, k]
    p_hi = oracle_probabilities(x.assign(**{field: v_hi}))[0, k]
    assert p_hi >= p_lo - 1e-12


def test_sensitized_people_show_an_inverted_u_with_intensity():
    """Aerobic dose in a sensitized person: EIH rises from low to moderate intensity and
    falls again at very high intensity; in a pain-free person it keeps rising."""
    base = {
        "age_years": 45, "sex": "female", "pain_duration_months": 60, "pcs_total": 30, "tsk17_total": 42,
        "pseq_total": 20, "exercise_modality": "aerobic", "exercise_duration_min": 30,
    }
    sensitized = {**base, "pain_condition": "chronic_low_back_pain", "pain_mechanism": "nociplastic",
                  "pain_intensity_nrs": 7, "ppt_baseline_kpa": 300, "cpm_pct": 5, "csi_score": 55}
    healthy = {**base, "pain_condition": "pain_free", "pain_mechanism": "none", "pain_duration_months": 0,
               "pain_intensity_nrs": 0, "ppt_baseline_kpa": 450, "cpm_pct": 30, "pcs_total": 8,
               "tsk17_total": 30, "pseq_total": 55}
    grid = [40, 55, 70, 80, 90, 100]

    def mean_at(person):
        frame = pd.DataFrame([{**person, "exercise_intensity_pct": i} for i in grid])
        return oracle_moments(frame)[0]

    m = mean_at(sensitized)
    top = int(np.argmax(m))
    assert 0 < top < len(grid) - 1, m
    assert m[-1] < m[top] - 1.0
    h = mean_at(healthy)
    assert np.all(np.diff(h) >= -1e-9), h


def test_dose_thresholds_for_aerobic_exercise():
    person = {
        "age_years": 30, "sex": "male", "pain_condition": "pain_free", "pain_duration_months": 0,
        "pain_intensity_nrs": 0, "ppt_baseline_kpa": 500, "cpm_pct": 30, "pcs_total": 6, "tsk17_total": 30,
        "pseq_total": 55, "exercise_modality": "aerobic",
    }
    frame = pd.DataFrame([
        {**person, "exercise_intensity_pct": 69, "exercise_duration_min": 30},  # 50 % VO2max (Swain 1994)
        {**person, "exercise_intensity_pct": 85, "exercise_duration_min": 8},  # shorter than 10 min
        {**person, "exercise_intensity_pct": 85, "exercise_duration_min": 30},  # 75 % VO2max
    ])
    m = oracle_moments(frame)[0]
    assert abs(m[0]) < 3 and abs(m[1]) < 3 and m[2] > 8


def test_modalities_ranked_in_pain_free_people():
    person = {
        "age_years": 30, "sex": "female", "pain_condition": "pain_free", "pain_duration_months": 0,
        "pain_intensity_nrs": 0, "ppt_baseline_kpa": 420, "cpm_pct": 28, "pcs_total": 8, "tsk17_total": 31,
        "pseq_total": 54,
    }
    frame = pd.DataFrame([
        {**person, "exercise_modality": "isometric", "exercise_intensity_pct": 40, "exercise_duration_min": 3},
        {**person, "exercise_modality": "dynamic_resistance", "exercise_intensity_pct": 50, "exercise_duration_min": 15},
        {**person, "exercise_modality": "aerobic", "exercise_intensity_pct": 80, "exercise_duration_min": 30},
    ])
    m = oracle_moments(frame)[0]
    assert m[0] > m[1] > m[2] > 0


def test_biomarkers_are_weak(small):
    """Moving a biomarker across its typical range (about +/- 1 SD) moves P(hypoalgesia)
    far less than moving CPM across its typical range, at a common aerobic bout."""
    x = small.assign(bdnf_matrix="serum", exercise_intensity_pct=80.0, exercise_duration_min=30.0)
    x["exercise_modality"] = pd.Categorical(["aerobic"] * len(x), categories=list(BY_NAME["exercise_modality"].categories))

    def spread(field, lo, hi):
        return np.abs(oracle_probabilities(x.assign(**{field: hi}))[:, HYPO]
                      - oracle_probabilities(x.assign(**{field: lo}))[:, HYPO]).mean()

    cpm = spread("cpm_pct", -5.0, 45.0)
    assert cpm > 0.03
    for field, lo, hi in (("bdnf_ng_ml", 24.0, 41.0), ("il6_pg_ml", 1.2, 4.0), ("lactate_mmol_l", 2.0, 4.0)):
        assert spread(field, lo, hi) < cpm / 3, field


def test_younger_adults_show_more_eih(small):
    young = oracle_probabilities(small.assign(age_years=25.0))[:, HYPO]
    old = oracle_probabilities(small.assign(age_years=75.0))[:, HYPO]
    assert (young >= old - 1e-12).all() and young.mean() > old.mean()
