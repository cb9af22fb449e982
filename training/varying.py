"""The varying-coefficient part of the boosted model of the expected change: a ridge regression
whose protocol effects vary linearly with each person field, distilled into trees and blended
with the searched trees in one booster.

Why. The literature describes the response to a bout as a dose-response whose slope depends on
the person: hypoalgesia grows with the dose of the bout when pain modulation works, and heavy
loads sensitize some people (docs/science.md). A regression in which the coefficients of each
modality's dose and load are linear in the person fields holds that shape with a few hundred
coefficients, where trees fitted to single noisy re-tests approximate every product of a person
field and the protocol by steps. The two make different errors, and their blend is closer to the
truth than either (benchmarks/RESULTS.md, issue 14).

How.
- Design: a person basis (each number standardized, its positive part and a missing indicator;
  each category's levels and missing) times a protocol basis (1, and for each modality its dose
  and load, or its intensity and duration when the derived features are off), plus polynomial
  effects of intensity and duration within each modality. Ridge on the standardized design,
  its penalty by the search's CV folds.
- Distillation: the ridge's expected change for the training people, under their own protocol
  and under the protocols of `COPIES` random other people, is fitted by boosted trees with the
  configured interaction structure. The target has no measurement noise, so these trees follow
  the ridge closely.
- Blend: weight w on the average of the searched trees, 1 - w on the distilled trees, merged
  into one XGBoost booster (`averaging.merge`), so TreeSHAP, the explanation tables, the grid
  and the batch path see one booster and the explanations stay exact. w minimizes the
  out-of-fold three-class log-loss (0 to 1 in steps of 0.1): cross-validation decides, and
  w = 1 is the trees alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from features.derived import EXERCISE_DOSE, EXERCISE_LOAD
from features.interactions import protocol_columns
from training import averaging, tune
from training.config import TrainConfig
from training.metrics import ordinal_log_loss

WEIGHT, ALPHA = "varying_weight", "varying_alpha"
"""Keys of a parameter dict that ask `fit`/`oof` for the blend (not XGBoost parameters)."""
ALPHAS = (100.0, 300.0, 1000.0, 3000.0)
WEIGHTS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))
COPIES = 3
CHUNK = 8192
DISTIL = {"max_depth": 3, "learning_rate": 0.1, "min_child_weight": 1.0, "reg_lambda": 1.0,
          "subsample": 1.0, "colsample_bytree": 1.0, "gamma": 0.0}
DISTIL_ROUNDS = 1200
"""The distilled trees fit a noise-free target, so they may take many rounds without
overfitting; on 20,000 simulated people their expected change stays within about 1.7-1.8
%-points of the ridge's. Depth 3 keeps every tree within the explanation tables' cell budget
(`model_runtime.shap_tables.MAX_CELLS`; depth-4 distilled trees reach 5,760 cells and 500,000
in all) at a cost of about 0.0006 in capture against depth 4 (benchmarks/RESULTS.md)."""
SEARCHED = ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda", "gamma",
            "monotone_constraints")


def wanted(params: dict) -> bool:
    """Whether a parameter dict asks for the blend."""
    return WEIGHT in params


def applies(cfg: TrainConfig, params: dict, n_rows: int) -> bool:
    """Whether training blends the chosen configuration `params` on `n_rows` training rows:
    configured on, at least `varying_min_rows` rows, a boosted expected-change model without
    monotone constraints (neither the ridge nor the splines are constrained)."""
    return (cfg.varying and n_rows >= cfg.varying_min_rows and cfg.ordinal and not cfg.monotone
            and tune.family(params) == "xgboost")


def own(params: dict) -> dict:
    """The parameters without the blend's keys."""
    return {k: v for k, v in params.items() if k not in (WEIGHT, ALPHA)}


@dataclass
class Basis:
    """The ridge's design matrix of a feature frame, with the training frame's scaling."""

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
        """The person basis (n, p): 1, each number's z, positive part and missing indicator, each level."""
        cols = [np.ones(len(X))]
        for c, (mean, sd, has_na) in self.numbers.items():
            z = (X[c].to_numpy("float64") - mean) / sd
            miss = np.isnan(z)
            z = np.where(miss, 0.0, z)
            cols += [z, np.maximum(z, 0.0)] + ([miss.astype("float64")] if has_na else [])
        for c, levels in self.categories.items():
            v = X[c]
            cols += [(v == k).to_numpy("float64") for k in levels] + [v.isna().to_numpy("float64")]
        return np.column_stack(cols)

    def protocol(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(slopes varying with the person, main effects) of each row's protocol."""
        mod = X["exercise_modality"]
        inten = _scaled_protocol(X, "exercise_intensity_pct")
        dur = _scaled_protocol(X, "exercise_duration_min")
        slopes, main = [np.ones(len(X))], []
        for k in self.modalities:
            m = (mod == k).to_numpy("float64")
            slopes += [m * _scaled_protocol(X, c) for c in self.slopes]
            main += [m, m * inten, m * dur, m * inten * inten, m * dur * dur, m * inten * dur]
        return np.column_stack(slopes), np.column_stack(main)

    def design(self, X: pd.DataFrame) -> np.ndarray:
        """Every product of a person column and a protocol slope, then the protocol's main effects."""
        P = self.person(X)
        Q, main = self.protocol(X)
        return np.column_stack([(P[:, :, None] * Q[:, None, :]).reshape(len(X), -1), main])


def _scaled_protocol(X: pd.DataFrame, column: str) -> np.ndarray:
    v = X[column].to_numpy("float64")
    if column == "exercise_intensity_pct":
        return v / 100.0
    if column == "exercise_duration_min":
        return v / 30.0
    return v


@dataclass
class Ridge:
    """The fitted varying-coefficient regression."""

    basis: Basis
    center: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The expected change of each row of a feature frame (in chunks of `CHUNK` rows: the
        design of 80,000 distillation rows would take about 450 MB at once)."""
        return np.concatenate([((self.basis.design(X.iloc[i:i + CHUNK]) - self.center) / self.scale) @ self.coef
                               + self.intercept for i in range(0, len(X), CHUNK)])


def _standardize(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    center, scale = A.mean(axis=0), A.std(axis=0)
    scale[scale == 0] = 1.0
    return (A - center) / scale, center, scale


def _solve(A: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    return np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ (y - y.mean()))


def fit_ridge(X: pd.DataFrame, target: np.ndarray, alpha: float) -> Ridge:
    """The ridge on all of X with penalty `alpha` (on the standardized design)."""
    basis = Basis.of(X)
    A, center, scale = _standardize(basis.design(X))
    return Ridge(basis, center, scale, _solve(A, target, alpha), float(np.mean(target)))


def choose_alpha(X: pd.DataFrame, target: np.ndarray, folds) -> float:
    """The penalty with the lowest CV squared error over `ALPHAS` (the search's folds)."""
    A, _, _ = _standardize(Basis.of(X).design(X))
    errors = np.zeros(len(ALPHAS))
    for tr, va in folds:
        G, b = A[tr].T @ A[tr], A[tr].T @ (target[tr] - target[tr].mean())
        for i, alpha in enumerate(ALPHAS):
            w = np.linalg.solve(G + alpha * np.eye(A.shape[1]), b)
            errors[i] += np.sum((target[va] - target[tr].mean() - A[va] @ w) ** 2)
    return float(ALPHAS[int(np.argmin(errors))])


def with_other_protocols(X: pd.DataFrame, seed: int) -> pd.DataFrame:
    """X, then `COPIES` copies whose protocol columns are those of randomly permuted rows."""
    rng = np.random.default_rng(seed)
    protocol = protocol_columns(list(X.columns))
    copies = [X]
    for _ in range(COPIES):
        Xc = X.copy()
        order = rng.permutation(len(X))
        for c in protocol:
            Xc[c] = X[c].iloc[order].to_numpy()
            if isinstance(X[c].dtype, pd.CategoricalDtype):
                Xc[c] = pd.Categorical(Xc[c], categories=X[c].cat.categories)
        copies.append(Xc)
    return pd.concat(copies, ignore_index=True)


def distil(ridge: Ridge, X: pd.DataFrame, params: dict) -> xgb.Booster:
    """Boosted trees fitted to the ridge's expected change of X's people under their own and
    other people's protocols, with `params`' objective, structure and seed."""
    Xa = with_other_protocols(X, int(params.get("seed", 0)))
    base = {k: v for k, v in averaging.split_params(own(params))[0].items() if k not in SEARCHED}
    return xgb.train({**base, **DISTIL}, tune.dmatrix(Xa, ridge.predict(Xa)), num_boost_round=DISTIL_ROUNDS)


def component(X: pd.DataFrame, target: np.ndarray, params: dict) -> xgb.Booster:
    """The distilled varying-coefficient trees of one training set."""
    return distil(fit_ridge(X, target, float(params[ALPHA])), X, params)


def fit(params: dict, X: pd.DataFrame, target: np.ndarray, n_rounds: int) -> xgb.Booster:
    """The blended booster: weight w on the searched trees (their seed average), 1 - w on the
    distilled varying-coefficient trees."""
    w = float(params[WEIGHT])
    if w <= 0.0:
        return component(X, target, params)
    trees = averaging.fits(own(params), tune.dmatrix(X, target), n_rounds)
    if w >= 1.0:
        return averaging.merge(trees)
    k = len(trees)
    return averaging.merge(trees + [component(X, target, params)], [w / k] * k + [1.0 - w])


def oof(X: pd.DataFrame, target: np.ndarray, folds, params: dict) -> np.ndarray:
    """Out-of-fold expected change of the distilled component alone."""
    out = np.zeros(len(X))
    for tr, va in folds:
        out[va] = component(X.iloc[tr], target[tr], params).predict(tune.dmatrix(X.iloc[va]), output_margin=True)
    return out


def blend(X: pd.DataFrame, target: np.ndarray, folds, params: dict, trees_oof: np.ndarray,
          threshold_pct: float) -> tuple[dict, np.ndarray, dict]:
    """The blend's parameters (penalty and weight chosen out of fold), the blended out-of-fold
    expected change (n, 1) and each weight's out-of-fold log-loss (for the run's record)."""
    alpha = choose_alpha(X, target, folds)
    with_alpha = {**params, ALPHA: alpha}
    vc = oof(X, target, folds, with_alpha)
    trees = trees_oof[:, 0]
    scores = {float(w): ordinal_log_loss(target, w * trees + (1 - w) * vc, threshold_pct) for w in WEIGHTS}
    w = min(scores, key=lambda v: (scores[v], -v))
    return {**with_alpha, WEIGHT: float(w)}, (w * trees + (1 - w) * vc)[:, None], scores
