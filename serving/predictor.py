"""The runtime of the registered model: feature pipeline + booster + calibration +
exact explanations, in one object that the HTTP service, the batch scorer and the
MLflow pyfunc wrapper all use.

Two model kinds share this runtime (`meta["link"]`):

- `ordinal_normal` (what `eih train` builds): one output, `eih_pct`, the expected change
  of the pressure pain threshold in percent. The class probabilities follow from it and a
  residual spread sigma fitted out of fold: P(hypoalgesia) = P(eih >= +t), P(hyperalgesia)
  = P(eih <= -t) for eih ~ Normal(margin, sigma), t the label threshold.
- `softmax`: one margin (log-odds) per response class, probabilities by softmax.

Explanations are exact TreeSHAP values: XGBoost's own `pred_contribs=True` numbers, one
per contract field, in the units of each output's margin. When the trees are shallow
enough (every model `eih train` has chosen so far) they are read from per-tree tables of
XGBoost's numbers (`serving.shap_tables`: the same values to float32 rounding, ~10x
faster on batches and ~6x on one record), on every path alike, so a record gets the same
bits over HTTP, in a micro-batch and in a batch file; otherwise XGBoost is called. Calibration is an affine map of
the margins (temperature T and a bias b per output): margin = raw / T + b. Contributions
are divided by T and b is added to the base value, so base + sum(contributions) equals
the calibrated margin exactly and the explanation explains the probabilities served.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.special import ndtr

from data_contracts.fields import BY_NAME, CONTRACT_MAJOR, RESPONSES
from features.derived import DERIVED, kind
from features.pipeline import ContractFeatures, category_codes
from serving.shap_tables import ShapTables

BOOSTER_FILE = "booster.ubj"
META_FILE = "meta.json"


class ContractVersionError(RuntimeError):
    pass


@dataclass
class Explanation:
    margins: np.ndarray  # (n, K) calibrated margins
    base: np.ndarray  # (n, K) base values (calibrated)
    contributions: np.ndarray  # (n, K, F), one per contract field
    outputs: tuple[str, ...]
    fields: tuple[str, ...]


SOFTMAX, ORDINAL = "softmax", "ordinal_normal"
ORDINAL_OUTPUT = "eih_pct"


def softmax(m: np.ndarray) -> np.ndarray:
    z = m - m.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ordinal_proba(mu: np.ndarray, sigma: float, threshold_pct: float) -> np.ndarray:
    """(n,) expected eih_pct -> (n, 3) P(hypoalgesia, no change, hyperalgesia) for eih ~ N(mu, sigma)."""
    mu = np.asarray(mu, dtype="float64")
    hypo = ndtr((mu - threshold_pct) / sigma)
    hyper = ndtr((-threshold_pct - mu) / sigma)
    return np.column_stack([hypo, np.clip(1.0 - hypo - hyper, 0.0, 1.0), hyper])


def margins_to_proba(margins: np.ndarray, link: str, sigma: float | None = None,
                     threshold_pct: float | None = None) -> np.ndarray:
    """Calibrated margins (n, K) -> class probabilities (n, 3) in RESPONSES order."""
    if link == ORDINAL:
        return ordinal_proba(margins[:, 0], sigma, threshold_pct)
    return softmax(margins)


class EIHPredictor:
    """Predict and explain for contract records. Build with `from_parts` or `load`."""

    def __init__(self, booster: xgb.Booster, meta: dict):
        self.booster = booster
        self.meta = meta
        self.fields: tuple[str, ...] = tuple(meta["features"])
        self.outputs: tuple[str, ...] = tuple(meta.get("outputs", RESPONSES))
        inputs = tuple(f for f in self.fields if f not in DERIVED)
        derived = tuple(f for f in self.fields if f in DERIVED)
        if inputs + derived != self.fields:
            raise ValueError("derived features must come after the contract fields in the model's feature list")
        self.inputs: tuple[str, ...] = inputs  # the contract fields the model reads
        self.features = ContractFeatures(predictors=inputs, derived=derived).fit(None)
        cal = meta.get("calibration", {})
        self.temperature = float(cal.get("temperature", 1.0))
        self.bias = np.asarray(cal.get("bias", [0.0] * len(self.outputs)), dtype="float64")
        self.link: str = meta.get("link", SOFTMAX)
        self.sigma = float(cal["sigma"]) if self.link == ORDINAL else None
        names = booster.feature_names
        if names is not None and tuple(names) != self.fields:
            raise ValueError("booster feature names differ from the model's feature list")
        major = int(str(meta["contract_version"]).split(".")[0])
        if major != CONTRACT_MAJOR:
            raise ContractVersionError(
                f"model was trained with data contract {meta['contract_version']}, this code speaks contract "
                f"{CONTRACT_MAJOR}.x: refusing to serve it (retrain the model or use a matching release)"
            )

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path) -> EIHPredictor:
        d = Path(directory)
        meta = json.loads((d / META_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(d / BOOSTER_FILE))
        return cls(booster, meta)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / BOOSTER_FILE))
        (d / META_FILE).write_text(json.dumps(self.meta, indent=1, sort_keys=True))
        return d

    # ---- properties --------------------------------------------------------------
    @property
    def contract_version(self) -> str:
        return str(self.meta["contract_version"])

    @property
    def threshold_pct(self) -> float:
        return float(self.meta["label_threshold_pct"])

    @property
    def reference(self) -> dict:
        return self.meta.get("reference", {})

    def set_threads(self, n: int) -> None:
        """Threads for prediction and for building the DMatrix (default: all cores)."""
        self.booster.set_param({"nthread": int(n)})
        self._nthread = int(n)

    # ---- prediction --------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.features.transform(df)

    def _check_order(self, X: pd.DataFrame) -> None:
        if tuple(X.columns) != self.fields:  # shap/xgboost/the tables would not notice a reordering
            raise ValueError("feature frame columns are not in the model's order")

    def _dmatrix(self, X: pd.DataFrame) -> xgb.DMatrix:
        self._check_order(X)
        return xgb.DMatrix(X, enable_categorical=True, feature_names=list(self.fields),
                           nthread=getattr(self, "_nthread", -1))

    def raw_margins(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self._dmatrix(X), output_margin=True, validate_features=True)

    def margins_of(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated margins (n, K) of a feature frame built by `transform`."""
        raw = self.raw_margins(X)
        return raw.reshape(len(raw), -1) / self.temperature + self.bias

    def margins(self, df: pd.DataFrame) -> np.ndarray:
        return self.margins_of(self.transform(df))

    def proba(self, margins: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 3), RESPONSES order, from calibrated margins."""
        return margins_to_proba(margins, self.link, self.sigma, self.threshold_pct)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return self.proba(self.margins(df))

    def explain_features(self, X: pd.DataFrame) -> Explanation:
        """`explain` for a feature frame built by `transform` (the batch scorer transforms once)."""
        tables = self.shap_tables()
        if tables is not None:
            self._check_order(X)
            return self._explanation(tables.contributions(self.frame_matrix(X)))
        contrib = self.booster.predict(self._dmatrix(X), pred_contribs=True, validate_features=True)
        return self._explanation(contrib)

    def shap_tables(self) -> ShapTables | None:
        """The table explainer of this booster (built once), or None if its trees are too deep."""
        tables = getattr(self, "_shap_tables", None)
        if tables is None:
            cats = self.features.categories_
            n_categories = {j: len(cats[f]) for j, f in enumerate(self.fields) if f in cats}
            tables = ShapTables.build(self.booster, self._feature_types(), n_categories) or False
            self._shap_tables = tables
        return tables or None

    def frame_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """A feature frame built by `transform` -> the (n, F) matrix XGBoost reads from it
        (categories as their codes in the model's category order, missing as NaN),
        column-major. A categorical column in another category order is re-coded by name,
        as XGBoost does with a frame; a category the model does not know is refused."""
        M = np.empty((len(X), len(self.fields)), order="F")
        cats = self.features.categories_
        for j, name in enumerate(self.fields):
            col = X[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                if name in cats and list(col.cat.categories) != list(cats[name]):
                    recoded = col.cat.set_categories(cats[name])
                    if (recoded.isna() & col.notna()).any():
                        raise ValueError(f"{name}: a category the model does not know")
                    col = recoded
                M[:, j] = category_codes(col)
            else:
                M[:, j] = col.to_numpy(dtype="float64", na_value=np.nan)
        return M

    def explain(self, df: pd.DataFrame) -> Explanation:
        return self.explain_features(self.transform(df))

    def _explanation(self, contrib: np.ndarray) -> Explanation:
        # XGBoost returns float32; in float64 the served margins equal base + sum(contributions)
        # to 1e-15 rather than 1e-7 (a client re-adding the JSON values must get the margin back)
        contrib = np.asarray(contrib, dtype="float64")
        if contrib.ndim == 2:  # single output model: (n, F+1)
            contrib = contrib[:, None, :]
        contributions = contrib[:, :, :-1] / self.temperature
        base = contrib[:, :, -1] / self.temperature + self.bias
        margins = base + contributions.sum(axis=2)
        return Explanation(margins, base, contributions, self.outputs, self.fields)

    def predict_and_explain(self, df: pd.DataFrame) -> tuple[np.ndarray, Explanation]:
        ex = self.explain(df)
        return self.proba(ex.margins), ex

    # ---- fast path for parsed records (the HTTP service) -------------------------------
    # One record through pandas (transform + a DataFrame DMatrix) costs about 5 ms of
    # overhead around well under 1 ms of TreeSHAP; the HTTP service builds the same matrix
    # straight from the parsed JSON records instead. The results are identical to
    # `explain(df)` (tests/test_serving_units.py checks this bit for bit).
    def _fast_columns(self) -> list[tuple[str, dict | None]]:
        cols = getattr(self, "_fast_cols", None)
        if cols is None:
            cats = self.features.categories_
            cols = [(f, {c: float(i) for i, c in enumerate(cats[f])} if f in cats else None) for f in self.inputs]
            pos = {f: j for j, f in enumerate(self.fields)}
            # derived features: (column, spec, {input field: its column})
            self._derived_plan = [(pos[d], DERIVED[d], {f: pos[f] for f in DERIVED[d].inputs})
                                  for d in self.fields[len(self.inputs):]]
            self._fast_cols = cols
        return cols

    def matrix(self, records: Sequence[Mapping]) -> np.ndarray:
        """Contract records (mappings, e.g. parsed JSON) -> (n, F) float64 matrix in model order.

        Numbers as floats (missing -> NaN); categories as their position in the contract's
        category list (missing or not a contract category -> NaN), which is exactly what
        `transform` and the pandas DMatrix hand to XGBoost. Expects validated records.
        """
        cols = self._fast_columns()
        X = np.full((len(records), len(self.fields)), np.nan)
        for i, rec in enumerate(records):
            row = X[i]
            for j, (name, codes) in enumerate(cols):
                v = rec.get(name)
                if v is None:
                    continue
                if codes is None:
                    row[j] = float(v)
                elif isinstance(v, str):
                    row[j] = codes.get(v, np.nan)
        for j, spec, src in self._derived_plan:  # derived features, from the columns just filled
            X[:, j] = spec.compute({f: X[:, k] for f, k in src.items()})
        return X

    def _feature_types(self) -> list[str]:
        types = getattr(self, "_ftypes", None)
        if types is None:
            types = self.booster.feature_types
            if types is None:
                types = ["c" if kind(f) == "category" else "float" for f in self.fields]
            self._ftypes = types = list(types)
        return types

    def explain_matrix(self, X: np.ndarray) -> Explanation:
        """`explain` for a matrix built by `matrix` (same values, without pandas)."""
        if X.ndim != 2 or X.shape[1] != len(self.fields):
            raise ValueError("feature matrix does not have one column per model field")
        tables = self.shap_tables()
        if tables is not None:
            return self._explanation(tables.contributions(X))
        dm = xgb.DMatrix(X, feature_names=list(self.fields), feature_types=self._feature_types(),
                         enable_categorical=True, nthread=1)
        # the columns are in self.fields order by construction, and __init__ checked that the
        # booster's feature names are self.fields: XGBoost's own name check would only cost time
        contrib = self.booster.predict(dm, pred_contribs=True, validate_features=False)
        return self._explanation(contrib)

    def explain_records(self, records: Sequence[Mapping]) -> Explanation:
        return self.explain_matrix(self.matrix(records))

    def missing_optional_matrix(self, X: np.ndarray) -> list[list[str]]:
        """`missing_optional` for a matrix built by `matrix` (every field present as a column)."""
        optional = [j for j, f in enumerate(self.inputs) if not BY_NAME[f].required]  # inputs come first
        names = np.asarray([self.fields[j] for j in optional], dtype=object)
        miss = np.isnan(X[:, optional]) if optional else np.zeros((len(X), 0), dtype=bool)
        return [list(names[row]) for row in miss]

    def _range_table(self) -> tuple:
        table = getattr(self, "_range_tab", None)
        if table is None:
            ref, cats = self.reference, self.features.categories_
            num_j, lo, hi, num_text, cat_cols = [], [], [], [], []
            for j, name in enumerate(self.fields):
                r = ref.get(name) if name not in DERIVED else None  # warnings speak of inputs only
                if r is None:
                    continue
                if r["kind"] == "number":
                    if r["min"] is None:
                        continue
                    num_j.append(j)
                    lo.append(r["min"])
                    hi.append(r["max"])
                    num_text.append(f"{name} is outside the range seen in training ({r['min']:g} to {r['max']:g})")
                else:
                    seen = [c for c, p in zip(r["categories"], r["proportions"]) if p > 0]
                    seen_codes = [float(i) for i, c in enumerate(cats.get(name, [])) if c in seen]
                    cat_cols.append((j, np.asarray(seen_codes), f"{name} has a category not seen in training"))
            table = (np.asarray(num_j, dtype=int), np.asarray(lo, dtype="float64"), np.asarray(hi, dtype="float64"),
                     num_text, cat_cols)
            self._range_tab = table
        return table

    def range_warnings_matrix(self, X: np.ndarray) -> list[list[str]]:
        """`range_warnings` for a matrix built by `matrix` (same texts, same order)."""
        num_j, lo, hi, num_text, cat_cols = self._range_table()
        n = len(X)
        # one column per warning, in model field order (numbers and categories interleaved as in the fields)
        order, flags, texts = [], [], []
        with np.errstate(invalid="ignore"):
            if len(num_j):
                V = X[:, num_j]
                bad = (V < lo) | (V > hi)
                for k, j in enumerate(num_j):
                    order.append(j)
                    flags.append(bad[:, k])
                    texts.append(num_text[k])
            for j, seen_codes, text in cat_cols:
                v = X[:, j]
                order.append(j)
                flags.append(~np.isnan(v) & ~np.isin(v, seen_codes))
                texts.append(text)
        out: list[list[str]] = [[] for _ in range(n)]
        if not flags:
            return out
        idx = np.argsort(np.asarray(order), kind="stable")
        F = np.column_stack(flags)[:, idx]
        texts = [texts[k] for k in idx]
        for i in np.flatnonzero(F.any(axis=1)):
            out[i] = [texts[k] for k in np.flatnonzero(F[i])]
        return out

    # ---- interpretation ------------------------------------------------------------
    def risk_level(self, p_hyper: np.ndarray) -> np.ndarray:
        """'low' / 'moderate' / 'high' hyperalgesia risk from the cut-offs stored in meta."""
        lo, hi = self.meta["risk_cutoffs"]["moderate"], self.meta["risk_cutoffs"]["high"]
        p = np.asarray(p_hyper, dtype="float64")
        return np.where(p >= hi, "high", np.where(p >= lo, "moderate", "low"))

    def missing_optional(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row, the optional predictors that were missing (the model handled them natively)."""
        optional = [f for f in self.inputs if not BY_NAME[f].required]
        present = [f for f in optional if f in df.columns]
        absent = [f for f in optional if f not in df.columns]
        if present:
            miss = df[present].isna().to_numpy()
        else:
            miss = np.zeros((len(df), 0), dtype=bool)
        names = np.asarray(present, dtype=object)
        return [list(names[row]) + absent for row in miss]

    def range_warnings(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row, fields whose value lies outside what the model saw in training."""
        ref = self.reference
        out: list[list[str]] = [[] for _ in range(len(df))]
        for name in self.inputs:
            r = ref.get(name)
            if r is None or name not in df.columns:
                continue
            col = df[name]
            if r["kind"] == "number":
                if r["min"] is None:
                    continue
                v = col.to_numpy(dtype="float64")
                bad = (v < r["min"]) | (v > r["max"])
                text = f"{name} is outside the range seen in training ({r['min']:g} to {r['max']:g})"
            else:
                seen = [c for c, p in zip(r["categories"], r["proportions"]) if p > 0]
                bad = (~col.isin(seen) & col.notna()).to_numpy()
                text = f"{name} has a category not seen in training"
            for i in np.flatnonzero(bad):
                out[i].append(text)
        return out
