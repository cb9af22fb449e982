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

from model_runtime.predictor import EIHPredictor
from model_runtime.protocol_grid import (
    GridScorer,
    PrescriptionRefused,
    benefit,
    condition_profiles,
    deviations,
    shrinkage,
)
from training import tune

REFERENCE_PEOPLE = 1500
"""People of the training split scored over the grid (x 312 protocols x 3 models)."""


def fit_pooling(predictor: EIHPredictor, X: pd.DataFrame, target: np.ndarray, df: pd.DataFrame,
                train_idx: np.ndarray, params: dict, n_rounds: int, seed: int) -> dict | None:
    """{"shrinkage", "profiles", ...} for a prescribable model (None otherwise). The halves refit
    the first booster (the expected change, or the class margins) with the chosen parameters
    and rounds; a spread booster is shared."""
    try:
        scorers = [GridScorer(predictor)]
    except PrescriptionRefused:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(train_idx)
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    scorers += [GridScorer(EIHPredictor([tune.fit_final(X.iloc[h], target[h], params, n_rounds),
                                         *predictor.boosters[1:]], predictor.meta)) for h in halves]
    people = predictor.frame_matrix(X.iloc[order[:REFERENCE_PEOPLE]])
    cond = df["pain_condition"].iloc[order[:REFERENCE_PEOPLE]].astype(str).to_numpy()
    full, half_a, half_b = (benefit(gs.score(people)) for gs in scorers)
    lam = shrinkage(deviations(half_a, cond), deviations(half_b, cond))
    profiles = condition_profiles(full, cond)
    keys = scorers[0].grid.keys()
    return {"shrinkage": round(lam, 4), "reference_people": len(cond),
            "method": "personal deviations of two half-sample models: shrinkage = signal / (signal + noise / 2)",
            "profiles": {c: dict(zip(keys, np.round(v, 6).tolist(), strict=True)) for c, v in profiles.items()}}
