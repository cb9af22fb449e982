"""The feature pipeline shared by training, the HTTP service and the batch scorer.

The model sees exactly the contract's predictors, one column each, in contract order:
numbers as float64 (missing stays NaN: XGBoost routes missing values natively) and
categories as pandas categoricals with the contract's fixed category list (XGBoost's
native categorical support), so every explanation is one value per contract field.

Derived features (`features.derived`, e.g. the exercise dose relative to the published
EIH threshold) are appended after the contract fields when asked for (`derived=`); each
is one more explained column under its own name.

`LinearDesign` is for the logistic-regression baseline only: it turns the same frame
into a dense numeric design (median imputation plus missing indicators, one-hot
categories, standardization).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from data_contracts.fields import BY_NAME, PREDICTORS
from features.derived import DERIVED, check_names


def category_codes(col: pd.Series) -> np.ndarray:
    """A categorical column as XGBoost reads it: each value's position in the column's
    category list as float64, missing as NaN."""
    codes = col.cat.codes.to_numpy().astype("float64")
    codes[codes < 0] = np.nan
    return codes


class ContractFeatures(TransformerMixin, BaseEstimator):
    """Select the contract predictors in a fixed order with contract dtypes.

    Parameters
    ----------
    predictors : tuple of str, default: every contract predictor
        Which contract fields the model uses (in this order).
    derived : tuple of str, default: none
        Derived features (names in `features.derived.DERIVED`) appended after them; each
        needs its input fields among `predictors`.
    """

    def __init__(self, predictors: tuple[str, ...] = PREDICTORS, derived: tuple[str, ...] = ()):
        self.predictors = predictors
        self.derived = derived

    def fit(self, X: pd.DataFrame, y=None):
        unknown = [p for p in self.predictors if p not in BY_NAME]
        if unknown:
            raise ValueError(f"not contract fields: {', '.join(unknown)}")
        check_names(self.derived)
        for d in self.derived:
            lacking = [f for f in DERIVED[d].inputs if f not in self.predictors]
            if lacking:
                raise ValueError(f"derived feature {d} needs {', '.join(lacking)} among the predictors")
        self.feature_names_in_ = np.asarray(list(self.predictors), dtype=object)
        self.derived_ = tuple(self.derived)
        self.categories_ = {
            p: list(BY_NAME[p].categories) for p in self.predictors if BY_NAME[p].kind == "category"
        }
        self.n_features_in_ = len(self.predictors)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "categories_")
        cols = {}
        n = len(X)
        for name in self.feature_names_in_:
            if name in self.categories_:
                if name in X.columns:
                    col = X[name]
                    if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == self.categories_[name]:
                        cols[name] = col.reset_index(drop=True)
                    else:
                        cols[name] = pd.Series(
                            pd.Categorical(np.asarray(col, dtype=object), categories=self.categories_[name])
                        )
                else:
                    cols[name] = pd.Series(pd.Categorical([None] * n, categories=self.categories_[name]))
            else:
                if name in X.columns:
                    cols[name] = pd.Series(np.asarray(X[name], dtype="float64"))
                else:
                    cols[name] = pd.Series(np.full(n, np.nan))
        for d in self.derived_:
            spec = DERIVED[d]
            inputs = {f: category_codes(cols[f]) if f in self.categories_ else cols[f].to_numpy() for f in spec.inputs}
            cols[d] = pd.Series(spec.compute(inputs))
        out = pd.DataFrame(cols)
        out.index = X.index
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return np.asarray(list(self.feature_names_in_) + list(self.derived_), dtype=object)


class LinearDesign(TransformerMixin, BaseEstimator):
    """Dense design for linear baselines: impute medians (+ missing indicators),
    one-hot categories (missing is its own level), standardize numbers."""

    def __init__(self, add_indicators: bool = True):
        self.add_indicators = add_indicators

    def fit(self, X: pd.DataFrame, y=None):
        num = [c for c in X.columns if not isinstance(X[c].dtype, pd.CategoricalDtype)]
        cat = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
        self.numeric_ = num
        self.categorical_ = {c: list(X[c].cat.categories) for c in cat}
        vals = X[num].to_numpy(dtype="float64")
        med = np.nanmedian(np.where(np.isnan(vals).all(axis=0), 0.0, vals), axis=0)
        med = np.where(np.isnan(med), 0.0, med)
        self.medians_ = med
        filled = np.where(np.isnan(vals), med, vals)
        self.means_ = filled.mean(axis=0)
        sd = filled.std(axis=0)
        self.scales_ = np.where(sd > 0, sd, 1.0)
        self.indicator_cols_ = [c for i, c in enumerate(num) if self.add_indicators and np.isnan(vals[:, i]).any()]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "medians_")
        vals = X[self.numeric_].to_numpy(dtype="float64")
        miss = np.isnan(vals)
        filled = np.where(miss, self.medians_, vals)
        parts = [(filled - self.means_) / self.scales_]
        if self.indicator_cols_:
            idx = [self.numeric_.index(c) for c in self.indicator_cols_]
            parts.append(miss[:, idx].astype("float64"))
        for c, cats in self.categorical_.items():
            codes = pd.Categorical(X[c], categories=cats).codes
            onehot = np.zeros((len(X), len(cats) + 1))
            onehot[np.arange(len(X)), np.where(codes < 0, len(cats), codes)] = 1.0
            parts.append(onehot[:, 1:])  # drop the first level
        return np.hstack(parts)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = list(self.numeric_) + [f"{c}_missing" for c in self.indicator_cols_]
        for c, cats in self.categorical_.items():
            names += [f"{c}={v}" for v in cats[1:]] + [f"{c}=missing"]
        return np.asarray(names, dtype=object)
