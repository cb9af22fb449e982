"""Decision curves, conformal intervals, the sample-size criteria and the TRIPOD+AI card."""

from __future__ import annotations

import numpy as np
import pytest

from model_runtime.intervals import change_intervals, fit_conformal
from training import decision
from training.sample_size import minimum_sample_size


def test_a_perfectly_calibrated_model_never_has_less_net_benefit_than_treat_none():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 5000)
    # the expected curve of a calibrated model: the event's probability is p itself
    nb = decision.net_benefit(p, p)
    assert (nb >= -1e-12).all()
    # and on outcomes drawn from it, within sampling noise
    y = (rng.uniform(0, 1, len(p)) < p).astype(float)
    assert (decision.net_benefit(y, p) >= -0.02).all()


def test_net_benefit_of_known_cases():
    ev = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    t = np.array([0.5])
    # acts on 3 people: 2 true, 1 false positive at odds 1
    assert decision.net_benefit(ev, p, t)[0] == pytest.approx(2 / 10 - 1 / 10)
    assert decision.treat_all(ev, t)[0] == pytest.approx(0.2 - 0.8)


def test_cutoffs_sit_above_the_noise_floor_and_where_the_model_helps():
    rng = np.random.default_rng(1)
    p = rng.beta(2, 5, 20000)
    y = np.where(rng.uniform(size=len(p)) < p, 2, 0)
    cut, reason = decision.choose_cutoffs(y, p, floor=0.25, default=(0.2, 0.35))
    assert cut["moderate"] >= 0.30 - 1e-9 and cut["high"] >= 0.40 - 1e-9 and cut["high"] > cut["moderate"]
    assert "noise alone" in reason
    noise = rng.uniform(size=len(p))  # a useless model: no threshold earns anything, the fallback says so
    cut2, reason2 = decision.choose_cutoffs(y, noise * 0 + 0.3, floor=0.25, default=(0.2, 0.35))
    assert "little decision value" in reason2 and cut2["moderate"] >= 0.30


def test_conformal_intervals_cover_by_group_and_fall_back_for_small_groups():
    rng = np.random.default_rng(2)
    n = 20000
    groups = rng.choice(["a", "b"], size=n)
    mu, sd = rng.normal(0, 10, n), np.where(groups == "a", 10.0, 25.0)
    y = mu + sd * rng.standard_t(5, n) * 0.6  # heavy tails, a spread of its own per group
    conf = fit_conformal(y[: n // 2], mu[: n // 2], np.full(n // 2, 15.0), groups[: n // 2])
    iv = change_intervals(conf, mu[n // 2:], np.full(n - n // 2, 15.0), list(groups[n // 2:]) )
    for level in ("80", "90"):
        inside = (y[n // 2:] >= iv[level][:, 0]) & (y[n // 2:] <= iv[level][:, 1])
        for g in ("a", "b"):  # Mondrian: coverage within each group although the spread differs
            assert abs(inside[groups[n // 2:] == g].mean() - int(level) / 100) < 0.02
    unknown = change_intervals(conf, np.zeros(2), np.full(2, 15.0), [None, "c"])
    assert np.allclose(unknown["90"][0], unknown["90"][1])  # everyone's quantiles for unknown groups


def test_sample_size_criteria():
    small = minimum_sample_size(("age_years", "sex"), r2=0.3)
    big = minimum_sample_size(("age_years", "sex", "cpm_pct", "pcs_total", "pain_condition"), r2=0.1)
    assert small.parameters == 5 and big.parameters == 4 + 1 + 4 + 4 + 4
    assert big.minimum > small.minimum and big.minimum == max(big.shrinkage_n, big.optimism_n, big.residual_sd_n, big.mean_n)
    assert "FEWER than needed" in big.text(100) and "enough" in small.text(100000)
