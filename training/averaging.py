"""Seed averaging of the expected-change booster: K fits of one configuration that differ
only in their random seed (the rows and columns each tree samples), averaged, and merged
into one ordinary XGBoost booster.

Why. One fit's protocol and person effects carry the noise of its own row and column
draws; the average of K fits keeps what they agree on (benchmarks/model_bench.py measures
the gain against one fit of the same search). Why one booster. The average of K tree sums
is itself a tree sum: every tree keeps its splits and carries 1/K of its leaf values, so the
merged booster predicts the mean margin, and every consumer (XGBoost's TreeSHAP, the
explanation tables, the Dask payload, the Bento) sees one booster whose exact Shapley
contributions are the mean of the K fits' contributions (Shapley values are linear in the
model). `merge` also takes weights: training/varying.py blends the seed average with trees of
another origin the same way.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import xgboost as xgb

KEY = "average_of"
"""The key of a parameter dict that asks `fit`/`oof` for a seed average (not an XGBoost parameter)."""


def split_params(params: dict) -> tuple[dict, int]:
    """XGBoost's own parameters and the number of fits to average (1 without the key)."""
    k = int(params.get(KEY, 1))
    if k < 1:
        raise ValueError(f"{KEY} must be at least 1")
    return {p: v for p, v in params.items() if p != KEY}, k


def seeds(params: dict, k: int) -> list[dict]:
    """The parameters of the K fits: the configuration's seed, then seed + 1, ..."""
    base = int(params.get("seed", 0))
    return [{**params, "seed": base + i} for i in range(k)]


def fits(params: dict, dtrain: xgb.DMatrix, n_rounds: int) -> list[xgb.Booster]:
    """The K seed fits `params` asks for (one fit without the key)."""
    own, k = split_params(params)
    return [xgb.train(p, dtrain, num_boost_round=n_rounds) for p in seeds(own, k)]


def fit(params: dict, dtrain: xgb.DMatrix, n_rounds: int) -> xgb.Booster:
    """One booster: the single fit, or the merged average of the K seed fits."""
    return merge(fits(params, dtrain, n_rounds))


IDENTITY_LINK = ("reg:squarederror",)
"""Objectives whose base score is a margin: boosters of these may differ in base score."""
SHARED_PARAM = ("num_class", "num_feature", "num_target")


def merge(boosters: list[xgb.Booster], weights: list[float] | None = None) -> xgb.Booster:
    """One booster predicting the weighted mean margin of `boosters` (equal weights by default;
    weights are normalized to sum to 1). They share objective, features and categories, and
    base score unless the objective's base score is a margin (`IDENTITY_LINK`): then the
    difference to the first booster's base score joins the leaves of each one's first tree.
    Scalar leaves, one tree per output and round."""
    if not boosters:
        raise ValueError("nothing to average")
    w = np.full(len(boosters), 1.0 / len(boosters)) if weights is None else np.asarray(weights, dtype="float64")
    if len(w) != len(boosters) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("one non-negative weight per booster, not all zero")
    w = w / w.sum()
    if len(boosters) == 1:
        return boosters[0]
    models = [json.loads(b.save_raw("json")) for b in boosters]
    first = models[0]["learner"]
    bases = [_base_score(m) for m in models]
    for m, base in zip(models, bases, strict=True):
        lm = m["learner"]
        gb = lm["gradient_booster"]
        if gb.get("name") != "gbtree" or gb["model"]["gbtree_model_param"].get("num_parallel_tree", "1") != "1":
            raise ValueError("only plain gradient-boosted trees can be averaged")
        same = (all(lm["learner_model_param"][k] == first["learner_model_param"][k] for k in SHARED_PARAM)
                and lm["objective"] == first["objective"]
                and lm["feature_names"] == first["feature_names"] and lm["feature_types"] == first["feature_types"]
                and gb["model"].get("cats") == first["gradient_booster"]["model"].get("cats"))
        if not same:
            raise ValueError("boosters to average must share objective, features and categories")
        if base != bases[0] and (first["objective"]["name"] not in IDENTITY_LINK or len(base) > 1):
            raise ValueError("boosters to average must share their base score (unless it is one margin)")
    merged = copy.deepcopy(models[0])
    gb = merged["learner"]["gradient_booster"]
    trees, info, indptr = [], [], [0]
    for m, weight, base in zip(models, w, bases, strict=True):
        src = m["learner"]["gradient_booster"]["model"]
        for i, tree in enumerate(src["trees"]):
            if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
                raise ValueError("vector-leaf trees cannot be averaged")
            # one tree per round for these boosters: every row passes through the first tree once
            shift = weight * (base[0] - bases[0][0]) if i == 0 else 0.0
            trees.append(_scaled(tree, weight, len(trees), shift))
        info += src["tree_info"]
        offset = indptr[-1]
        indptr += [offset + int(v) for v in src["iteration_indptr"][1:]]
    model = gb["model"]
    model["trees"], model["tree_info"], model["iteration_indptr"] = trees, info, indptr
    model["gbtree_model_param"]["num_trees"] = str(len(trees))
    out = xgb.Booster()
    out.load_model(bytearray(json.dumps(merged).encode()))
    # the model JSON holds no training parameters: carry the fits' own (objective, monotone
    # constraints, threads) so the merged booster reports them as one fit does
    out.load_config(boosters[0].save_config())
    return out


def _base_score(model: dict) -> tuple[float, ...]:
    """The base score of a booster's JSON model, one value per output ("[v1,v2]" in XGBoost 3's text)."""
    return tuple(float(v) for v in str(model["learner"]["learner_model_param"]["base_score"]).strip("[]").split(","))


def _scaled(tree: dict, factor: float, new_id: int, shift: float = 0.0) -> dict:
    """A copy of a JSON tree with its leaf values (and node weights) multiplied by `factor`,
    `shift` added to every leaf."""
    t = dict(tree)
    leaf = np.asarray(t["left_children"]) == -1
    values = np.asarray(t["split_conditions"], dtype="float64")
    values[leaf] = values[leaf] * factor + shift
    t["split_conditions"] = values.tolist()
    t["base_weights"] = (np.asarray(t["base_weights"], dtype="float64") * factor + shift).tolist()
    t["id"] = new_id
    return t
