"""Simple baselines, fitted on the training split and scored on the same test rows:

- null: the training split's class frequencies, for everyone;
- logreg: multinomial logistic regression on the model's own contract fields (by default
  only those measured before the bout) and derived features;
- cpm_rule: class frequencies within CPM strata (impaired < 0 %, weak 0-20 %, efficient > 20 %);
- psychosocial_rule: a STarT Back-style count of psychosocial risk items (PCS >= 30,
  TSK-17 >= 37, PSEQ < 20, HADS anxiety >= 8, HADS depression >= 8, pain NRS >= 7;
  missing items count as absent) in low (0-1) / medium (2-3) / high (4+) strata.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from data_contracts.fields import PREDICTORS
from features.pipeline import ContractFeatures, LinearDesign

K = 3


def _stratum_probs(strata_train: np.ndarray, y: np.ndarray, n_strata: int, prior_weight: float = 1.0) -> np.ndarray:
    prior = np.bincount(y, minlength=K) / len(y)
    table = np.zeros((n_strata, K))
    for s in range(n_strata):
        counts = np.bincount(y[strata_train == s], minlength=K)
        table[s] = (counts + prior_weight * prior) / (counts.sum() + prior_weight)
    return table


def null_probs(y_train: np.ndarray, n: int) -> np.ndarray:
    """(n, 3): the training split's class frequencies, the same for every row."""
    return np.tile(np.bincount(y_train, minlength=K) / len(y_train), (n, 1))


def cpm_strata(df: pd.DataFrame) -> np.ndarray:
    """CPM stratum of each row: 0 impaired (cpm_pct < 0), 1 weak (0-20 %), 2 efficient (> 20 %)."""
    c = df["cpm_pct"].to_numpy(dtype="float64")
    return np.where(c < 0, 0, np.where(c <= 20, 1, 2))


def psychosocial_strata(df: pd.DataFrame) -> np.ndarray:
    """Psychosocial stratum of each row from its count of risk items (module docstring):
    0 low (0-1), 1 medium (2-3), 2 high (4+); a missing value or absent optional column
    counts as an absent item."""
    def ge(col, v):
        return (df[col].to_numpy(dtype="float64") >= v) if col in df else np.zeros(len(df), bool)

    items = (
        ge("pcs_total", 30).astype(int)
        + ge("tsk17_total", 37)
        + (df["pseq_total"].to_numpy(dtype="float64") < 20)
        + ge("hads_anxiety", 8)
        + ge("hads_depression", 8)
        + ge("pain_intensity_nrs", 7)
    )
    return np.where(items <= 1, 0, np.where(items <= 3, 1, 2))


def rule_probs(strata_fn, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame) -> np.ndarray:
    """Test probabilities (n_test, 3) of a stratum rule: each test row gets its stratum's class
    frequencies in the training split, shrunk toward the overall frequencies by one pseudo-row
    (so an empty stratum gets the class prior). `strata_fn` maps a frame to codes 0-2."""
    table = _stratum_probs(strata_fn(train), y_train, 3)
    return table[strata_fn(test)]


def logreg_model(seed: int = 0, derived: tuple[str, ...] = (), predictors: tuple[str, ...] = PREDICTORS):
    """The unfitted logistic-regression baseline: the model's contract fields `predictors`
    (plus `derived`) -> dense linear design (median imputation with missing indicators,
    one-hot, standardized) -> multinomial logistic regression (C = 1)."""
    return make_pipeline(
        ContractFeatures(predictors=predictors, derived=derived),
        LinearDesign(),
        LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
    )


def fit_baselines(train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, seed: int = 0,
                  derived: tuple[str, ...] = (), predictors: tuple[str, ...] = PREDICTORS) -> dict[str, np.ndarray]:
    """Test-set probabilities (n_test, 3) of every baseline (the logistic regression on the
    same features as the model: its contract fields and derived ones)."""
    lr = logreg_model(seed, derived, predictors).fit(train, y_train)
    return {
        "null": null_probs(y_train, len(test)),
        "logreg": lr.predict_proba(test),
        "cpm_rule": rule_probs(cpm_strata, train, y_train, test),
        "psychosocial_rule": rule_probs(psychosocial_strata, train, y_train, test),
    }
