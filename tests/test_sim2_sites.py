"""Site effects: sites differ in algometer scale and noise, re-test delay and mean response;
the oracle is exact at each site (p_site_*) and for a person at a new site (p_*)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, kstest

from data_contracts.fields import RESPONSES
from data_contracts.labels import eih_pct, response_codes
from simulation import params as P
from simulation import simulate
from simulation.cohort import cohort_frame, draw, observed_of, site_effect_rows, sites_for
from simulation.oracle import physiology
from simulation.sites import PROFILES, REFERENCE

P_COLUMNS = [f"p_{r}" for r in RESPONSES]
SITE_COLUMNS = [f"p_site_{r}" for r in RESPONSES]


def test_one_site_is_the_reference_site_and_several_sites_draw_effects():
    (only,) = sites_for(1, 3)
    assert only.effect == REFERENCE and only.profile == -1
    sites = sites_for(2 * P.SITE_PROFILES, 3)
    assert sorted(s.profile for s in sites[: P.SITE_PROFILES]) == list(range(P.SITE_PROFILES))
    fades = np.array([float(s.effect.fade) for s in sites])
    assert fades.max() - fades.min() > 0.3  # delays differ enough to matter
    assert np.std([s.effect.shift for s in sites]) > 0.03
    lo, hi = P.SITE_LOG_SCALE
    assert PROFILES[:, 0].min() >= lo and PROFILES[:, 0].max() <= hi


def test_cohort_site_column_names_every_site():
    cohort, oracle = simulate(4000, seed=2, n_sites=5)
    assert cohort["site"].notna().all()
    assert sorted(cohort["site"].unique()) == [f"site_{k:02d}" for k in range(1, 6)]
    assert list(oracle.columns) == ["subject_id", *P_COLUMNS, *SITE_COLUMNS]


def _pit_and_classes(n, n_sites, seed):
    d, sites = draw(n, seed=seed, n_sites=n_sites)
    phys = physiology(observed_of(d))
    e = eih_pct(cohort_frame(d, sites)).to_numpy()
    at_site = phys.at(site_effect_rows(d.site, sites))
    return d, e, at_site, phys.new_site()


def _chi2_p(y, P_):
    """Chi-square of the class counts against the summed oracle probabilities."""
    obs = np.bincount(y, minlength=3)
    exp = P_.sum(axis=0)
    return float(chi2.sf(np.sum((obs - exp) ** 2 / exp), df=2))


def test_site_oracle_is_exact_within_each_site():
    d, e, at_site, _ = _pit_and_classes(60_000, 3, 41)
    pit = at_site.cdf(e)
    assert kstest(pit, "uniform").statistic < 0.008
    y = response_codes(e)
    Pc = at_site.class_probabilities()
    for s in np.unique(d.site):
        sel = d.site == s
        assert kstest(pit[sel], "uniform").statistic < 0.015, s
        assert _chi2_p(y[sel], Pc[sel]) > 1e-3, s


def test_new_site_oracle_is_exact_across_many_sites():
    """Over many sites, each drawn from the site prior, the new-site law is exact; at a
    handful of sites it is not (their effects are one draw each), which is why the oracle
    file also carries p_site_*."""
    _, e, _, new = _pit_and_classes(100_000, 1000, 43)
    assert kstest(new.cdf(e), "uniform").statistic < 0.006
    assert _chi2_p(response_codes(e), new.class_probabilities()) > 1e-3
    _, e, _, new = _pit_and_classes(60_000, 2, 44)
    assert kstest(new.cdf(e), "uniform").statistic > 0.01


def test_sites_shift_the_mean_response_after_case_mix():
    """A model trained at some sites meets a different mean at another: the observed mean
    minus the reference-site truth of the same people differs between sites."""
    from simulation.calibration import calibration_report

    cohort, _ = simulate(20_000, seed=4, n_sites=8)
    row = {t["id"]: t for t in calibration_report(cohort)["targets"]}["17"]
    assert row["passed"] is True and row["value"] > 1.0


@pytest.mark.parametrize("seed", [5, 7, 11])
def test_site_oracle_file_matches_outcomes_by_site(seed):
    cohort, oracle = simulate(20_000, seed=seed, n_sites=4)
    y = response_codes(eih_pct(cohort))
    Ps = oracle[SITE_COLUMNS].to_numpy()
    for _, idx in cohort.groupby("site").indices.items():
        assert _chi2_p(y[idx], Ps[idx]) > 1e-4
    # the new-site columns are the same for every site label (they never read it)
    assert np.isfinite(oracle[P_COLUMNS].to_numpy()).all()
    pd.testing.assert_series_equal(oracle["subject_id"], cohort["subject_id"], check_names=False)
