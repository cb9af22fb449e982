"""The penalized spline family: a regression of the measured change that small cohorts can
support, fitted with scikit-learn and served as additive models (`model_runtime.additive`).

The expected change is intercept + sum_j f_j(x_j): a cubic B-spline of each number (inner
knots at quantiles of the training values; a linear term for a field with few distinct
values; a missing value imputed at the median plus an indicator of its own), one value
per category (missing its own level). The coefficients are an elastic-net regression
(on the standardized design, the penalty's strength by 5-fold CV in the search), so the
shape functions shrink toward flat, and fields without evidence drop out, as the
evidence thins. The spread of the change is a gamma regression with a log link
(`GammaRegressor`, penalty by CV deviance in the search) of the out-of-fold squared
residuals on the same design, so both outputs feed the same
`normal_spread` link as the gradient-boosted model, and both are additive, so their
explanations are exact.

No interactions: every person gets the same shape of response to intensity and duration
within a modality (the boosted family, when the data support it, learns who responds to
what). `params` of this family carry {"family": "spline"} and pass through the same
`tune.oof_margins` / `tune.fit_final` doors as a booster's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, ElasticNetCV, GammaRegressor
from sklearn.metrics import mean_gamma_deviance
from sklearn.model_selection import KFold

from features.derived import DERIVED
from model_runtime.additive import DEGREE, AdditiveModel, Shape, bspline_basis
from model_runtime.matrix import ModelMatrix
from training.metrics import ordinal_log_loss

FAMILY = "spline"
N_KNOTS = 4
L1_RATIO, N_ALPHAS = 0.5, 30
"""Half lasso, half ridge: the lasso part can flatten a field's whole function (a cohort of a
few hundred cannot support two dozen curves), the ridge part keeps correlated basis columns
together. Against pure ridge on 400-1,000 simulated people the out-of-fold error of the
change was 0.1-0.6 %-points lower."""
GAMMA_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def is_spline(params: dict) -> bool:
    """Whether a configuration's parameters are this family's."""
    return params.get("family") == FAMILY


def params(n_knots: int = N_KNOTS) -> dict:
    """The family's configuration (what a search `Trial` of it carries)."""
    return {"family": FAMILY, "n_knots": int(n_knots)}


def model_matrix(X: pd.DataFrame) -> np.ndarray:
    """A feature frame -> the runtime's model matrix (category codes, NaN missing)."""
    fields = tuple(X.columns)
    n_inputs = sum(1 for f in fields if f not in DERIVED)
    cats = {c: list(X[c].cat.categories) for c in fields if isinstance(X[c].dtype, pd.CategoricalDtype)}
    return ModelMatrix(fields, n_inputs, cats).from_frame(X)


class Design:
    """The design matrix of the family: per field, its basis columns (and a missing indicator)."""

    def __init__(self, X: pd.DataFrame, M: np.ndarray | None = None, n_knots: int = N_KNOTS):
        """The design of feature frame `X` (its model matrix `M` when already built)."""
        M = model_matrix(X) if M is None else M
        self.fields = tuple(X.columns)
        self.specs: list[dict] = []
        for j, f in enumerate(self.fields):
            col = M[:, j]
            seen = ~np.isnan(col)
            has_missing = bool((~seen).any())
            if isinstance(X[f].dtype, pd.CategoricalDtype):
                self.specs.append({"kind": "category", "levels": len(X[f].cat.categories)})
                continue
            v = col[seen]
            distinct = np.unique(v)
            if len(distinct) < 2:  # no variation to fit: a flat line (and the missing level)
                v0 = float(distinct[0]) if len(distinct) else 0.0
                knots, degree = np.array([v0, v0 + 1.0]), 1
            elif len(distinct) <= 3:
                knots, degree = distinct[[0, -1]], 1
            else:
                knots, degree = np.unique(np.quantile(v, np.linspace(0, 1, n_knots))), DEGREE
            self.specs.append({"kind": "spline", "knots": knots, "degree": degree,
                               "median": float(np.median(v)) if len(v) else 0.0, "indicator": has_missing})

    def width(self, spec: dict) -> int:
        """The number of design columns of one field."""
        if spec["kind"] == "category":
            return spec["levels"] + 1
        return len(spec["knots"]) + spec["degree"] - 1 + int(spec["indicator"])

    def matrix(self, M: np.ndarray) -> np.ndarray:
        """(n, P) design of a model matrix."""
        parts = []
        for j, spec in enumerate(self.specs):
            col = M[:, j]
            miss = np.isnan(col)
            if spec["kind"] == "category":
                codes = np.where(miss, spec["levels"], np.nan_to_num(col, nan=0.0)).astype("int64")
                onehot = np.zeros((len(col), spec["levels"] + 1))
                onehot[np.arange(len(col)), codes] = 1.0
                parts.append(onehot)
                continue
            parts.append(bspline_basis(np.where(miss, spec["median"], col), spec["knots"], spec["degree"]))
            if spec["indicator"]:
                parts.append(miss[:, None].astype("float64"))
        return np.hstack(parts)

    def additive(self, coef: np.ndarray, intercept: float) -> AdditiveModel:
        """The fitted linear predictor as the runtime's additive model."""
        shapes, at = [], 0
        coef = np.asarray(coef, dtype="float64")
        for spec in self.specs:
            w = coef[at: at + self.width(spec)]
            at += self.width(spec)
            if spec["kind"] == "category":
                shapes.append(Shape("category", w[:-1].copy(), float(w[-1])))
                continue
            n_basis = len(spec["knots"]) + spec["degree"] - 1
            c = w[:n_basis].copy()
            at_median = float((bspline_basis(np.array([spec["median"]]), spec["knots"], spec["degree"]) @ c)[0])
            missing = at_median + (float(w[n_basis]) if spec["indicator"] else 0.0)
            shapes.append(Shape("spline", c, missing, knots=np.asarray(spec["knots"], dtype="float64"),
                                degree=spec["degree"]))
        return AdditiveModel(self.fields, shapes, float(intercept))


def _standardized(X: pd.DataFrame, p: dict) -> tuple[Design, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(design, model matrix, standardized design matrix, centre, scale) of a feature frame."""
    M = model_matrix(X)
    design = Design(X, M, p.get("n_knots", N_KNOTS))
    D = design.matrix(M)
    centre, scale = D.mean(axis=0), D.std(axis=0)
    scale[scale == 0] = 1.0
    return design, M, (D - centre) / scale, centre, scale


def choose_alpha(X: pd.DataFrame, target: np.ndarray, p: dict) -> float:
    """The elastic-net penalty's strength by 5-fold CV on these rows (the search does this once;
    refits in validation folds reuse it, as they reuse a booster's searched parameters)."""
    _, _, Ds, _, _ = _standardized(X, p)
    net = ElasticNetCV(l1_ratio=L1_RATIO, alphas=N_ALPHAS, cv=KFold(5, shuffle=True, random_state=0), max_iter=5000)
    with warnings.catch_warnings():
        # the weakest penalties of the path may stop short of the tolerance; the CV's choice is
        # among the strong ones at these sizes, and the fit at it converges
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(Ds, target)
    return float(net.alpha_)


def fit_mean(X: pd.DataFrame, target: np.ndarray, p: dict) -> AdditiveModel:
    """The expected change: elastic-net regression on the standardized spline design at the
    penalty `p["alpha"]` (chosen by CV here when absent), folded back to the design's scale."""
    design, M, Ds, centre, scale = _standardized(X, p)
    alpha = p["alpha"] if "alpha" in p else choose_alpha(X, target, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = ElasticNet(alpha=alpha, l1_ratio=L1_RATIO, max_iter=5000).fit(Ds, target)
    coef = net.coef_ / scale
    model = design.additive(coef, float(net.intercept_ - coef @ centre))
    model.set_means(M)
    return model


def _gamma(D: np.ndarray, r2: np.ndarray, alpha: float) -> GammaRegressor:
    return GammaRegressor(alpha=alpha, solver="newton-cholesky", max_iter=100).fit(D, r2)


def choose_spread_alpha(X: pd.DataFrame, r2: np.ndarray, folds, p: dict) -> float:
    """The gamma regression's penalty by CV deviance over `folds` (once, in the search)."""
    _, _, Ds, _, _ = _standardized(X, p)
    dev = {a: np.mean([mean_gamma_deviance(r2[va], _gamma(Ds[tr], r2[tr], a).predict(Ds[va])) for tr, va in folds])
           for a in GAMMA_ALPHAS}
    return float(min(dev, key=dev.get))


def fit_spread(X: pd.DataFrame, r2: np.ndarray, p: dict) -> AdditiveModel:
    """The log variance: gamma regression (log link) of squared residuals on the same
    (standardized) design at the penalty `p["spread_alpha"]`."""
    design, M, Ds, centre, scale = _standardized(X, p)
    g = _gamma(Ds, r2, p.get("spread_alpha", 1e-2))
    coef = g.coef_ / scale
    model = design.additive(coef, float(g.intercept_ - coef @ centre))
    model.set_means(M)
    return model


def fit(X: pd.DataFrame, target: np.ndarray, p: dict) -> AdditiveModel:
    """One output of the family: the spread when `p` says so, else the expected change."""
    return fit_spread(X, target, p) if p.get("output") == "spread" else fit_mean(X, target, p)


def oof_margins(X: pd.DataFrame, target: np.ndarray, folds, p: dict) -> np.ndarray:
    """Out-of-fold margins (n, 1) of one output."""
    out = np.zeros((len(X), 1))
    for tr, va in folds:
        out[va, 0] = fit(X.iloc[tr], target[tr], p).margins(model_matrix(X.iloc[va]))
    return out


def candidate(X: pd.DataFrame, target: np.ndarray, folds, threshold_pct: float) -> tuple[dict, float]:
    """The search's spline candidate: its parameters (both penalties chosen here, once) and its
    criterion, the mean over folds of the three-class log-loss of the expected change with the
    fold's residual spread (as `tune.cv_metric` scores a booster)."""
    p = params()
    p["alpha"] = choose_alpha(X, target, p)
    out, oof = [], np.zeros(len(X))
    M = model_matrix(X)
    for tr, va in folds:
        mu = fit_mean(X.iloc[tr], target[tr], p).margins(M[va])
        oof[va] = mu
        out.append(ordinal_log_loss(target[va], mu, threshold_pct))
    p["spread_alpha"] = choose_spread_alpha(X, np.maximum((target - oof) ** 2, 1e-3), folds, p)
    return p, float(np.mean(out))
