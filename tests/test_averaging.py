"""Seed averaging (training/averaging.py): the merged booster predicts the mean margin of its
fits, its exact contributions are their mean, the explanation tables accept it, boosters that
cannot be averaged are refused, and training records the average in the model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from model_runtime.shap_tables import ShapTables
from training import averaging, tune
from training.config import load_config


def _data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.uniform(0, 100, n),
                      "c": pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["x", "y", "z"])})
    X.loc[rng.random(n) < 0.1, "a"] = np.nan
    y = 3 * X["a"].fillna(0).to_numpy() + 0.05 * X["b"].to_numpy() * (X["c"] == "y") + rng.normal(size=n)
    return X, y


PARAMS = {"objective": "reg:squarederror", "tree_method": "hist", "max_cat_to_onehot": 1, "max_depth": 3,
          "subsample": 0.7, "colsample_bytree": 0.7, "learning_rate": 0.1, "nthread": 1, "seed": 11}


def test_merged_booster_predicts_the_mean_margin_and_mean_contributions():
    X, y = _data()
    d = tune.dmatrix(X, y)
    fits = [xgb.train(p, d, num_boost_round=25) for p in averaging.seeds(PARAMS, 4)]
    merged = averaging.merge(fits)
    assert merged.num_boosted_rounds() == 100
    m = np.mean([b.predict(d, output_margin=True) for b in fits], axis=0)
    np.testing.assert_allclose(merged.predict(d, output_margin=True), m, atol=2e-5)
    c = np.mean([b.predict(d, pred_contribs=True) for b in fits], axis=0)
    np.testing.assert_allclose(merged.predict(d, pred_contribs=True), c, atol=2e-5)
    # the merged booster keeps the fits' training parameters (here the objective's)
    assert json.loads(merged.save_config())["learner"]["objective"]["name"] == "reg:squarederror"
    # the fits differ (their seeds draw different rows and columns), so the average is not one of them
    assert np.abs(fits[0].predict(d) - fits[1].predict(d)).max() > 0.01


def test_fit_with_the_key_equals_merging_the_seed_fits():
    X, y = _data(seed=1)
    d = tune.dmatrix(X, y)
    mono = averaging.fit({**PARAMS, "monotone_constraints": {"b": 1}, averaging.KEY: 2}, d, 5)
    assert json.loads(mono.save_config())["learner"]["gradient_booster"]["tree_train_param"][
        "monotone_constraints"] == "(0,1,0)"
    got = averaging.fit({**PARAMS, averaging.KEY: 3}, d, 20)
    want = averaging.merge([xgb.train(p, d, num_boost_round=20) for p in averaging.seeds(PARAMS, 3)])
    np.testing.assert_array_equal(got.predict(d, output_margin=True), want.predict(d, output_margin=True))
    single = averaging.fit(PARAMS, d, 20)
    assert single.num_boosted_rounds() == 20
    assert averaging.KEY not in averaging.split_params({**PARAMS, averaging.KEY: 3})[0]


def test_multiclass_boosters_merge_per_class():
    X, y = _data(seed=2)
    cls = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    d = tune.dmatrix(X, cls)
    p = {**PARAMS, "objective": "multi:softprob", "num_class": 3}
    fits = [xgb.train(q, d, num_boost_round=10) for q in averaging.seeds(p, 3)]
    merged = averaging.merge(fits)
    m = np.mean([b.predict(d, output_margin=True) for b in fits], axis=0)
    assert merged.predict(d, output_margin=True).shape == (len(X), 3)
    np.testing.assert_allclose(merged.predict(d, output_margin=True), m, atol=2e-5)


def test_explanation_tables_explain_the_merged_booster_exactly():
    X, y = _data(seed=3)
    d = tune.dmatrix(X, y)
    merged = averaging.fit({**PARAMS, averaging.KEY: 3}, d, 15)
    tables = ShapTables.build(merged, ["q", "q", "c"], {2: 3})
    assert tables is not None
    M = X.assign(c=X["c"].cat.codes.astype("float64")).to_numpy(dtype="float64")
    np.testing.assert_allclose(tables.contributions(M)[:, 0, :], merged.predict(d, pred_contribs=True), atol=1e-4)


def test_boosters_that_cannot_be_averaged_are_refused():
    X, y = _data(seed=4)
    d = tune.dmatrix(X, y)
    a = xgb.train(PARAMS, d, num_boost_round=5)
    other_objective = xgb.train({**PARAMS, "objective": "reg:absoluteerror"}, d, num_boost_round=5)
    with pytest.raises(ValueError, match="share objective"):
        averaging.merge([a, other_objective])
    forest = xgb.train({**PARAMS, "num_parallel_tree": 2}, d, num_boost_round=3)
    with pytest.raises(ValueError, match="plain gradient-boosted"):
        averaging.merge([forest, forest])
    with pytest.raises(ValueError, match="nothing"):
        averaging.merge([])
    with pytest.raises(ValueError, match="at least 1"):
        load_config(None, average_of=0)


def test_fit_params_ask_for_the_average_of_boosted_configurations_only():
    cfg = load_config(None, average_of=4)
    boosted = tune.Trial(0, {"max_depth": 3, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.8,
                             "colsample_bytree": 0.8, "reg_lambda": 1.0, "gamma": 0.0}, 1.0, 10, 1.0)
    spline_trial = tune.Trial(1, {"family": "spline", "n_knots": 4, "alpha": 0.1, "spread_alpha": 0.1}, 1.0, 0, 0.0)
    assert tune.fit_params(cfg, 0, boosted)[averaging.KEY] == 4
    assert averaging.KEY not in tune.fit_params(cfg, 0, spline_trial)
    assert averaging.KEY not in tune.fit_params(load_config(None, average_of=1), 0, boosted)
    assert tune.explain_cost(tune.fit_params(cfg, 0, boosted), 10, 1) == 4 * tune.explain_cost(boosted.params, 10, 1)
