"""The predictor of a trained model: feature pipeline + booster + calibration + exact
explanations, in one object that training, the HTTP service, the batch scorer and the
MLflow pyfunc wrapper all use.

Explanations are exact TreeSHAP values: XGBoost's own `pred_contribs=True` numbers, one
per model field, in the units of each output's margin. When the trees are shallow enough
they are read from per-tree tables of XGBoost's numbers (`model_runtime.shap_tables`: the
same values to float32 rounding, ~10x faster on batches and ~6x on one record), on every
path alike, so a record gets the same bits over HTTP, in a micro-batch and in a batch
file; otherwise XGBoost is called. Calibration is an affine map of the margins
(`model_runtime.links`): contributions are divided by T and b is added to the base value,
so base + sum(contributions) equals the calibrated margin exactly and the explanation
explains the probabilities served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from features.derived import DERIVED
from features.pipeline import ContractFeatures
from model_runtime.interpret import InputChecks, risk_level
from model_runtime.links import ORDINAL, margins_to_proba
from model_runtime.matrix import ModelMatrix
from model_runtime.metadata import ModelMeta
from model_runtime.shap_tables import ShapTables

BOOSTER_FILE = "booster.ubj"
META_FILE = "meta.json"


@dataclass
class Explanation:
    """Exact contributions of a batch: base + contributions.sum(axis=2) == margins."""

    margins: np.ndarray  # (n, K) calibrated margins
    base: np.ndarray  # (n, K) base values (calibrated)
    contributions: np.ndarray  # (n, K, F), one per model field
    outputs: tuple[str, ...]
    fields: tuple[str, ...]


class EIHPredictor:
    """Predict and explain for contract records. Build from a booster and its `ModelMeta`,
    or `load` a saved directory."""

    def __init__(self, booster: xgb.Booster, meta: ModelMeta):
        meta.check_contract()
        self.booster = booster
        self.meta = meta
        self.fields: tuple[str, ...] = tuple(meta.features)
        self.outputs: tuple[str, ...] = tuple(meta.outputs)
        inputs = tuple(f for f in self.fields if f not in DERIVED)
        derived = tuple(f for f in self.fields if f in DERIVED)
        if inputs + derived != self.fields:
            raise ValueError("derived features must come after the contract fields in the model's feature list")
        self.inputs: tuple[str, ...] = inputs  # the contract fields the model reads
        self.features = ContractFeatures(predictors=inputs, derived=derived).fit(None)
        names = booster.feature_names
        if names is not None and tuple(names) != self.fields:
            raise ValueError("booster feature names differ from the model's feature list")
        self.link: str = meta.link
        self.sigma = meta.sigma if self.link == ORDINAL else None
        self.temperature = float(meta.calibration.temperature)
        self.bias = meta.calibration.bias_array(len(self.outputs))
        self.builder = ModelMatrix(self.fields, len(inputs), self.features.categories_)
        self.checks = InputChecks(self.fields, inputs, meta.reference, self.features.categories_)
        self._feature_types = list(booster.feature_types or self.builder.feature_types())
        self._nthread = -1
        self._tables: ShapTables | None | bool = False  # False: not built yet

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path) -> EIHPredictor:
        """Load a directory written by `save`."""
        d = Path(directory)
        meta = ModelMeta.from_json((d / META_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(d / BOOSTER_FILE))
        return cls(booster, meta)

    def save(self, directory: str | Path) -> Path:
        """Write the booster and meta.json to `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / BOOSTER_FILE))
        (d / META_FILE).write_text(self.meta.to_json())
        return d

    # ---- properties --------------------------------------------------------------
    @property
    def contract_version(self) -> str:
        return str(self.meta.contract_version)

    @property
    def threshold_pct(self) -> float:
        return float(self.meta.label_threshold_pct)

    @property
    def reference(self) -> dict:
        return self.meta.reference

    def set_threads(self, n: int) -> None:
        """Threads for prediction and for building the DMatrix (default: all cores)."""
        self.booster.set_param({"nthread": int(n)})
        self._nthread = int(n)

    # ---- prediction --------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Contract frame -> feature frame in the model's field order."""
        return self.features.transform(df)

    def _dmatrix(self, X: pd.DataFrame) -> xgb.DMatrix:
        self.builder.check_order(X)
        return xgb.DMatrix(X, enable_categorical=True, feature_names=list(self.fields), nthread=self._nthread)

    def raw_margins(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated margins of a feature frame."""
        return self.booster.predict(self._dmatrix(X), output_margin=True, validate_features=True)

    def margins_of(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated margins (n, K) of a feature frame built by `transform`."""
        return self.meta.calibration.apply(self.raw_margins(X))

    def margins(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated margins (n, K) of a contract frame."""
        return self.margins_of(self.transform(df))

    def proba(self, margins: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 3), RESPONSES order, from calibrated margins."""
        return margins_to_proba(margins, self.link, self.sigma, self.threshold_pct)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, 3) of a contract frame."""
        return self.proba(self.margins(df))

    # ---- explanation -------------------------------------------------------------
    def shap_tables(self) -> ShapTables | None:
        """The table explainer of this booster (built once), or None if its trees are too deep."""
        if self._tables is False:
            self._tables = ShapTables.build(self.booster, self._feature_types, self.builder.n_categories())
        return self._tables

    def explain_features(self, X: pd.DataFrame) -> Explanation:
        """`explain` for a feature frame built by `transform` (the batch scorer transforms once)."""
        tables = self.shap_tables()
        if tables is not None:
            return self._explanation(tables.contributions(self.builder.from_frame(X)))
        contrib = self.booster.predict(self._dmatrix(X), pred_contribs=True, validate_features=True)
        return self._explanation(contrib)

    def explain(self, df: pd.DataFrame) -> Explanation:
        """Exact contributions of a contract frame."""
        return self.explain_features(self.transform(df))

    def explain_matrix(self, X: np.ndarray) -> Explanation:
        """`explain` for a model matrix (same values, without pandas)."""
        if X.ndim != 2 or X.shape[1] != len(self.fields):
            raise ValueError("feature matrix does not have one column per model field")
        tables = self.shap_tables()
        if tables is not None:
            return self._explanation(tables.contributions(X))
        dm = xgb.DMatrix(X, feature_names=list(self.fields), feature_types=self._feature_types,
                         enable_categorical=True, nthread=1)
        # the columns are in self.fields order by construction, and __init__ checked that the
        # booster's feature names are self.fields: XGBoost's own name check would only cost time
        return self._explanation(self.booster.predict(dm, pred_contribs=True, validate_features=False))

    def explain_records(self, records: Sequence[Mapping]) -> Explanation:
        """Exact contributions of parsed contract records."""
        return self.explain_matrix(self.matrix(records))

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
        """Probabilities and exact contributions of a contract frame, from one TreeSHAP pass."""
        ex = self.explain(df)
        return self.proba(ex.margins), ex

    # ---- the model matrix and what comes with a prediction -------------------------
    def matrix(self, records: Sequence[Mapping]) -> np.ndarray:
        """Parsed contract records -> the model matrix (`ModelMatrix.from_records`)."""
        return self.builder.from_records(records)

    def frame_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """A feature frame -> the model matrix (`ModelMatrix.from_frame`)."""
        return self.builder.from_frame(X)

    def risk_level(self, p_hyper: np.ndarray) -> np.ndarray:
        """'low' / 'moderate' / 'high' hyperalgesia risk from the model's cut-offs."""
        return risk_level(p_hyper, self.meta.risk_cutoffs)

    def missing_optional_matrix(self, X: np.ndarray) -> list[list[str]]:
        """Per row of a model matrix, the names of the optional inputs that are missing."""
        return self.checks.missing_optional_matrix(X)

    def range_warnings_matrix(self, X: np.ndarray) -> list[list[str]]:
        """Per row of a model matrix, one warning text per input outside the range (or categories)
        seen in training."""
        return self.checks.range_warnings_matrix(X)

    def missing_optional(self, df: pd.DataFrame) -> list[list[str]]:
        """`missing_optional_matrix` for a contract frame (an absent optional column counts as missing)."""
        return self.checks.missing_optional(df)

    def range_warnings(self, df: pd.DataFrame) -> list[list[str]]:
        """`range_warnings_matrix` for a contract frame."""
        return self.checks.range_warnings(df)
