"""Worlds: open parameters drawn from wide priors; exact oracle within a world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from data_contracts.labels import eih_pct
from eih.cli import app
from simulation import model as M
from simulation import oracle_probabilities, simulate
from simulation.cohort import cohort_frame, draw, observed_of, site_effect_rows
from simulation.oracle import physiology
from simulation.world import world


def test_world_zero_is_the_central_world_and_others_differ():
    w0 = world(0)
    np.testing.assert_array_equal(w0.gain, M.GAIN)
    np.testing.assert_array_equal(w0.load, M.LOADSENS)
    hiit = [world(w).gain[M.MOD.index("hiit")] for w in range(20)]
    mind = [world(w).gain[M.MOD.index("mind_body")] for w in range(20)]
    assert np.ptp(hiit) > 10 and np.ptp(mind) > 5
    for w in range(20):  # modalities with data are the same in every world
        for mod in ("aerobic", "isometric", "dynamic_resistance"):
            k = M.MOD.index(mod)
            assert world(w).gain[k] == M.GAIN[k] and world(w).load[k] == M.LOADSENS[k]
        assert (world(w).gain >= 0).all() and (world(w).load >= 0).all()
    assert world(3) == world(3)


def test_no_extra_noise_for_modalities_without_data():
    """Ignorance about HIIT's mean is a world parameter, not bout noise: the unexplained
    bout-to-bout SD is the same for every modality."""
    d, _ = draw(4000, seed=9)
    sigma = M.outcome_terms(d.x).sigma
    assert len(np.unique(d.x.mod)) == 5 and np.allclose(sigma, sigma[0])


@pytest.mark.parametrize("w", [1, 3])
def test_oracle_is_exact_within_a_world(w):
    d, sites = draw(60_000, seed=51, n_sites=2, world=w)
    phys = physiology(observed_of(d), world=world(w))
    e = eih_pct(cohort_frame(d, sites)).to_numpy()
    assert kstest(phys.at(site_effect_rows(d.site, sites)).cdf(e), "uniform").statistic < 0.008
    hiit = d.x.mod == M.MOD.index("hiit")
    wrong = physiology(observed_of(d), world=world(0)).at(site_effect_rows(d.site, sites)).cdf(e)
    right = phys.at(site_effect_rows(d.site, sites)).cdf(e)
    assert kstest(right[hiit], "uniform").statistic < kstest(wrong[hiit], "uniform").statistic


def test_simulate_world_argument_and_oracle_file():
    c, o = simulate(2000, seed=2, world=4)
    np.testing.assert_allclose(o.iloc[:, 1:4].to_numpy(), oracle_probabilities(c, world=4), atol=1e-12)
    with pytest.raises(ValueError):
        simulate(10, seed=1, world=-1)


def test_cli_world(cli_runner, tmp_path):
    out = tmp_path / "c.parquet"
    r = cli_runner.invoke(app, ["simulate", "--n", "500", "--seed", "1", "--out", str(out), "--world", "2"])
    assert r.exit_code == 0 and "world 2" in r.output
    r = cli_runner.invoke(app, ["simulate", "--n", "500", "--seed", "1", "--out", str(out), "--world", "-1"])
    assert r.exit_code == 2 and "--world must be at least 0" in r.output
