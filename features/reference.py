"""Training reference statistics: what the model saw, per contract field.

Stored inside the model artifact and used for out-of-range warnings (serving, batch)
and for drift (population stability index, PSI) of inputs and attributions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_FLAG = 0.2
_EPS = 1e-4


def numeric_reference(values: np.ndarray, n_bins: int = 10) -> dict:
    v = np.asarray(values, dtype="float64")
    obs = v[~np.isnan(v)]
    if obs.size == 0:
        return {"kind": "number", "missing_rate": 1.0, "edges": [], "proportions": [], "min": None, "max": None}
    qs = np.unique(np.quantile(obs, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(qs, obs, side="right"), minlength=len(qs) + 1)
    return {
        "kind": "number",
        "missing_rate": float(1 - obs.size / v.size),
        "min": float(obs.min()),
        "max": float(obs.max()),
        "p01": float(np.quantile(obs, 0.01)),
        "p99": float(np.quantile(obs, 0.99)),
        "edges": [float(x) for x in qs],
        "proportions": [float(x) for x in counts / obs.size],
    }


def categorical_reference(values: pd.Series, categories: list[str]) -> dict:
    codes = pd.Categorical(values, categories=categories).codes
    counts = np.bincount(np.where(codes < 0, len(categories), codes), minlength=len(categories) + 1)
    return {
        "kind": "category",
        "categories": list(categories),
        "missing_rate": float(counts[-1] / max(len(codes), 1)),
        "proportions": [float(x) for x in counts[:-1] / max(counts[:-1].sum(), 1)],
    }


def build_reference(X: pd.DataFrame) -> dict:
    """Reference statistics of a feature frame (ContractFeatures output)."""
    ref = {}
    for name in X.columns:
        col = X[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            ref[name] = categorical_reference(col, list(col.cat.categories))
        else:
            ref[name] = numeric_reference(col.to_numpy(dtype="float64"))
    return ref


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(np.asarray(expected, dtype="float64"), _EPS, None)
    a = np.clip(np.asarray(actual, dtype="float64"), _EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def bin_counts(ref: dict, values) -> np.ndarray:
    """Counts of `values` in the reference's bins (numbers: quantile bins; categories: levels)."""
    if ref["kind"] == "number":
        v = np.asarray(values, dtype="float64")
        v = v[~np.isnan(v)]
        return np.bincount(np.searchsorted(np.asarray(ref["edges"]), v, side="right"), minlength=len(ref["edges"]) + 1)
    codes = pd.Categorical(values, categories=ref["categories"]).codes
    codes = codes[codes >= 0]
    return np.bincount(codes, minlength=len(ref["categories"]))


def psi_from_counts(ref: dict, counts: np.ndarray) -> float | None:
    """PSI of observed bin counts against the reference proportions (None: nothing observed)."""
    if counts.sum() == 0 or not ref["proportions"]:
        return None
    return _psi(np.asarray(ref["proportions"]), counts / counts.sum())


def psi(ref: dict, values) -> float | None:
    return psi_from_counts(ref, bin_counts(ref, values))


def out_of_range(ref: dict, value) -> bool:
    """A number outside the range seen in training (categories: a level never seen)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    if ref["kind"] == "number":
        return ref["min"] is not None and (value < ref["min"] or value > ref["max"])
    try:
        i = ref["categories"].index(value)
    except ValueError:
        return True
    return ref["proportions"][i] == 0.0
