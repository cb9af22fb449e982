"""Unit tests of the training building blocks: metrics, calibration, splits, baselines,
feature pipeline, model runtime (no MLflow, no simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import PREDICTORS
from data_contracts.labels import response_codes
from features.pipeline import ContractFeatures, LinearDesign
from features.reference import build_reference, psi
from model_runtime.links import softmax
from model_runtime.metadata import ContractVersionError, ModelMeta
from model_runtime.predictor import EIHPredictor
from training import baselines, metrics, tune
from training.config import TrainConfig, load_config
from training.split import cv_folds, holdout_split


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = dict(EXAMPLE_RECORD)
        r["subject_id"] = f"S{i}"
        r["cpm_pct"] = float(rng.normal(10, 20))
        r["pcs_total"] = float(rng.integers(0, 53))
        r["exercise_modality"] = ["aerobic", "isometric", "hiit"][i % 3]
        rows.append(r)
    return pd.DataFrame(rows)


# ---- metrics -------------------------------------------------------------------------
def test_log_loss_and_brier_known_values():
    y = np.array([0, 1, 2])
    P = np.full((3, 3), 1 / 3)
    assert metrics.log_loss(y, P) == pytest.approx(np.log(3))
    assert metrics.brier(y, P) == pytest.approx((2 / 3) ** 2 + 2 * (1 / 3) ** 2)
    perfect = np.eye(3)[y]
    assert metrics.log_loss(y, perfect) == pytest.approx(0.0, abs=1e-12)
    assert metrics.brier(y, perfect) == 0.0


def test_ece_is_small_for_calibrated_and_large_for_overconfident():
    rng = np.random.default_rng(0)
    P = rng.dirichlet([2, 2, 2], size=20000)
    y = np.array([rng.choice(3, p=p) for p in P])
    assert metrics.ece(y, P) < 0.02
    sharp = softmax(np.log(P) * 3)
    assert metrics.ece(y, sharp) > 0.05


def test_auroc_and_balanced_accuracy_directions():
    y = np.array([0, 0, 1, 1, 2, 2])
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    assert metrics.auroc_macro(y, good) == 1.0
    assert metrics.balanced_accuracy(y, good) == 1.0
    assert metrics.auroc_macro(y, good[:, [1, 2, 0]]) < 0.5


def test_calibration_slope_is_one_for_calibrated_and_below_one_for_overconfident():
    rng = np.random.default_rng(1)
    P = rng.dirichlet([1.5, 1.5, 1.5], size=30000)
    y = np.array([rng.choice(3, p=p) for p in P])
    slopes, intercepts = metrics.calibration_slope_intercept(y, P)
    assert np.allclose(slopes, 1.0, atol=0.08)
    assert np.allclose(intercepts, 0.0, atol=0.08)
    s_over, _ = metrics.calibration_slope_intercept(y, softmax(np.log(P) * 2))
    assert np.all(s_over < 0.7)


def test_oracle_capture_formula():
    assert metrics.oracle_capture(1.0, 0.91, 0.9) == pytest.approx(0.9)
    assert metrics.oracle_capture(1.0, 1.0, 0.9) == pytest.approx(0.0)
    assert np.isnan(metrics.oracle_capture(1.0, 0.9, 1.0))


def test_bootstrap_interval_brackets_point_estimate():
    rng = np.random.default_rng(2)
    P = rng.dirichlet([2, 2, 2], size=2000)
    y = np.array([rng.choice(3, p=p) for p in P])
    ci = metrics.bootstrap_intervals(y, P, n_boot=100, seed=0)
    point = metrics.point_metrics(y, P)
    for key in ("log_loss", "auroc_macro", "brier", "balanced_accuracy"):
        lo, hi = ci[key]
        assert lo < point[key] < hi


# ---- calibration ----------------------------------------------------------------------
def test_fit_calibration_recovers_temperature():
    rng = np.random.default_rng(3)
    true_m = rng.normal(0, 1, size=(20000, 3))
    y = np.array([rng.choice(3, p=p) for p in softmax(true_m)])
    cal = tune.fit_calibration(true_m * 2.0, y, "softmax", 10.0)
    assert cal.temperature == pytest.approx(2.0, rel=0.1) and cal.sigma is None
    assert cal.log_loss_after < cal.log_loss_before
    cal1 = tune.fit_calibration(true_m, y, "softmax", 10.0)
    assert cal1.temperature == pytest.approx(1.0, rel=0.1)
    assert cal1.log_loss_before - cal1.log_loss_after < 0.002


def test_ordinal_calibration_recovers_the_residual_spread_and_a_shift():
    rng = np.random.default_rng(4)
    mu = rng.normal(8, 12, size=30000)
    eih = mu + rng.normal(0, 18, size=mu.size)
    y = response_codes(eih, 10.0)
    cal = tune.fit_calibration(mu[:, None], y, "ordinal_normal", 10.0, target=eih)
    assert cal.sigma_alone == pytest.approx(18, rel=0.05)
    assert cal.log_loss_before - cal.log_loss_after < 0.002  # nothing left to correct
    # a model whose predictions are 5 points too low and twice too spread is corrected by T and b
    off = tune.fit_calibration((mu[:, None] - 5) * 2, y, "ordinal_normal", 10.0, target=eih)
    assert off.temperature == pytest.approx(2.0, rel=0.1) and off.bias[0] == pytest.approx(5, abs=1.0)
    assert off.sigma == pytest.approx(18, rel=0.05) and off.log_loss_after < off.log_loss_before - 0.005
    same = off.identity()
    assert same.temperature == 1.0 and same.bias[0] == 0.0 and same.sigma == off.sigma_alone


def test_ordinal_probabilities_follow_the_expected_change():
    from model_runtime.links import ordinal_proba

    mu = np.linspace(-60, 60, 121)
    P = ordinal_proba(mu, 18.0, 10.0)
    assert P.shape == (121, 3) and np.allclose(P.sum(axis=1), 1) and (P >= 0).all()
    assert (np.diff(P[:, 0]) > 0).all() and (np.diff(P[:, 2]) < 0).all()  # hypo up, hyper down with mu
    from scipy.stats import norm

    assert P[60, 0] == pytest.approx(P[60, 2]) and P[60, 1] == pytest.approx(2 * norm.cdf(10 / 18) - 1, abs=1e-12)
    assert P[70, 2] == pytest.approx(norm.cdf((-10 - 10) / 18), abs=1e-12)  # mu +10: P(eih <= -10)


def test_choose_prefers_cheapest_within_tolerance():
    t = [tune.Trial(0, {"max_depth": 5}, 0.900, 300, 1e6), tune.Trial(1, {"max_depth": 2}, 0.905, 200, 1e4),
         tune.Trial(2, {"max_depth": 2}, 0.950, 50, 1e3)]
    assert tune.choose(t, 0.01).number == 1
    assert tune.choose(t, 0.0).number == 0
    assert tune.explain_cost({"max_depth": 3}, 100, 3) == 100 * 3 * 8 * 9
    assert tune.explain_cost({"max_depth": 3}, 100, 1) == 100 * 8 * 9


# ---- splits ------------------------------------------------------------------------------
def test_site_split_holds_out_whole_sites_and_stratified_otherwise():
    n = 1000
    df = pd.DataFrame({"site": np.repeat(["a", "b", "c", "d", "e"], n // 5)})
    y = np.tile([0, 1, 2, 1], n // 4)
    s = holdout_split(df, y, 0.2, seed=0)
    assert s.kind == "site"
    assert set(df.site.iloc[s.test_idx]).isdisjoint(set(df.site.iloc[s.train_idx]))
    assert len(s.test_idx) + len(s.train_idx) == n
    s2 = holdout_split(df.drop(columns="site"), y, 0.2, seed=0)
    assert s2.kind == "stratified" and len(s2.test_idx) == 200
    assert np.bincount(y[s2.test_idx]).tolist() == [50, 100, 50]
    folds = cv_folds(df.iloc[s.train_idx], y[s.train_idx], 3, 0)
    assert len(folds) == 3


# ---- features -----------------------------------------------------------------------------
def test_contract_features_order_dtypes_and_names():
    df = _frame(6)
    shuffled = df[list(reversed(df.columns))]
    f = ContractFeatures().fit(df)
    X = f.transform(shuffled)
    assert tuple(X.columns) == PREDICTORS
    assert list(f.get_feature_names_out()) == list(PREDICTORS)
    assert isinstance(X["sex"].dtype, pd.CategoricalDtype)
    assert list(X["exercise_modality"].cat.categories) == ["aerobic", "isometric", "dynamic_resistance", "hiit", "mind_body"]
    assert X["bdnf_ng_ml"].isna().all()
    # a missing optional column becomes all-missing, not an error
    X2 = f.transform(df.drop(columns=["csi_score"]))
    assert X2["csi_score"].isna().all()
    with pytest.raises(ValueError, match="not contract fields"):
        ContractFeatures(predictors=("cpm_pct", "favourite_colour")).fit(df)


def test_linear_design_shapes_and_no_nans():
    df = _frame(30)
    X = ContractFeatures().fit_transform(df)
    d = LinearDesign().fit(X)
    Z = d.transform(X)
    assert Z.shape[1] == len(d.get_feature_names_out())
    assert not np.isnan(Z).any()


def test_reference_psi_zero_for_same_and_large_for_shifted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(0, 1, 5000)})
    ref = build_reference(X)["a"]
    assert psi(ref, rng.normal(0, 1, 5000)) < 0.02
    assert psi(ref, rng.normal(1.5, 1, 5000)) > 0.2


def test_baseline_rules_give_probabilities():
    df = _frame(300)
    y = np.random.default_rng(0).integers(0, 3, 300)
    out = baselines.fit_baselines(df.iloc[:200], y[:200], df.iloc[200:])
    for name, P in out.items():
        assert P.shape == (100, 3), name
        assert np.allclose(P.sum(axis=1), 1.0), name


def test_logistic_baseline_reads_only_the_models_fields():
    """With the default model's fields (measured before the bout) the baseline ignores
    post-bout lactate; with every predictor it reads it."""
    from data_contracts.fields import BEFORE_BOUT_PREDICTORS

    df = _frame(300)
    df["lactate_mmol_l"] = np.random.default_rng(1).uniform(1, 12, 300)
    y = (df["lactate_mmol_l"].to_numpy() > 6).astype(int) * 2  # the outcome follows lactate alone
    other = df.assign(lactate_mmol_l=df["lactate_mmol_l"].to_numpy()[::-1])
    before = [baselines.fit_baselines(d.iloc[:200], y[:200], d.iloc[200:], predictors=BEFORE_BOUT_PREDICTORS)["logreg"]
              for d in (df, other)]
    np.testing.assert_allclose(before[0], before[1])  # other lactate values, the same fit
    every = baselines.fit_baselines(df.iloc[:200], y[:200], df.iloc[200:])["logreg"]
    assert np.abs(every - before[0]).max() > 0.1


# ---- model runtime ---------------------------------------------------------------------------
def _tiny_predictor(df: pd.DataFrame, contract_version: str = "1.0", temperature: float = 1.3) -> EIHPredictor:
    X = ContractFeatures().fit_transform(df)
    y = (X["cpm_pct"].to_numpy() > 10).astype(int) + (X["pcs_total"].to_numpy() > 40).astype(int)
    dm = xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns))
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "seed": 0}, dm, 20)
    meta = {"contract_version": contract_version, "label_threshold_pct": 10.0, "features": list(X.columns),
            "calibration": {"temperature": temperature, "bias": [0.1, -0.2, 0.0]},
            "risk_cutoffs": {"moderate": 0.2, "high": 0.35}, "reference": build_reference(X)}
    return EIHPredictor(booster, ModelMeta.from_dict(meta))


def test_predictor_explanations_are_additive_and_match_probabilities(tmp_path):
    df = _frame(200)
    p = _tiny_predictor(df)
    P, ex = p.predict_and_explain(df)
    assert ex.contributions.shape == (200, 3, len(PREDICTORS))
    assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4
    assert np.allclose(P, p.predict_proba(df), atol=1e-6)
    assert np.allclose(P.sum(axis=1), 1.0)
    # survives a save/load round trip
    q = EIHPredictor.load(p.save(tmp_path / "pred"))
    assert np.allclose(q.predict_proba(df), P)


def test_predictor_refuses_other_contract_major():
    with pytest.raises(ContractVersionError, match="contract 2.0"):
        _tiny_predictor(_frame(50), contract_version="2.0")


def test_predictor_invariant_to_row_and_column_order():
    df = _frame(120)
    p = _tiny_predictor(df)
    perm = np.random.default_rng(0).permutation(len(df))
    P = p.predict_proba(df)
    Pp = p.predict_proba(df.iloc[perm][list(reversed(df.columns))])
    assert np.allclose(Pp, P[perm])


def test_risk_levels_and_missing_inputs():
    df = _frame(3)
    p = _tiny_predictor(df)
    assert p.risk_level(np.array([0.1, 0.2, 0.5])).tolist() == ["low", "moderate", "high"]
    missing = p.missing_optional(df.drop(columns=["csi_score"]))
    assert "csi_score" in missing[0] and "bdnf_ng_ml" in missing[0]
    assert "cpm_pct" not in missing[0]


def test_config_file_overrides_and_rejects_unknown_keys(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('n_trials = 7\nlabel_threshold_pct = 15.0\n[search]\nmax_depth = [2, 3]\n')
    cfg = load_config(cfg_file)
    assert cfg.n_trials == 7 and cfg.label_threshold_pct == 15.0 and cfg.search.max_depth == (2, 3)
    assert load_config(None, n_trials=None).n_trials == TrainConfig().n_trials
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_trails": 3}')
    with pytest.raises(ValueError, match="unknown config keys: n_trails"):
        load_config(bad)
