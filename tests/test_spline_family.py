"""The penalized spline family: additive outputs whose explanations are exact, one function
for training and serving, every runtime door (save, payload, grid, update ladder) open to
it, and a family choice made by validation (each family wins where the truth favours it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from features.pipeline import ContractFeatures
from model_runtime.additive import AdditiveModel, Shape, bspline_basis
from model_runtime.predictor import EIHPredictor
from training import internal, spline, steps
from training.config import TrainConfig, load_config

FAST = dict(n_trials=2, cv_folds=3, bootstrap=20, max_rounds=80, cv_repeats=1, outer_folds=4)


def _cohort(n: int, seed: int):
    from simulation import simulate

    df, _ = simulate(n, seed=seed, n_sites=1)
    valid = validate_frame(df).valid.reset_index(drop=True)
    return valid, response_codes(eih_pct(valid), 10.0).astype("int64")


@pytest.fixture(scope="module")
def frame():
    valid, y = _cohort(1200, 8)
    cfg = TrainConfig()
    X = ContractFeatures(predictors=cfg.predictors, derived=cfg.derived_features).fit(valid).transform(valid)
    return valid, y, X, eih_pct(valid).to_numpy(dtype="float64")


def test_a_shape_function_reads_numbers_categories_and_missing():
    knots = np.array([0.0, 1.0, 2.0, 4.0])
    coef = np.array([1.0, -2.0, 0.5, 3.0, 2.0, -1.0])
    s = Shape("spline", coef, missing=7.0, knots=knots)
    x = np.array([-5.0, 0.0, 1.5, 4.0, 9.0, np.nan])
    got = s(x)
    inside = bspline_basis(np.array([0.0, 1.5, 4.0]), knots, 3) @ coef
    assert got[-1] == 7.0  # missing has its own value
    assert np.allclose(got[1:4], inside)
    assert got[0] == got[1] and got[4] == got[3]  # held at the outer knots beyond them
    c = Shape("category", np.array([0.5, -1.5, 2.0]), missing=-9.0)
    assert c(np.array([2.0, 0.0, np.nan])).tolist() == [2.0, 0.5, -9.0]


def test_the_fitted_regression_and_the_runtime_are_one_function(frame):
    """The runtime's additive model gives the penalized regression's own predictions on its
    (standardized) design."""
    from sklearn.linear_model import ElasticNetCV
    from sklearn.model_selection import KFold

    _, _, X, target = frame
    design = spline.Design(X)
    M = spline.model_matrix(X)
    D = design.matrix(M)
    sd = D.std(axis=0)
    sd[sd == 0] = 1.0
    Ds = (D - D.mean(axis=0)) / sd
    net = ElasticNetCV(l1_ratio=spline.L1_RATIO, alphas=spline.N_ALPHAS, cv=KFold(5, shuffle=True, random_state=0),
                       max_iter=5000).fit(Ds, target)
    model = spline.fit_mean(X, target, spline.params())
    assert np.allclose(model.margins(M), net.predict(Ds), atol=1e-8)
    assert 0 < np.count_nonzero(net.coef_) < D.shape[1]  # the penalty keeps some columns and drops others
    assert D.shape[1] == sum(design.width(s) for s in design.specs)
    # a missing optional field reads as its own level, not as the median
    j = X.columns.get_loc("bdnf_ng_ml")
    assert np.isnan(M[:, j]).any() and design.specs[j]["indicator"]


def test_explanations_are_exact_and_centred_on_the_training_rows(frame):
    _, _, X, target = frame
    model = spline.fit_mean(X, target, spline.params())
    M = spline.model_matrix(X)
    C = model.contributions(M)
    assert C.shape == (len(M), len(X.columns) + 1)
    assert np.allclose(C[:, -1] + C[:, :-1].sum(axis=1), model.margins(M), atol=1e-9)
    assert np.allclose(C[:, :-1].mean(axis=0), 0.0, atol=1e-9)  # background = the training rows
    # Shapley's dummy axiom: change one field and only its contribution moves
    M2 = M.copy()
    j = X.columns.get_loc("cpm_pct")
    M2[:, j] = M2[:, j] + 10.0
    d = model.contributions(M2) - C
    assert np.abs(np.delete(d, j, axis=1)).max() == 0.0 and np.abs(d[:, j]).max() > 0
    again = AdditiveModel.from_json(model.to_json())
    assert np.array_equal(again.contributions(M), C)


@pytest.mark.slow
def test_a_spline_model_trains_serves_and_explains_like_a_booster(frame, tmp_path):
    valid, y, _, _ = frame
    cfg = TrainConfig(**FAST, families=("spline",))
    trained = steps.run_steps(steps.prepare(valid, y, cfg, 3), cfg, 3)
    pred = trained.predictor
    assert pred.additive and pred.outputs == ("eih_pct", "log_sd") and len(pred.boosters) == 2
    assert pred.meta.model_shape["family"] == "spline"
    assert pred.meta.extra["family_choice"]["family"] == "spline"
    rows = valid.iloc[:300]
    ex = pred.explain(rows)
    assert np.allclose(ex.base + ex.contributions.sum(axis=2), pred.margins(rows), atol=1e-9)
    assert np.allclose(pred.proba(ex.margins), pred.predict_proba(rows), atol=1e-12)
    sd = np.exp(ex.margins[:, 1])
    assert sd.min() > 3 and sd.max() < 80 and sd.std() > 0  # the spread is per person here too
    # the same bits from a saved directory, a worker's payload and parsed records
    from serving.batch.engines import model_payload, worker_predictor

    on_worker = worker_predictor(model_payload(pred))  # what a Dask worker rebuilds
    for other in (EIHPredictor.load(pred.save(tmp_path / "m")), EIHPredictor.from_payload(pred.to_payload()), on_worker):
        assert np.array_equal(other.margins(rows), pred.margins(rows))
    recs = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    assert np.allclose(pred.explain_records(recs).margins, ex.margins, atol=1e-12)
    # prescription scores the grid through the same model, and training pooled it
    from model_runtime.protocol_grid import GridScorer

    gs = GridScorer(pred)
    X = pred.frame_matrix(pred.transform(rows.iloc[:5]))
    P = gs.score(X)
    at = rows.iloc[:5].assign(**gs.grid.protocol(7))
    assert np.allclose(P[:, 7], pred.predict_proba(at), atol=1e-12)
    assert 0.0 <= pred.meta.extra["pooling"]["shrinkage"] <= 1.0
    # the card says which family and why
    from training.model_card import _model

    text = " ".join(_model(cfg, pred.meta))
    assert "Penalized spline regression" in text and "Model family chosen by" in text


@pytest.mark.slow
def test_the_update_ladder_of_a_spline_parent_stops_at_recalibration(frame):
    from training import update_steps

    valid, y, _, _ = frame
    cfg = TrainConfig(**FAST, families=("spline",))
    parent = steps.run_steps(steps.prepare(valid, y, cfg, 3), cfg, 3).predictor
    steps_open = ("none", "in_the_large", "recalibrate", update_steps.SHRUNK)
    assert update_steps.ladder(parent, 200) == update_steps.ladder(parent, 5000) == steps_open
    oof = update_steps.out_of_fold(parent, valid.iloc[:200], y[:200], repeats=1, folds=4, seed=0)
    assert set(oof) == set(steps_open) | {"in_the_large_pooled", "recalibrate_pooled"}
    step, ll = update_steps.choose(oof, y[:200], n_boot=50)
    assert step in oof and set(ll) == set(oof)


def _additive_world(n: int, seed: int):
    """Simulated people whose measured change is a smooth additive function of four fields
    plus noise: the truth the spline family is built for (trees approximate straight lines and
    curves by steps)."""
    valid, _ = _cohort(n, seed)
    rng = np.random.default_rng(seed)
    v = {k: valid[k].to_numpy(dtype="float64") for k in ("cpm_pct", "pcs_total", "exercise_intensity_pct", "age_years")}
    change = (0.5 * v["cpm_pct"] - 0.5 * (v["pcs_total"] - 20) + 0.3 * (v["exercise_intensity_pct"] - 60)
              + 0.02 * (v["age_years"] - 50) ** 2 - 5 + rng.normal(0, 8, len(valid)))
    valid = valid.assign(ppt_post_kpa=valid["ppt_baseline_kpa"] * (1 + change / 100))
    return valid, response_codes(eih_pct(valid), 10.0).astype("int64")


@pytest.mark.slow
@pytest.mark.parametrize(("world", "expected"), [("additive", "spline"), ("simulator", "xgboost")])
def test_repeated_cv_chooses_the_family_the_truth_favours(world, expected):
    """Small and additive: the penalized splines win; the simulator's interactions at 2,000
    people: the boosted trees win. The choice and both figures are stored with the model."""
    valid, y = _additive_world(400, 11) if world == "additive" else _cohort(2000, 11)
    cfg = TrainConfig(**{**FAST, "n_trials": 4, "cv_repeats": 2})
    prep = internal.prepare_all(valid, y, cfg, 0)
    found, oof = internal.choose_family(prep, steps.search(prep, cfg, 0), cfg, 0)
    assert found.family_choice()["family"] == expected
    scores = found.family_scores
    assert set(scores) == {"spline", "xgboost"} and scores[expected] == min(scores.values())
    assert scores[expected] == pytest.approx(internal.mean_log_loss(y, oof.P))
    assert "repeated cross-validation" in found.criterion


def test_families_are_validated():
    assert load_config(None, families=["spline"]).families == ("spline",)
    with pytest.raises(ValueError, match="families must be"):
        load_config(None, families=["forest"])
    with pytest.raises(ValueError, match="families must be"):
        load_config(None, families=[])


def test_eih_train_refuses_an_unknown_family(cli_runner, tmp_path):
    from eih.cli import app

    r = cli_runner.invoke(app, ["train", "--data", str(tmp_path / "none.csv"), "--family", "forest"])
    assert r.exit_code == 2 and "--family must be auto, xgboost or spline" in r.output
