"""The interaction structure of the boosted model: which columns one tree may combine
(features/interactions.py), how training configures it, and that trained trees keep it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_contracts.fields import BEFORE_BOUT_PREDICTORS
from data_contracts.labels import eih_pct
from data_contracts.validate import validate_frame
from features.derived import EXERCISE_DOSE, EXERCISE_LOAD
from features.interactions import PROTOCOL_FIELDS, READ_TOGETHER, groups, protocol_columns
from features.pipeline import ContractFeatures
from training import tune
from training.config import TrainConfig, load_config

COLUMNS = [*BEFORE_BOUT_PREDICTORS, EXERCISE_DOSE, EXERCISE_LOAD]
PROTOCOL = {*PROTOCOL_FIELDS, EXERCISE_DOSE, EXERCISE_LOAD}


def _allowed_person_sets(columns) -> list[set[str]]:
    return [set(g) - set(protocol_columns(columns)) for g in groups(columns)]


def test_every_group_holds_the_whole_protocol_and_every_column_has_a_group():
    gs = groups(COLUMNS)
    person = [c for c in COLUMNS if c not in PROTOCOL]
    assert set(protocol_columns(COLUMNS)) == PROTOCOL
    assert all(PROTOCOL <= set(g) for g in gs)
    assert set().union(*map(set, gs)) == set(COLUMNS)
    # one group per person column, and one per group read together
    assert len(gs) == len(person) + len(READ_TOGETHER)
    multi = [s for s in _allowed_person_sets(COLUMNS) if len(s) > 1]
    assert sorted(map(sorted, multi)) == sorted(sorted(g) for g in READ_TOGETHER)


def test_groups_follow_the_columns_present():
    cols = [c for c in BEFORE_BOUT_PREDICTORS if c != "bdnf_matrix"]  # no derived features, no assay matrix
    gs = groups(cols)
    assert set(protocol_columns(cols)) == set(PROTOCOL_FIELDS)
    assert not any({"bdnf_ng_ml", "bdnf_matrix"} <= set(g) for g in gs)
    assert ["bdnf_ng_ml", *PROTOCOL_FIELDS] in gs
    assert groups(list(PROTOCOL_FIELDS)) == [list(PROTOCOL_FIELDS)]


def test_config_default_is_structured_and_free_lifts_it():
    cfg = TrainConfig()
    assert cfg.interactions == "person_x_protocol" and cfg.flat()["interactions"] == "person_x_protocol"
    assert tune.base_params(cfg, 0)["interaction_constraints"] == groups(COLUMNS)
    assert "interaction_constraints" not in tune.base_params(load_config(None, interactions="free"), 0)
    with pytest.raises(ValueError, match="interactions must be one of person_x_protocol, free"):
        load_config(None, interactions="pairs")


def _person_sets_of_paths(booster) -> list[set[str]]:
    """The person fields on each root-to-leaf path of every tree (a leaf's value depends on
    its path's fields only, so the paths are what the structure constrains)."""
    nodes = booster.trees_to_dataframe().set_index("ID")
    out = []

    def walk(node: str, seen: frozenset) -> None:
        row = nodes.loc[node]
        if row.Feature == "Leaf":
            out.append(set(seen) - PROTOCOL)
            return
        for child in (row.Yes, row.No):
            walk(child, seen | {row.Feature})

    for t in nodes.Tree.unique():
        walk(f"{t}-0", frozenset())
    return out


@pytest.fixture(scope="module")
def frame():
    from simulation import simulate

    df, _ = simulate(1500, seed=5, n_sites=1)
    valid = validate_frame(df).valid
    X = ContractFeatures(predictors=BEFORE_BOUT_PREDICTORS, derived=(EXERCISE_DOSE, EXERCISE_LOAD)).fit(valid).transform(valid)
    return X, eih_pct(valid).to_numpy(float)


@pytest.mark.parametrize("structure", ["person_x_protocol", "free"])
def test_trained_trees_combine_person_fields_only_within_a_group(frame, structure):
    X, target = frame
    cfg = load_config(None, interactions=structure, average_of=2)
    trial = tune.Trial(0, {"max_depth": 5, "learning_rate": 0.1, "min_child_weight": 2.0, "subsample": 0.9,
                           "colsample_bytree": 0.9, "reg_lambda": 1.0, "gamma": 0.0}, 0.0, 60, 0.0)
    booster = tune.fit_final(X, target, tune.fit_params(cfg, 0, trial), 60)  # the merged seed average
    allowed = _allowed_person_sets(list(X.columns))
    outside = [s for s in _person_sets_of_paths(booster) if not any(s <= a for a in allowed)]
    if structure == "free":  # the check can fail: free trees do combine unrelated person fields
        assert len(outside) > 50
    else:
        assert outside == []
        kept = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
        assert kept["interaction_constraints"] != ""
    # the explanation stays exact: contributions add up to the margin
    dm = tune.dmatrix(X.iloc[:200])
    phi = booster.predict(dm, pred_contribs=True)
    np.testing.assert_allclose(phi.sum(axis=1), booster.predict(dm, output_margin=True), rtol=0, atol=1e-3)


def test_model_card_states_the_structure_only_when_it_was_trained_with_it():
    from types import SimpleNamespace

    from model_runtime.links import NORMAL_SPREAD
    from training.model_card import _model_kind

    def card(**shape):
        meta = SimpleNamespace(model_shape={"family": "xgboost", "max_depth": 4, "n_rounds": 200, "average_of": 5,
                                            "spread_max_depth": 3, "spread_n_rounds": 80, **shape},
                               link=NORMAL_SPREAD, sigma=None)
        return _model_kind(meta)

    text = card(interactions="person_x_protocol")
    assert "one person field or one group of fields read together ({bdnf_ng_ml, bdnf_matrix}" in text
    assert "{pain_condition, sex})" in text and text.index("depth 4") < text.index("read together")
    assert "read together" not in card(interactions="free") and "read together" not in card()


def test_trees_distilled_from_the_varying_coefficient_regression_keep_the_structure(frame):
    from training import varying

    X, target = frame
    params = {**tune.fit_params(load_config(None, average_of=1), 0, tune.Trial(0, {
        "max_depth": 3, "learning_rate": 0.1, "min_child_weight": 2.0, "subsample": 0.9, "colsample_bytree": 0.9,
        "reg_lambda": 1.0, "gamma": 0.0}, 0.0, 20, 0.0)), varying.RANK: 1, varying.ALPHA: 300.0}
    distilled = varying.component(X, target, params)
    allowed = _allowed_person_sets(list(X.columns))
    paths = _person_sets_of_paths(distilled)
    assert len(paths) > 1000 and [s for s in paths if not any(s <= a for a in allowed)] == []
