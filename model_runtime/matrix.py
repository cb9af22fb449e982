"""The one builder of the model matrix: the (n, F) float64 matrix, in the model's field
order, that XGBoost and the SHAP tables read.

Numbers as floats (missing -> NaN); categories as their position in the model's category
list (missing or unknown -> NaN); derived features computed from those columns by
`features.derived`. Two doors lead here: a feature frame built by the feature pipeline
(`from_frame`, the batch scorer and training) and parsed JSON records (`from_records`, the
HTTP service, which skips pandas because one record through it costs ~5 ms). Both give
the same bits for the same record (tests/test_serving_units.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.derived import DERIVED, kind
from features.pipeline import category_codes


class ModelMatrix:
    """Builds model matrices for one model's fields and category lists."""

    def __init__(self, fields: tuple[str, ...], n_inputs: int, categories: Mapping[str, list]):
        self.fields = tuple(fields)
        self.inputs = self.fields[:n_inputs]  # contract fields come first, derived features after
        self.categories = {k: list(v) for k, v in categories.items()}
        self._codes = [(f, {c: float(i) for i, c in enumerate(self.categories[f])} if f in self.categories else None)
                       for f in self.inputs]
        pos = {f: j for j, f in enumerate(self.fields)}
        # derived features: (column, spec, {input field: its column})
        self._derived = [(pos[d], DERIVED[d], {f: pos[f] for f in DERIVED[d].inputs}) for d in self.fields[n_inputs:]]

    def feature_types(self) -> list[str]:
        """XGBoost feature types of the columns ('c' categorical, 'float' numeric)."""
        return ["c" if kind(f) == "category" else "float" for f in self.fields]

    def n_categories(self) -> dict[int, int]:
        """Column index -> number of category codes, for the categorical columns."""
        return {j: len(self.categories[f]) for j, f in enumerate(self.fields) if f in self.categories}

    def check_order(self, X: pd.DataFrame) -> None:
        """Refuse a feature frame whose columns are not in the model's order (XGBoost, shap
        and the tables would read a reordered frame without noticing)."""
        if tuple(X.columns) != self.fields:
            raise ValueError("feature frame columns are not in the model's order")

    def from_frame(self, X: pd.DataFrame) -> np.ndarray:
        """A feature frame (the pipeline's output) -> the matrix, column-major. A categorical
        column in another category order is re-coded by name, as XGBoost does with a frame;
        a category the model does not know is refused."""
        self.check_order(X)
        M = np.empty((len(X), len(self.fields)), order="F")
        for j, name in enumerate(self.fields):
            col = X[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                known = self.categories.get(name)
                if known is not None and list(col.cat.categories) != known:
                    recoded = col.cat.set_categories(known)
                    if (recoded.isna() & col.notna()).any():
                        raise ValueError(f"{name}: a category the model does not know")
                    col = recoded
                M[:, j] = category_codes(col)
            else:
                M[:, j] = col.to_numpy(dtype="float64", na_value=np.nan)
        return M

    def from_records(self, records: Sequence[Mapping]) -> np.ndarray:
        """Validated contract records (mappings, e.g. parsed JSON) -> the matrix."""
        X = np.full((len(records), len(self.fields)), np.nan)
        codes = self._codes
        for i, rec in enumerate(records):
            row = X[i]
            for j, (name, cats) in enumerate(codes):
                v = rec.get(name)
                if v is None:
                    continue
                if cats is None:
                    row[j] = float(v)
                elif isinstance(v, str):
                    row[j] = cats.get(v, np.nan)
        for j, spec, src in self._derived:
            X[:, j] = spec.compute({f: X[:, k] for f, k in src.items()})
        return X
