"""The varying-coefficient blend (training/varying.py, training/coefficients.py): the weighted
merge of boosters, the regression's bases, reduced-rank fit and rank choice, the distillation
set, the blended booster's margins and exact contributions, how calibration chooses the
weight, and when training leaves it out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from data_contracts.fields import BEFORE_BOUT_PREDICTORS
from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from features.derived import EXERCISE_DOSE, EXERCISE_LOAD
from features.interactions import protocol_columns
from features.pipeline import ContractFeatures
from training import averaging, coefficients, tune, varying
from training.config import load_config
from training.metrics import ordinal_log_loss

BLEND = {varying.RANK: 1, varying.ALPHA: 300.0}
SQ = {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 2, "learning_rate": 0.3, "nthread": 1}


def _xy(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, 5 + 2 * X["a"].to_numpy() - X["b"].to_numpy() + rng.normal(size=n)


def test_weighted_merge_predicts_the_weighted_margin_even_with_different_base_scores():
    X, y = _xy()
    d = xgb.DMatrix(X, label=y)
    a = xgb.train(SQ, d, 10)  # base score: the mean of y
    b = xgb.train({**SQ, "base_score": -3.0}, d, 25)
    assert abs(averaging._base_score(json.loads(a.save_raw("json")))[0] - (-3.0)) > 1
    merged = averaging.merge([a, b], [0.3, 0.7])
    want = 0.3 * a.predict(d, output_margin=True) + 0.7 * b.predict(d, output_margin=True)
    np.testing.assert_allclose(merged.predict(d, output_margin=True), want, atol=1e-4)
    phi = merged.predict(d, pred_contribs=True)
    np.testing.assert_allclose(phi.sum(axis=1), want, atol=1e-4)
    # weights are normalized; equal weights by default
    np.testing.assert_allclose(averaging.merge([a, b], [3, 7]).predict(d), merged.predict(d), atol=1e-6)
    np.testing.assert_allclose(averaging.merge([a, b]).predict(d), (a.predict(d) + b.predict(d)) / 2, atol=1e-4)


def test_weighted_merge_refuses_bad_weights_and_base_scores_off_the_margin_scale():
    X, y = _xy()
    d = xgb.DMatrix(X, label=np.abs(y) + 1)
    a, b = xgb.train(SQ, d, 3), xgb.train(SQ, d, 4)
    with pytest.raises(ValueError, match="one non-negative weight per booster"):
        averaging.merge([a, b], [1.0])
    with pytest.raises(ValueError, match="one non-negative weight per booster"):
        averaging.merge([a, b], [1.0, -0.5])
    gamma = {**SQ, "objective": "reg:gamma"}
    g1, g2 = xgb.train(gamma, d, 3), xgb.train({**gamma, "base_score": 9.0}, d, 3)
    with pytest.raises(ValueError, match="must share their base score"):
        averaging.merge([g1, g2])


@pytest.fixture(scope="module")
def cohort():
    from simulation import simulate

    df, _ = simulate(1200, seed=8, n_sites=1)
    valid = validate_frame(df).valid
    X = ContractFeatures(predictors=BEFORE_BOUT_PREDICTORS, derived=(EXERCISE_DOSE, EXERCISE_LOAD)).fit(valid).transform(valid)
    return valid, X, eih_pct(valid).to_numpy(float)


def test_bases_are_person_columns_and_each_modality_s_slopes_and_main_effects(cohort):
    _, X, _ = cohort
    basis = coefficients.Basis.of(X)
    P, (Q, main) = basis.person(X), basis.protocol(X)
    n_mod = X["exercise_modality"].cat.categories.size
    assert basis.slopes == (EXERCISE_DOSE, EXERCISE_LOAD)
    assert Q.shape == (len(X), 2 * n_mod) and main.shape == (len(X), 6 * n_mod)
    # each row's slopes sit in its own modality's columns only
    assert ((Q != 0).reshape(len(X), n_mod, 2).any(axis=2).sum(axis=1) <= 1).all()
    # no protocol column in the person basis: a person's row is the same under any protocol
    moved = varying.with_other_protocols(X, seed=3).iloc[len(X):2 * len(X)].reset_index(drop=True)
    np.testing.assert_array_equal(basis.person(moved), P)
    # without the derived features the slopes are intensity and duration
    plain = X.drop(columns=[EXERCISE_DOSE, EXERCISE_LOAD])
    assert coefficients.Basis.of(plain).slopes == ("exercise_intensity_pct", "exercise_duration_min")


def test_a_field_the_cohort_never_records_is_left_out_without_warnings(cohort):
    import warnings

    _, X, y = cohort
    blank = X.assign(bdnf_ng_ml=np.nan, il6_pg_ml=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        basis = coefficients.Basis.of(blank)
        pred = coefficients.fit(blank, y, 1, 300.0).predict(blank)
    assert "bdnf_ng_ml" not in basis.numbers and "il6_pg_ml" not in basis.numbers
    assert np.isfinite(pred).all()


def test_weight_zero_is_the_distilled_part_alone(cohort):
    _, X, y = cohort
    params = {**tune.fit_params(load_config(None, average_of=1), 0, tune.Trial(0, {
        "max_depth": 2, "learning_rate": 0.1, "min_child_weight": 5.0, "subsample": 1.0, "colsample_bytree": 1.0,
        "reg_lambda": 1.0, "gamma": 0.0}, 0.0, 10, 0.0)), **BLEND, varying.WEIGHT: 0.0}
    alone = tune.fit_final(X, y, params, 10)
    assert alone.num_boosted_rounds() == varying.DISTIL_ROUNDS
    d = tune.dmatrix(X)
    np.testing.assert_allclose(alone.predict(d), varying.component(X, y, params).predict(d), atol=1e-6)


def test_other_protocols_are_whole_protocols_of_other_rows(cohort):
    _, X, _ = cohort
    Xa = varying.with_other_protocols(X, seed=1)
    assert len(Xa) == (varying.COPIES + 1) * len(X)
    proto = protocol_columns(list(X.columns))
    person = [c for c in X.columns if c not in proto]
    copy = Xa.iloc[len(X):2 * len(X)].reset_index(drop=True)
    pd.testing.assert_frame_equal(copy[person], X[person].reset_index(drop=True))
    # each copied protocol is one original row's protocol, kept together, and rows were moved
    key = lambda f: f[proto].astype(str).agg("|".join, axis=1)  # noqa: E731
    assert set(key(copy)) <= set(key(X))
    assert sorted(key(copy)) == sorted(key(X))
    assert (key(copy) != key(X.reset_index(drop=True))).mean() > 0.9
    assert list(Xa.dtypes) == list(X.dtypes)


def _folds(n, k=4):
    idx = np.arange(n)
    return [(idx[idx % k != j], idx[idx % k == j]) for j in range(k)]


def test_rank_one_regression_recovers_one_person_trait_scaling_every_modality_s_dose_slope(cohort):
    _, X, _ = cohort
    z = ((X["cpm_pct"] - X["cpm_pct"].mean()) / X["cpm_pct"].std()).to_numpy()
    per_modality = X["exercise_modality"].cat.codes.to_numpy() + 1.0  # the trait's effect differs by modality
    truth = (-10 + 8 * z) * per_modality * X[EXERCISE_DOSE].to_numpy()
    y = truth + np.random.default_rng(0).normal(0, 2, len(X))
    reg = coefficients.fit(X.iloc[:900], y[:900], 1, 100.0)
    error = np.sqrt(np.mean((reg.predict(X.iloc[900:]) - truth[900:]) ** 2))  # people it did not see
    assert error < 0.2 * np.std(truth), (error, np.std(truth))
    assert reg.rank == 1 and np.linalg.matrix_rank(reg.slopes, tol=1e-8 * np.abs(reg.slopes).max()) == 1
    assert coefficients.choose(X, y, _folds(len(X))) in coefficients.candidates()


def test_cross_validation_leaves_rank_one_when_two_person_traits_drive_different_slopes(cohort):
    _, X, _ = cohort
    zs = [((X[c] - X[c].mean()) / X[c].std()).to_numpy() for c in ("cpm_pct", "pcs_total")]
    truth = 10 * zs[0] * X[EXERCISE_DOSE].to_numpy() - 10 * zs[1] * X[EXERCISE_LOAD].to_numpy()
    y = truth + np.random.default_rng(1).normal(0, 2, len(X))
    fits = coefficients.fit_all(X.iloc[:900], y[:900], [(1, 100.0), (2, 100.0)])
    err = {r: np.sqrt(np.mean((fits[(r, 100.0)].predict(X.iloc[900:]) - truth[900:]) ** 2)) for r in (1, 2)}
    assert err[2] < 0.75 * err[1], err
    assert coefficients.choose(X, y, _folds(len(X)))[0] != 1


def test_blended_booster_is_the_weighted_trees_and_distilled_part_with_exact_contributions(cohort):
    _, X, y = cohort
    cfg = load_config(None, average_of=2)
    trial = tune.Trial(0, {"max_depth": 3, "learning_rate": 0.1, "min_child_weight": 5.0, "subsample": 0.8,
                           "colsample_bytree": 0.8, "reg_lambda": 1.0, "gamma": 0.0}, 0.0, 30, 0.0)
    params = {**tune.fit_params(cfg, 0, trial), **BLEND, varying.WEIGHT: 0.4}
    blended = tune.fit_final(X, y, params, 30)
    d = tune.dmatrix(X)
    trees = averaging.fit(varying.own(params), tune.dmatrix(X, y), 30).predict(d, output_margin=True)
    part = varying.component(X, y, params).predict(d, output_margin=True)
    got = blended.predict(d, output_margin=True)
    np.testing.assert_allclose(got, 0.4 * trees + 0.6 * part, atol=2e-3)
    assert blended.num_boosted_rounds() == 2 * 30 + varying.DISTIL_ROUNDS
    phi = blended.predict(d, pred_contribs=True)
    np.testing.assert_allclose(phi.sum(axis=1), got, atol=2e-3)
    # the distilled part follows the regression it was fitted to
    regression = coefficients.fit(X, y, 1, 300.0).predict(X)
    assert np.sqrt(np.mean((part - regression) ** 2)) < 0.25 * np.std(regression)
    # weight 1 is the trees alone
    alone = tune.fit_final(X, y, {**params, varying.WEIGHT: 1.0}, 30)
    np.testing.assert_allclose(alone.predict(d, output_margin=True), trees, atol=1e-4)
    assert tune.explain_cost(params, 30, 1) > tune.explain_cost(varying.own(params), 30, 1)


def test_calibration_chooses_the_weight_with_the_lowest_out_of_fold_log_loss(cohort):
    from training import steps

    valid, _, _ = cohort
    y = response_codes(eih_pct(valid), 10.0).astype("int64")
    cfg = load_config(None, n_trials=1, average_of=1, validation="holdout", varying_min_rows=0)
    prep = steps.prepare(valid, y, cfg, 4)
    found = steps.search(prep, cfg, 4)
    boosted = found.best_of("xgboost")
    calib = steps.calibrate(prep, boosted, cfg, 4)
    scores, t = calib.blend_log_loss, prep.target[prep.tr]
    assert set(scores) == set(varying.WEIGHTS)
    w = calib.params[varying.WEIGHT]
    assert scores[w] == min(scores.values())
    assert (calib.params[varying.RANK], calib.params[varying.ALPHA]) in coefficients.candidates()
    assert ordinal_log_loss(t, calib.oof[:, 0], 10.0) == pytest.approx(scores[w], abs=1e-9)
    m = calib.metrics()
    assert m["varying_weight_on_trees"] == w and m["oof_log_loss_trees_alone"] == scores[1.0]
    assert m["varying_rank"] == calib.params[varying.RANK]
    # the trees alone when the configuration says so, with monotone constraints, and for splines
    for off in (load_config(None, n_trials=1, average_of=1, varying=False, varying_min_rows=0),
                load_config(None, n_trials=1, average_of=1, monotone=True, varying_min_rows=0),
                load_config(None, n_trials=1, average_of=1)):  # 960 training rows: below the default minimum
        c = steps.calibrate(prep, boosted, off, 4)
        assert not varying.wanted(c.params) and c.blend_log_loss is None
    spline_trial = found.best_of("spline")
    assert not varying.wanted(steps.calibrate(prep, spline_trial, cfg, 4).params)


def test_config_rejects_a_varying_setting_that_is_not_a_boolean():
    assert load_config(None).varying is True and load_config(None).flat()["varying"] is True
    with pytest.raises(ValueError, match="varying must be true or false"):
        load_config(None, varying="yes")
    with pytest.raises(ValueError, match="varying_min_rows must be at least 0"):
        load_config(None, varying_min_rows=-1)


def test_model_card_states_the_blend_and_its_weight():
    from types import SimpleNamespace

    from model_runtime.links import NORMAL_SPREAD
    from training.model_card import _model_kind

    shape = {"family": "xgboost", "max_depth": 3, "n_rounds": 300, "average_of": 5, "spread_max_depth": 3,
             "spread_n_rounds": 80}
    blended = _model_kind(SimpleNamespace(model_shape={**shape, "varying_weight_on_trees": 0.5, "varying_rank": 1},
                                          link=NORMAL_SPREAD))
    assert "blended, weight 0.5 on these trees" in blended and "varying-coefficient regression" in blended
    assert "through 1 person index, chosen by cross-validation" in blended
    full = _model_kind(SimpleNamespace(model_shape={**shape, "varying_weight_on_trees": 0.3, "varying_rank": 0},
                                       link=NORMAL_SPREAD))
    assert "weight 0.3" in full and "through a full coefficient matrix" in full
    assert "varying-coefficient" not in _model_kind(SimpleNamespace(model_shape=shape, link=NORMAL_SPREAD))
