"""Additive models: the outputs of the penalized spline family, as the runtime reads them.

An `AdditiveModel` is one output f(x) = intercept + sum_j f_j(x_j), one shape function
per model field, read from the model matrix (`model_runtime.matrix`: numbers as floats,
categories as codes, missing as NaN):

- a number: a B-spline (`bspline_basis` on the stored knots, times the stored
  coefficients); beyond the outer knots the value at the nearest knot; a missing value
  has a value of its own;
- a category: one value per category code, and one for missing.

Explanations are exact: for an additive function the Shapley value of field j, with the
training rows as background, is phi_j = f_j(x_j) - mean_j (mean_j: the average of f_j
over the training rows), and the base value is intercept + sum_j mean_j; so
base + sum(phi) = f(x). `contributions` returns them in XGBoost's `pred_contribs`
layout (one column per field, the base value last), so the predictor treats an additive
output exactly as it treats a booster explained by its SHAP tables.

Training (`training/spline.py`) builds its design matrix with the same `bspline_basis`,
so the fitted regression and the runtime evaluate one function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline

DEGREE = 3


def clamped_knots(inner: np.ndarray, degree: int) -> np.ndarray:
    """The full knot vector of a clamped B-spline basis on the sorted distinct `inner` knots."""
    inner = np.asarray(inner, dtype="float64")
    return np.concatenate([np.repeat(inner[0], degree), inner, np.repeat(inner[-1], degree)])


def bspline_basis(x: np.ndarray, inner: np.ndarray, degree: int) -> np.ndarray:
    """(n, len(inner) + degree - 1) B-spline basis of `x` (no missing values) on the clamped
    knots `inner`, `x` held to [inner[0], inner[-1]]."""
    t = clamped_knots(inner, degree)
    xc = np.clip(np.asarray(x, dtype="float64"), inner[0], inner[-1])
    return BSpline.design_matrix(xc, t, degree).toarray()


@dataclass
class Shape:
    """One field's shape function: `kind` "spline" (knots, degree, coef: one per basis
    function) or "category" (coef: one per category code); `missing`: the value of a
    missing entry; `mean`: the average over the training rows (the field's background)."""

    kind: str
    coef: np.ndarray
    missing: float
    mean: float = 0.0
    knots: np.ndarray | None = None
    degree: int = DEGREE

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), self.missing, dtype="float64")
        seen = ~np.isnan(x)
        if not seen.any() or len(self.coef) == 0:
            return out
        if self.kind == "category":
            out[seen] = self.coef[x[seen].astype("int64")]
        else:
            out[seen] = bspline_basis(x[seen], self.knots, self.degree) @ self.coef
        return out

    def to_dict(self) -> dict:
        """The JSON form of the shape function."""
        d = {"kind": self.kind, "coef": [float(v) for v in self.coef], "missing": float(self.missing),
             "mean": float(self.mean), "degree": int(self.degree)}
        if self.knots is not None:
            d["knots"] = [float(v) for v in self.knots]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Shape:
        """Inverse of `to_dict`."""
        knots = d.get("knots")
        return cls(d["kind"], np.asarray(d["coef"], dtype="float64"), float(d["missing"]), float(d.get("mean", 0.0)),
                   None if knots is None else np.asarray(knots, dtype="float64"), int(d.get("degree", DEGREE)))


class AdditiveModel:
    """One additive output over the model's fields (see the module's text)."""

    def __init__(self, fields: tuple[str, ...], shapes: list[Shape], intercept: float):
        if len(fields) != len(shapes):
            raise ValueError("an additive model needs one shape function per field")
        self.fields = tuple(fields)
        self.shapes = shapes
        self.intercept = float(intercept)

    def terms(self, M: np.ndarray) -> np.ndarray:
        """(n, F) each field's shape function at the rows of a model matrix."""
        if M.ndim != 2 or M.shape[1] != len(self.fields):
            raise ValueError("feature matrix does not have one column per model field")
        return np.column_stack([s(np.asarray(M[:, j], dtype="float64")) for j, s in enumerate(self.shapes)])

    def margins(self, M: np.ndarray) -> np.ndarray:
        """(n,) f(x) of each row, summed field by field in a fixed order."""
        terms = self.terms(M)
        out = np.full(len(M), self.intercept)
        for j in range(terms.shape[1]):
            out += terms[:, j]
        return out

    def contributions(self, M: np.ndarray) -> np.ndarray:
        """(n, F + 1) exact Shapley values, the base value last (`pred_contribs` layout)."""
        means = np.array([s.mean for s in self.shapes])
        phi = self.terms(M) - means
        base = np.full((len(M), 1), self.intercept + float(means.sum()))
        return np.hstack([phi, base])

    def set_means(self, M: np.ndarray) -> None:
        """Store each shape function's average over the rows of `M` (the training rows)."""
        terms = self.terms(M)
        for j, s in enumerate(self.shapes):
            s.mean = float(terms[:, j].mean())

    def to_json(self) -> str:
        """The model as JSON text (how a saved model and a worker's payload carry it)."""
        return json.dumps({"fields": list(self.fields), "intercept": self.intercept,
                           "shapes": [s.to_dict() for s in self.shapes]})

    @classmethod
    def from_json(cls, text: str) -> AdditiveModel:
        """Inverse of `to_json`."""
        d = json.loads(text)
        return cls(tuple(d["fields"]), [Shape.from_dict(s) for s in d["shapes"]], float(d["intercept"]))
