"""The varying-coefficient regression of the expected change that training/varying.py distils
into trees: its basis of person and protocol columns, its reduced-rank fit, and the choice of
its rank and penalty by cross-validation.

The model:

    change = c + P b + M g + Q h + sum_k (P u_k) (Q v_k)

P is the person basis (each number standardized, its positive part and a missing indicator;
each category's levels and missing), Q the protocol slopes (each modality's dose and load, or
intensity and duration without the derived features), M the polynomial effects of intensity
and duration within each modality. The slope of dose or load is linear in the person fields,
through `rank` person indices P u_k shared by every modality's dose and load. The literature
names one such trait, the capacity to modulate pain: people whose conditioned pain modulation
works gain pain threshold after aerobic and isometric bouts alike, while sensitized people lose
it, the more so the heavier the load (docs/science.md). A full coefficient matrix (every person
column times every slope, about 600 coefficients) spends its data on noise: on 16,000 simulated
re-tests its expected change was 3.5 %-points from the truth's, the rank-1 model's 2.7
(benchmarks/RESULTS.md). Cross-validation picks the rank from `RANKS`, so a world with more
person-specific modality effects gets them.

Fit: alternating ridge regressions. With the protocol indices Q v_k fixed, the model is linear
in (b, g, h, u); with the person indices P u_k fixed, linear in (b, g, h, v). Every design is
standardized before its ridge, so the penalties do not depend on the other factor's scale. The
start is the top right singular vectors of a full-rank ridge's coefficient matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.derived import EXERCISE_DOSE, EXERCISE_LOAD
from features.interactions import protocol_columns

RANKS = (1, 2)
ALPHAS = (100.0, 300.0, 1000.0)
FULL = 0
"""Candidate ranks and penalties on the standardized coefficients of the person indices; rank
`FULL` (0) is the full coefficient matrix, one ridge with `START_PENALTY`."""
MAIN_PENALTY = 30.0  # on the standardized main effects of the person and the protocol
PROTOCOL_PENALTY = 1.0  # on the protocol indices: a few coefficients fitted on every row
START_PENALTY = 3000.0  # on the full-rank ridge whose coefficient matrix starts the fit
SWEEPS = 8  # alternations of the two ridge regressions


@dataclass
class Basis:
    """The person and protocol bases of a feature frame, with the training frame's scaling."""

    numbers: dict[str, tuple[float, float, bool]]  # name -> (mean, sd, has a missing indicator)
    categories: dict[str, tuple]
    modalities: tuple
    slopes: tuple[str, ...]  # the protocol columns whose coefficients vary with the person

    @classmethod
    def of(cls, X: pd.DataFrame) -> Basis:
        """The basis of a training frame: its person columns' scaling and categories, its modalities."""
        protocol = set(protocol_columns(list(X.columns)))
        person = [c for c in X.columns if c not in protocol]
        cats = {c: tuple(X[c].cat.categories) for c in person if isinstance(X[c].dtype, pd.CategoricalDtype)}
        nums = {}
        for c in person:
            if c in cats:
                continue
            v = X[c].to_numpy("float64")
            if np.isnan(v).all():  # a field the cohort never records carries nothing
                continue
            sd = float(np.nanstd(v))
            nums[c] = (float(np.nanmean(v)), sd if sd > 0 else 1.0, bool(np.isnan(v).any()))
        slopes = (EXERCISE_DOSE, EXERCISE_LOAD) if {EXERCISE_DOSE, EXERCISE_LOAD} <= set(X.columns) else (
            "exercise_intensity_pct", "exercise_duration_min")
        return cls(nums, cats, tuple(X["exercise_modality"].cat.categories), slopes)

    def person(self, X: pd.DataFrame) -> np.ndarray:
        """The person basis (n, p): each number's z, positive part and missing indicator, each level."""
        cols = []
        for c, (mean, sd, has_na) in self.numbers.items():
            z = (X[c].to_numpy("float64") - mean) / sd
            miss = np.isnan(z)
            z = np.where(miss, 0.0, z)
            cols += [z, np.maximum(z, 0.0)] + ([miss.astype("float64")] if has_na else [])
        for c, levels in self.categories.items():
            v = X[c]
            cols += [(v == k).to_numpy("float64") for k in levels] + [v.isna().to_numpy("float64")]
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    def protocol(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(Q: each modality's slope columns, M: each modality's polynomial main effects)."""
        mod = X["exercise_modality"]
        inten = _scaled_protocol(X, "exercise_intensity_pct")
        dur = _scaled_protocol(X, "exercise_duration_min")
        scaled = [_scaled_protocol(X, c) for c in self.slopes]
        slopes, main = [], []
        for k in self.modalities:
            m = (mod == k).to_numpy("float64")
            slopes += [m * v for v in scaled]
            main += [m, m * inten, m * dur, m * inten * inten, m * dur * dur, m * inten * dur]
        return np.column_stack(slopes), np.column_stack(main)


def _scaled_protocol(X: pd.DataFrame, column: str) -> np.ndarray:
    v = X[column].to_numpy("float64")
    if column == "exercise_intensity_pct":
        return v / 100.0
    if column == "exercise_duration_min":
        return v / 30.0
    return v


def _scaling(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation (1 for a constant column)."""
    center, scale = A.mean(axis=0), A.std(axis=0)
    scale[scale == 0] = 1.0
    return center, scale


@dataclass
class _Ridge:
    """A ridge regression on a standardized design, kept as coefficients of the raw columns."""

    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, D: np.ndarray, t: np.ndarray, penalty: np.ndarray) -> _Ridge:
        center, scale = _scaling(D)
        S = (D - center) / scale
        w = np.linalg.solve(S.T @ S + np.diag(penalty), S.T @ (t - t.mean())) / scale
        return cls(w, float(t.mean() - center @ w))


def _design(P: np.ndarray, Q: np.ndarray, M: np.ndarray, factor: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The main effects [P, M, Q], then `factor` times each column of `index`."""
    return np.column_stack([P, M, Q] + [factor * index[:, [k]] for k in range(index.shape[1])])


def _penalties(n_main: int, n_rest: int, alpha: float) -> np.ndarray:
    return np.r_[np.full(n_main, MAIN_PENALTY), np.full(n_rest, float(alpha))]


@dataclass
class Regression:
    """A fitted varying-coefficient regression: change = c + [P, M, Q] main + sum_ij P_i slopes_ij Q_j."""

    basis: Basis
    person_center: np.ndarray
    person_scale: np.ndarray
    main: np.ndarray  # coefficients of [P, M, Q]
    intercept: float
    slopes: np.ndarray  # (p, q), of rank `rank`
    rank: int

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The expected change of each row of a feature frame."""
        P = (self.basis.person(X) - self.person_center) / self.person_scale
        Q, M = self.basis.protocol(X)
        return np.column_stack([P, M, Q]) @ self.main + self.intercept + np.sum((P @ self.slopes) * Q, axis=1)


def fit_all(X: pd.DataFrame, target: np.ndarray, candidates) -> dict[tuple[int, float], Regression]:
    """One regression per (rank, alpha) candidate on all of X. `FULL` asks for the full-rank
    ridge (its alpha is `START_PENALTY`), which also starts every reduced-rank fit."""
    basis = Basis.of(X)
    raw = basis.person(X)
    center, scale = _scaling(raw)
    P, (Q, M) = (raw - center) / scale, basis.protocol(X)
    p, q = P.shape[1], Q.shape[1]
    n_main = p + M.shape[1] + q
    full = _Ridge.fit(np.column_stack([P, M, Q, (P[:, :, None] * Q[:, None, :]).reshape(len(X), -1)]), target,
                      _penalties(n_main, p * q, START_PENALTY))
    B = full.coef[n_main:].reshape(p, q)
    V0 = np.linalg.svd(B, full_matrices=False)[2].T
    out = {}
    for rank, alpha in candidates:
        if rank == FULL:
            out[(rank, alpha)] = Regression(basis, center, scale, full.coef[:n_main], full.intercept, B, min(p, q))
            continue
        r = min(int(rank), q)
        V = V0[:, :r]
        for _ in range(SWEEPS):
            U = _Ridge.fit(_design(P, Q, M, P, Q @ V), target, _penalties(n_main, p * r, alpha)).coef[n_main:]
            U = U.reshape(r, p).T
            ridge = _Ridge.fit(_design(P, Q, M, Q, P @ U), target, _penalties(n_main, q * r, PROTOCOL_PENALTY))
            V = ridge.coef[n_main:].reshape(r, q).T
        out[(rank, alpha)] = Regression(basis, center, scale, ridge.coef[:n_main], ridge.intercept, U @ V.T, r)
    return out


def fit(X: pd.DataFrame, target: np.ndarray, rank: int, alpha: float) -> Regression:
    """The regression of one rank (or `FULL`) and penalty on all of X."""
    return fit_all(X, target, [(rank, alpha)])[(rank, alpha)]


def candidates() -> list[tuple[int, float]]:
    """Every (rank, alpha) the cross-validation compares: each reduced rank with each penalty,
    and the full-rank ridge."""
    return [(r, a) for r in RANKS for a in ALPHAS] + [(FULL, START_PENALTY)]


def choose(X: pd.DataFrame, target: np.ndarray, folds) -> tuple[int, float]:
    """The candidate with the lowest CV squared error (the search's folds)."""
    errors = dict.fromkeys(candidates(), 0.0)
    for tr, va in folds:
        Xva = X.iloc[va]
        for c, model in fit_all(X.iloc[tr], target[tr], list(errors)).items():
            errors[c] += float(np.sum((target[va] - model.predict(Xva)) ** 2))
    return min(errors, key=lambda c: (errors[c], c))
