"""Prediction intervals for the measured change of the pain threshold: where 8 (or 9) in
10 people like this one, given this protocol, land.

Conformal calibration, Mondrian by pain condition: the score of a person is their
standardized residual s = (measured - expected) / spread, computed out of fold on the
training split (each person scored by a model that did not see them). For each pain
condition (and for everyone, the fallback of a condition with too few people) the
alpha/2 and 1 - alpha/2 quantiles of s, with the finite-sample correction, give the
interval [expected + q_lo x spread, expected + q_hi x spread]. The quantiles are
separate per condition, so coverage holds within each condition, and separate per side,
so a skewed spread (a mixture over an unrecorded mechanism) is not forced symmetric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

LEVELS = ("80", "90")
ALL = "_all"
MIN_GROUP = 50  # below this many people a condition uses everyone's quantiles


def _quantiles(scores: np.ndarray, level: float) -> list[float]:
    """Conformal lower and upper quantiles of signed scores for a two-sided `level`."""
    n = len(scores)
    a = (1.0 - level) / 2.0
    # finite-sample correction: the ceil((n + 1)(1 - a)) / n empirical quantile
    hi = min(1.0, np.ceil((n + 1) * (1 - a)) / n)
    lo = max(0.0, np.floor((n + 1) * a) / n)
    return [float(np.quantile(scores, lo, method="lower")), float(np.quantile(scores, hi, method="higher"))]


def fit_conformal(measured: np.ndarray, expected: np.ndarray, spread: np.ndarray, groups: Sequence[str],
                  levels: Sequence[str] = LEVELS) -> dict:
    """Per level, per group (and `_all`): [q_lo, q_hi] of the standardized residuals."""
    s = (np.asarray(measured, dtype="float64") - expected) / spread
    g = np.asarray(groups, dtype=object)
    out: dict = {"score": "standardized residual (measured - expected) / spread", "levels": {}}
    for level in levels:
        table = {ALL: _quantiles(s, int(level) / 100)}
        for name in sorted(set(g)):
            m = g == name
            if m.sum() >= MIN_GROUP:
                table[str(name)] = _quantiles(s[m], int(level) / 100)
        out["levels"][level] = table
    return out


def change_intervals(conformal: Mapping, expected: np.ndarray, spread: np.ndarray,
                     groups: Sequence[str | None]) -> dict[str, np.ndarray]:
    """{level: (n, 2) [low, high] in %} for each row, by its group's quantiles (everyone's
    when the group is unknown or small)."""
    g = np.asarray([ALL if name is None else str(name) for name in groups], dtype=object)
    names, inverse = np.unique(g, return_inverse=True) if len(g) else (np.array([], dtype=object), np.zeros(0, int))
    out = {}
    for level, table in conformal["levels"].items():
        per_name = np.array([table.get(name, table[ALL]) for name in names], dtype="float64").reshape(len(names), 2)
        q = per_name[inverse]
        out[level] = np.column_stack([expected + q[:, 0] * spread, expected + q[:, 1] * spread])
    return out
