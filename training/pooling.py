"""The prescription's pooling, estimated at training time (model_runtime/protocol_grid.py
says what it is and why): the mean benefit profile over the protocol grid of each pain
condition, and the shrinkage factor of the personal deviations, from two models fitted on
the two halves of the training split. No outcome and no truth is read: only the models'
predictions for a sample of the training people over the grid.

Stored in the model's metadata (`extra["pooling"]`): aggregates over people (a profile per
condition), never a person's values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, RESPONSES
from model_runtime.predictor import EIHPredictor
from model_runtime.protocol_grid import (
    PROTOCOL_FIELDS,
    condition_profiles,
    default_grid,
    deviations,
    shrinkage,
)
from training import tune

REFERENCE_PEOPLE = 1500
"""People of the training split scored over the grid (x 312 protocols x 3 models)."""
HYPO, HYPER = RESPONSES.index("hypoalgesia"), RESPONSES.index("hyperalgesia")


def prescribable(predictor: EIHPredictor) -> bool:
    """Whether the model can rank protocols: it reads every protocol field and nothing measured after the bout."""
    return (all(f in predictor.inputs for f in PROTOCOL_FIELDS)
            and not any(BY_NAME[f].measured == "after" for f in predictor.inputs))


def grid_benefit(predictor: EIHPredictor, people: pd.DataFrame, grid) -> np.ndarray:
    """(people, G) the model's benefit P(hypoalgesia) - P(hyperalgesia) of each person at each protocol."""
    rows = people.loc[people.index.repeat(len(grid))].reset_index(drop=True)
    for f, v in zip(PROTOCOL_FIELDS, (grid.modality, grid.intensity, grid.duration), strict=True):
        values = np.tile(v, len(people))
        rows[f] = pd.Categorical(values, categories=people[f].cat.categories) if f == "exercise_modality" and \
            isinstance(people[f].dtype, pd.CategoricalDtype) else values
    P = predictor.predict_proba(rows).reshape(len(people), len(grid), 3)
    return P[..., HYPO] - P[..., HYPER]


def fit_pooling(predictor: EIHPredictor, X: pd.DataFrame, target: np.ndarray, df: pd.DataFrame,
                train_idx: np.ndarray, params: dict, n_rounds: int, seed: int) -> dict | None:
    """{"shrinkage", "profiles", ...} for a prescribable model (None otherwise). The halves refit
    the first booster (the expected change, or the class margins) with the chosen parameters
    and rounds; a spread booster is shared."""
    if not prescribable(predictor):
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(train_idx)
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    models = [EIHPredictor([tune.fit_final(X.iloc[h], target[h], params, n_rounds), *predictor.boosters[1:]],
                           predictor.meta) for h in halves]
    people = df.iloc[order[:REFERENCE_PEOPLE]].reset_index(drop=True)
    cond = people["pain_condition"].astype(str).to_numpy()
    grid = default_grid()
    lam = shrinkage(*(deviations(grid_benefit(m, people, grid), cond) for m in models))
    profiles = condition_profiles(grid_benefit(predictor, people, grid), cond)
    keys = grid.keys()
    return {"shrinkage": round(lam, 4), "reference_people": len(people),
            "method": "personal deviations of two half-sample models: shrinkage = signal / (signal + noise / 2)",
            "profiles": {c: dict(zip(keys, np.round(v, 6).tolist(), strict=True)) for c, v in profiles.items()}}
