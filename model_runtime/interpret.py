"""What a prediction comes with beside its probabilities: the hyperalgesia risk level,
the optional inputs that were missing, and warnings for values outside what the model
saw in training. Each works on the model matrix (`model_runtime.matrix`) and on a
contract frame, with the same texts in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME

RISK_LEVELS = ("low", "moderate", "high")


def risk_code(p_hyper: np.ndarray, cutoffs: Mapping[str, float]) -> np.ndarray:
    """0 / 1 / 2 (positions in `RISK_LEVELS`) hyperalgesia risk of each probability."""
    lo, hi = float(cutoffs["moderate"]), float(cutoffs["high"])
    p = np.asarray(p_hyper, dtype="float64")
    return np.where(p >= hi, 2, np.where(p >= lo, 1, 0))


def risk_level(p_hyper: np.ndarray, cutoffs: Mapping[str, float]) -> np.ndarray:
    """'low' / 'moderate' / 'high' hyperalgesia risk of each probability."""
    return np.asarray(RISK_LEVELS)[risk_code(p_hyper, cutoffs)]


def _range_text(name: str, r: dict) -> str:
    if r["kind"] == "number":
        return f"{name} is outside the range seen in training ({r['min']:g} to {r['max']:g})"
    return f"{name} has a category not seen in training"


def _seen(r: dict) -> list:
    return [c for c, p in zip(r["categories"], r["proportions"]) if p > 0]


class InputChecks:
    """Missing optional inputs and out-of-range warnings for one model."""

    def __init__(self, fields: tuple[str, ...], inputs: tuple[str, ...], reference: Mapping,
                 categories: Mapping[str, list]):
        self.fields, self.inputs, self.reference = fields, inputs, reference
        self._optional = [j for j, f in enumerate(inputs) if not BY_NAME[f].required]  # inputs come first
        self._optional_names = np.asarray([fields[j] for j in self._optional], dtype=object)
        # one check per input with a reference, in field order: (column, kind, bounds or seen codes, text)
        checks = []
        for j, name in enumerate(inputs):  # warnings speak of inputs only, not derived features
            r = reference.get(name)
            if r is None or (r["kind"] == "number" and r["min"] is None):
                continue
            if r["kind"] == "number":
                checks.append((j, "number", (float(r["min"]), float(r["max"])), _range_text(name, r)))
            else:
                seen = _seen(r)
                codes = np.asarray([float(i) for i, c in enumerate(categories.get(name, [])) if c in seen])
                checks.append((j, "category", codes, _range_text(name, r)))
        self._checks = checks

    def missing_optional_matrix(self, X: np.ndarray) -> list[list[str]]:
        """Per row of a model matrix, the optional inputs that were missing."""
        miss = np.isnan(X[:, self._optional]) if self._optional else np.zeros((len(X), 0), dtype=bool)
        return [list(self._optional_names[row]) for row in miss]

    def range_warnings_matrix(self, X: np.ndarray) -> list[list[str]]:
        """Per row of a model matrix, the inputs outside what the model saw in training."""
        out: list[list[str]] = [[] for _ in range(len(X))]
        if not self._checks:
            return out
        with np.errstate(invalid="ignore"):
            flags = [((X[:, j] < b[0]) | (X[:, j] > b[1])) if k == "number" else (~np.isnan(X[:, j]) & ~np.isin(X[:, j], b))
                     for j, k, b, _t in self._checks]
        F = np.column_stack(flags)
        texts = [c[3] for c in self._checks]
        for i in np.flatnonzero(F.any(axis=1)):
            out[i] = [texts[k] for k in np.flatnonzero(F[i])]
        return out

    def missing_optional(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row of a contract frame, the optional inputs that were missing (absent columns too)."""
        optional = [f for f in self.inputs if not BY_NAME[f].required]
        present = [f for f in optional if f in df.columns]
        absent = [f for f in optional if f not in df.columns]
        miss = df[present].isna().to_numpy() if present else np.zeros((len(df), 0), dtype=bool)
        names = np.asarray(present, dtype=object)
        return [list(names[row]) + absent for row in miss]

    def range_warnings(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row of a contract frame, the inputs outside what the model saw in training."""
        out: list[list[str]] = [[] for _ in range(len(df))]
        for name in self.inputs:
            r = self.reference.get(name)
            if r is None or name not in df.columns or (r["kind"] == "number" and r["min"] is None):
                continue
            col = df[name]
            if r["kind"] == "number":
                v = col.to_numpy(dtype="float64")
                bad = (v < r["min"]) | (v > r["max"])
            else:
                bad = (~col.isin(_seen(r)) & col.notna()).to_numpy()
            for i in np.flatnonzero(bad):
                out[i].append(_range_text(name, r))
        return out
