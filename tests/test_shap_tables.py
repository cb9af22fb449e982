"""The table explainer (model_runtime/shap_tables.py) gives XGBoost's own TreeSHAP numbers:
checked against `pred_contribs` on simulated rows, on values exactly at and just below
every split threshold, on every category and on missing values, for one-output
(ordinal) and three-class models; deep trees fall back to XGBoost; a wrong split rule is
caught by the build check; the few-rows path and the vectorized path give the same bits."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

import model_runtime.shap_tables as st
from data_contracts.fields import BEFORE_BOUT_PREDICTORS
from features.derived import EXERCISE_DOSE, EXERCISE_LOAD
from features.pipeline import ContractFeatures
from model_runtime.predictor import EIHPredictor
from model_runtime.shap_tables import ShapTables

TOL = 1e-5  # float32 sums of 30 trees; contributions are in %-points or log-odds


@pytest.fixture(scope="module")
def data():
    from data_contracts.labels import eih_pct
    from simulation import simulate

    cohort, _ = simulate(3000, seed=5, n_sites=2)
    # the default model's inputs
    feats = ContractFeatures(predictors=BEFORE_BOUT_PREDICTORS, derived=(EXERCISE_DOSE, EXERCISE_LOAD)).fit(None)
    X = feats.transform(cohort)
    y = eih_pct(cohort).to_numpy()
    cats = feats.categories_
    n_categories = {j: len(cats[f]) for j, f in enumerate(X.columns) if f in cats}
    M = np.column_stack([
        np.where(X[f].cat.codes.to_numpy() < 0, np.nan, X[f].cat.codes.to_numpy()) if f in cats
        else X[f].to_numpy(dtype="float64", na_value=np.nan) for f in X.columns])
    return X, M, y, n_categories


def _booster(data, depth: int, multiclass: bool = False, rounds: int = 30) -> xgb.Booster:
    X, _, y, _ = data
    params = {"max_depth": depth, "eta": 0.1, "nthread": 1, "seed": 3}
    if multiclass:
        params.update(objective="multi:softprob", num_class=3)
        y = np.digitize(y, [-10.0, 10.0])
    return xgb.train(params, xgb.DMatrix(X, y, enable_categorical=True), rounds)


def _xgb_contribs(booster, M, n_out):
    dm = xgb.DMatrix(M, feature_names=booster.feature_names, feature_types=booster.feature_types,
                     enable_categorical=True)
    return booster.predict(dm, pred_contribs=True).reshape(len(M), n_out, M.shape[1] + 1)


def _edge_rows(tables: ShapTables, M: np.ndarray) -> np.ndarray:
    """Rows of the cohort with one feature set exactly at, or just below, one of its split
    thresholds, to every category and to missing, in turn."""
    rng = np.random.default_rng(0)
    rows = []
    for col, f in tables.features.items():
        if f.categorical:
            values = [float(c) for c in range(f.n_categories)] + [np.nan]
        else:
            values = [v for t in f.thresholds for v in (float(t), float(np.nextafter(t, np.float32(-np.inf))))]
            values.append(np.nan)
        for v in values:
            r = M[rng.integers(len(M))].copy()
            r[col] = v
            rows.append(r)
    return np.asarray(rows)


@pytest.mark.parametrize("multiclass", [False, True], ids=["one output", "three classes"])
@pytest.mark.parametrize("depth", [2, 3])
def test_tables_give_xgboosts_contributions(data, depth, multiclass):
    _, M, _, n_categories = data
    booster = _booster(data, depth, multiclass)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    assert tables is not None
    n_out = 3 if multiclass else 1
    assert tables.n_outputs == n_out
    edges = _edge_rows(tables, M)
    assert len(edges) > 100  # thresholds of many features were exercised
    for rows in (M, edges):
        got = tables.contributions(rows)
        want = _xgb_contribs(booster, rows, n_out)
        assert got.shape == want.shape == (len(rows), n_out, M.shape[1] + 1)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        # the margin: bias + contributions is XGBoost's own prediction
        margin = booster.predict(xgb.DMatrix(rows, feature_names=booster.feature_names,
                                             feature_types=booster.feature_types, enable_categorical=True),
                                 output_margin=True).reshape(len(rows), n_out)
        np.testing.assert_allclose(got.sum(axis=2), margin, rtol=0, atol=1e-4)
    # features the trees never split on get exactly zero
    unused = [j for j in range(M.shape[1]) if j not in tables.features]
    assert np.all(tables.contributions(M[:500])[:, :, unused] == 0.0)


def test_row_loop_and_vectorized_path_give_the_same_bits(data):
    _, M, _, n_categories = data
    booster = _booster(data, 3)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    rows = M[:400]
    assert np.array_equal(tables._contributions_loop(rows), tables.contributions(rows))
    # the dispatcher: small batches take the loop, larger ones numpy; same answer either way
    small = rows[: st.SMALL_BATCH]
    assert np.array_equal(tables.contributions(small), tables.contributions(rows)[: st.SMALL_BATCH])


@pytest.mark.parametrize("multiclass", [False, True], ids=["one output", "three classes"])
def test_few_rows_path_matches_xgboost_one_row_at_a_time(data, multiclass):
    """A few rows (an HTTP record, a recommendation's protocols) go through the pair gathers;
    each row alone gives the numbers it gets among others, and XGBoost's."""
    _, M, _, n_categories = data
    booster = _booster(data, 3, multiclass)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    rows = _edge_rows(tables, M)[: st.SMALL_BATCH]
    together = tables.contributions(rows)
    alone = np.concatenate([tables.contributions(rows[i:i + 1]) for i in range(len(rows))])
    assert np.array_equal(together, alone)
    np.testing.assert_allclose(together, _xgb_contribs(booster, rows, 3 if multiclass else 1), rtol=0, atol=TOL)


@pytest.mark.parametrize("multiclass", [False, True], ids=["one output", "three classes"])
def test_margins_from_cells_and_from_disjoint_parts_of_them_are_xgboosts(data, multiclass):
    """What a recommendation's grid reads: every tree's cell index is the sum of the parts its
    columns set, so the margins of a row are the same from its whole cells and from the offsets
    of two disjoint parts added up, and XGBoost's up to float32 rounding."""
    X, M, _, n_categories = data
    booster = _booster(data, 3, multiclass)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    rows = M[:200]
    protocol = [j for j, f in enumerate(X.columns) if f.startswith("exercise_")]
    person = [j for j in range(M.shape[1]) if j not in protocol]
    whole = tables.partial_cells(rows, tables.pairs_of(range(M.shape[1])))
    parts = (tables.cell_offsets(tables.partial_cells(rows, tables.pairs_of(protocol)))
             + tables.partial_cells(rows, tables.pairs_of(person)).astype(np.int32))
    from_cells = tables.margins_at(tables.cell_offsets(whole))
    np.testing.assert_array_equal(tables.margins_at(parts), from_cells)
    dm = xgb.DMatrix(rows, feature_names=booster.feature_names, feature_types=booster.feature_types,
                     enable_categorical=True)
    want = booster.predict(dm, output_margin=True).reshape(len(rows), -1)
    assert from_cells.shape == want.shape
    np.testing.assert_allclose(from_cells, want, rtol=0, atol=1e-4)


def test_trees_without_splits_leave_everything_to_the_bias(data):
    X, M, y, n_categories = data
    booster = xgb.train({"max_depth": 3, "gamma": 1e12, "nthread": 1}, xgb.DMatrix(X, y, enable_categorical=True), 5)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    got = tables.contributions(M[:3])
    assert np.all(got[:, :, :-1] == 0.0)
    np.testing.assert_allclose(got, _xgb_contribs(booster, M[:3], 1), rtol=0, atol=TOL)


def test_deep_trees_are_not_tabulated(data):
    _, _, _, n_categories = data
    booster = _booster(data, 6, rounds=10)
    assert ShapTables.build(booster, list(booster.feature_types), n_categories) is None


def test_a_wrong_split_rule_is_caught_by_the_build_check(data, monkeypatch):
    """If the tables misread XGBoost's categorical rule (categories in a split's set go
    right), the check against pred_contribs refuses them instead of serving wrong numbers."""
    _, _, _, n_categories = data
    booster = _booster(data, 3)
    assert ShapTables.build(booster, list(booster.feature_types), n_categories) is not None

    def in_set_goes_left(f, g, split):
        _col, is_cat, cond, default_left, cat_set = split
        if g == f.n_classes - 1:
            return int(default_left)
        if is_cat:
            return int(g in cat_set)
        return int(f.representative(g) < cond)

    monkeypatch.setattr(st, "_decision", in_set_goes_left)
    assert ShapTables.build(booster, list(booster.feature_types), n_categories) is None
    monkeypatch.undo()

    # a row loop that put a value equal to a threshold on the wrong side is refused too
    def class_of_below(self, v):
        import bisect
        import math

        if math.isnan(v):
            return self.n_classes - 1
        if self.categorical:
            return int(v)
        return bisect.bisect_left(self._threshold_list, float(np.float32(v)))

    monkeypatch.setattr(st._Feature, "class_of", class_of_below)
    assert ShapTables.build(booster, list(booster.feature_types), n_categories) is None


def test_a_category_code_outside_the_model_is_refused(data):
    _, M, _, n_categories = data
    booster = _booster(data, 3)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    col = next(c for c, f in tables.features.items() if f.categorical)
    bad = M[:40].copy()
    bad[0, col] = n_categories[col]  # one past the last code
    for rows in (bad[:1], bad):  # the loop and the vectorized path
        with pytest.raises(ValueError, match="category code outside"):
            tables.contributions(rows)


def _one_output(meta):
    """The champion's metadata for a one-output (expected change) booster."""
    from dataclasses import replace

    from model_runtime.links import ORDINAL, MarginCalibration

    return replace(meta, outputs=("eih_pct",), link=ORDINAL, calibration=MarginCalibration(1.25, (0.5,), 17.0, True))


def test_predictor_explains_with_tables_and_falls_back_for_deep_trees(trained_model, data):
    """EIHPredictor uses the tables when it can (same numbers as XGBoost to 1e-5, a record
    gets the same bits alone and in a batch) and XGBoost's call when it cannot."""
    from model_runtime.loading import load_model

    X, M, _, _ = data
    meta = _one_output(load_model(trained_model.uri).predictor.meta)
    for depth, tabulated in ((3, True), (6, False)):
        pred = EIHPredictor(_booster(data, depth, rounds=12), meta)
        assert (pred.shap_tables() is not None) is tabulated
        frame = X.iloc[:300]
        ex = pred.explain_features(frame)
        want = pred.booster.predict(pred._dmatrix(frame), pred_contribs=True)
        np.testing.assert_allclose(ex.contributions[:, 0, :] * pred.temperature, want[:, :-1], rtol=0, atol=TOL)
        np.testing.assert_allclose(ex.margins, ex.base + ex.contributions.sum(axis=2), rtol=0, atol=1e-9)
        one = pred.explain_matrix(pred.frame_matrix(frame.iloc[[7]]))
        assert np.array_equal(one.contributions[0], pred.explain_matrix(pred.frame_matrix(frame)).contributions[7]) \
            or not tabulated
        assert np.array_equal(pred.frame_matrix(frame), M[:300], equal_nan=True)


def test_refuses_what_xgboost_refuses_and_reads_codes_in_float32(data):
    _, M, _, n_categories = data
    booster = _booster(data, 3)
    tables = ShapTables.build(booster, list(booster.feature_types), n_categories)
    num = next(c for c, f in tables.features.items() if not f.categorical)
    for bad_value in (np.inf, -np.inf, 1e39):
        bad = M[:40].copy()
        bad[3, num] = bad_value
        for rows in (bad[:5], bad):  # the loop and the vectorized path
            with pytest.raises(ValueError, match="infinite value or one beyond float32"):
                tables.contributions(rows)
    # a code that is an integer in float32 (as XGBoost reads it) is that category on both paths
    cat = next(c for c, f in tables.features.items() if f.categorical)
    near = M[:40].copy()
    near[:, cat] = 1.0
    near[0, cat] = 1.0000000001
    assert np.array_equal(tables.contributions(near[:1]), tables.contributions(near)[:1])
    np.testing.assert_allclose(tables.contributions(near[:1]), _xgb_contribs(booster, near[:1], 1), rtol=0, atol=TOL)


def test_models_the_tables_do_not_know_are_left_to_xgboost(data):
    X, _, y, n_categories = data
    types = list(_booster(data, 2, rounds=1).feature_types)
    dm = xgb.DMatrix(X, y, enable_categorical=True)
    dart = xgb.train({"booster": "dart", "max_depth": 2, "nthread": 1, "rate_drop": 0.1}, dm, 5)
    forest = xgb.train({"num_parallel_tree": 3, "max_depth": 2, "nthread": 1, "subsample": 0.8}, dm, 2)
    empty = xgb.train({"max_depth": 2, "nthread": 1}, dm, 0)
    for booster in (dart, forest, empty):
        assert ShapTables.build(booster, types, n_categories) is None


def test_predictor_recodes_categories_by_name_like_xgboost(trained_model, data):
    """A frame whose categorical column lists its categories in another order gets the
    same explanation as XGBoost's own call, which matches categories by name."""
    from model_runtime.loading import load_model

    X, _, _, _ = data
    pred = EIHPredictor(_booster(data, 3, rounds=12), _one_output(load_model(trained_model.uri).predictor.meta))
    assert pred.shap_tables() is not None
    frame = X.iloc[:200].copy()
    col = frame["pain_condition"]
    frame["pain_condition"] = col.cat.reorder_categories(list(reversed(col.cat.categories)))
    ex = pred.explain_features(frame)
    want = pred.booster.predict(pred._dmatrix(frame), pred_contribs=True)
    np.testing.assert_allclose(ex.contributions[:, 0, :] * pred.temperature, want[:, :-1], rtol=0, atol=TOL)
    frame["pain_condition"] = col.cat.add_categories(["not_a_condition"])
    frame.loc[frame.index[0], "pain_condition"] = "not_a_condition"
    with pytest.raises(ValueError, match="pain_condition: a category the model does not know"):
        pred.explain_features(frame)
