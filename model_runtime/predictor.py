"""The predictor of a trained model: feature pipeline + booster + calibration + exact
explanations, in one object that training, the HTTP service, the batch scorer and the
MLflow pyfunc wrapper all use.

Explanations are exact TreeSHAP values: XGBoost's own `pred_contribs=True` numbers, one
per model field, in the units of each output's margin. When the trees are shallow enough
they are read from per-tree tables of XGBoost's numbers (`model_runtime.shap_tables`: the
same values to float32 rounding, ~10x faster on batches and ~6x on one record), on every
path alike, so a record gets the same bits over HTTP, in a micro-batch and in a batch
file; otherwise XGBoost is called. The penalized spline family's outputs are additive
models (`model_runtime.additive`) that explain themselves exactly in the same layout.
Calibration is an affine map of the margins
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
from model_runtime.additive import AdditiveModel
from model_runtime.interpret import InputChecks, risk_level
from model_runtime.intervals import change_intervals
from model_runtime.links import CHANGE_LINKS, ORDINAL, ORDINAL_OUTPUT, margins_to_proba, spread_of
from model_runtime.matrix import ModelMatrix
from model_runtime.metadata import ModelMeta
from model_runtime.shap_tables import ShapTables

BOOSTER_FILE = "booster.ubj"
EXTRA_BOOSTER_FILE = "booster_{}.ubj"  # the second and later boosters of a model
ADDITIVE_FILE = "additive_{}.json"  # the outputs of a spline-family model, in output order
Component = xgb.Booster | AdditiveModel
META_FILE = "meta.json"


def _output_bytes(b: Component) -> bytes:
    """One output as bytes: a booster in UBJ (what `save_model` writes to a .ubj file), an
    additive model as its JSON."""
    return b.to_json().encode() if isinstance(b, AdditiveModel) else bytes(b.save_raw("ubj"))


def _output_from_bytes(raw: bytes, additive: bool) -> Component:
    """Inverse of `_output_bytes`."""
    if additive:
        return AdditiveModel.from_json(bytes(raw).decode())
    b = xgb.Booster()
    b.load_model(bytearray(raw))
    return b


@dataclass
class Explanation:
    """Exact contributions of a batch: base + contributions.sum(axis=2) == margins."""

    margins: np.ndarray  # (n, K) calibrated margins
    base: np.ndarray  # (n, K) base values (calibrated)
    contributions: np.ndarray  # (n, K, F), one per model field
    outputs: tuple[str, ...]
    fields: tuple[str, ...]

    def reasons(self) -> np.ndarray:
        """The contributions the reasons speak of, (n, K', F): the expected change alone for
        models whose first output is the change (the spread is explained apart), else every
        class margin."""
        return self.contributions[:, :1, :] if self.outputs[0] == ORDINAL_OUTPUT else self.contributions


class EIHPredictor:
    """Predict and explain for contract records. Build from a booster (or the boosters or
    additive models of its outputs, in output order) and its `ModelMeta`, or `load` a saved
    directory."""

    def __init__(self, booster: Component | Sequence[Component], meta: ModelMeta):
        meta.check_contract()
        single = isinstance(booster, (xgb.Booster, AdditiveModel))
        self.boosters: tuple[Component, ...] = (booster,) if single else tuple(booster)
        self.booster = self.boosters[0]  # the expected change (or the class margins)
        kinds = {isinstance(b, AdditiveModel) for b in self.boosters}
        if len(kinds) != 1:
            raise ValueError("a model's outputs are all boosters or all additive models")
        self.additive: bool = kinds == {True}
        self.meta = meta
        self.fields: tuple[str, ...] = tuple(meta.features)
        self.outputs: tuple[str, ...] = tuple(meta.outputs)
        inputs = tuple(f for f in self.fields if f not in DERIVED)
        derived = tuple(f for f in self.fields if f in DERIVED)
        if inputs + derived != self.fields:
            raise ValueError("derived features must come after the contract fields in the model's feature list")
        self.inputs: tuple[str, ...] = inputs  # the contract fields the model reads
        self.features = ContractFeatures(predictors=inputs, derived=derived).fit(None)
        for b in self.boosters:
            names = b.fields if self.additive else b.feature_names
            if names is not None and tuple(names) != self.fields:
                raise ValueError("booster feature names differ from the model's feature list")
        self.link: str = meta.link
        self.sigma = meta.sigma if self.link == ORDINAL else None
        self.temperature = meta.calibration.temperature_array(len(self.outputs))
        self.bias = meta.calibration.bias_array(len(self.outputs))
        self.builder = ModelMatrix(self.fields, len(inputs), self.features.categories_)
        self.checks = InputChecks(self.fields, inputs, meta.reference, self.features.categories_)
        self._feature_types = list((None if self.additive else self.booster.feature_types)
                                   or self.builder.feature_types())
        self._nthread = -1
        self._tables: list[ShapTables] | None | bool = False  # False: not built yet

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path) -> EIHPredictor:
        """Load a directory written by `save`."""
        d = Path(directory)
        meta = ModelMeta.from_json((d / META_FILE).read_text())
        additive = (d / ADDITIVE_FILE.format(0)).exists()
        n = len(meta.outputs) if additive else int(meta.extra.get("n_boosters", 1))
        return cls([_output_from_bytes((d / name).read_bytes(), additive) for name in _file_names(additive, n)], meta)

    def save(self, directory: str | Path) -> Path:
        """Write the boosters (or additive outputs) and meta.json to `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, b in zip(_file_names(self.additive, len(self.boosters)), self.boosters, strict=True):
            (d / name).write_bytes(_output_bytes(b))
        if not self.additive and len(self.boosters) > 1:
            self.meta.extra["n_boosters"] = len(self.boosters)
        (d / META_FILE).write_text(self.meta.to_json())
        return d

    def to_payload(self) -> dict:
        """The model as plain bytes and text (each output's bytes, whether they are additive
        models, meta.json), for another process."""
        return {"outputs": [_output_bytes(b) for b in self.boosters], "additive": self.additive,
                "meta": self.meta.to_json()}

    @classmethod
    def from_payload(cls, payload: dict) -> EIHPredictor:
        """Inverse of `to_payload`."""
        return cls([_output_from_bytes(raw, payload["additive"]) for raw in payload["outputs"]],
                   ModelMeta.from_json(payload["meta"]))

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
        for b in [] if self.additive else self.boosters:
            b.set_param({"nthread": int(n)})
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
        if self.additive:
            return self.raw_margins_matrix(self.builder.from_frame(X))
        dm = self._dmatrix(X)
        return self._stack([b.predict(dm, output_margin=True, validate_features=True) for b in self.boosters], len(X))

    def raw_margins_matrix(self, M: np.ndarray) -> np.ndarray:
        """Uncalibrated margins (n, K) of a model matrix (one `inplace_predict` per booster)."""
        if self.additive:
            return self._stack([b.margins(M) for b in self.boosters], len(M))
        return self._stack([b.inplace_predict(M, predict_type="margin", validate_features=False)
                            for b in self.boosters], len(M))

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
    def all_tables(self) -> list[ShapTables] | None:
        """One table explainer per booster (built once), or None if any booster's trees are too deep.
        An additive output is its own exact explainer."""
        if self._tables is False and self.additive:
            self._tables = list(self.boosters)
        if self._tables is False:
            built = [ShapTables.build(b, self._feature_types, self.builder.n_categories()) for b in self.boosters]
            self._tables = None if any(t is None for t in built) else built
        return self._tables

    def shap_tables(self) -> ShapTables | None:
        """The table explainer of the first booster, or None when the model is explained by XGBoost."""
        tables = self.all_tables()
        return tables[0] if tables else None

    @staticmethod
    def _stack(parts: list[np.ndarray], n: int) -> np.ndarray:
        """Per-booster margins -> (n, K), outputs in booster order."""
        return np.hstack([np.asarray(p).reshape(n, -1) for p in parts])

    @staticmethod
    def _stack_contrib(parts: list[np.ndarray]) -> np.ndarray:
        """Per-booster contributions -> (n, K, F + 1), outputs in booster order."""
        return np.concatenate([p if p.ndim == 3 else p[:, None, :] for p in parts], axis=1)

    def explain_features(self, X: pd.DataFrame) -> Explanation:
        """`explain` for a feature frame built by `transform` (the batch scorer transforms once)."""
        tables = self.all_tables()
        if tables is not None:
            M = self.builder.from_frame(X)
            return self._explanation(self._stack_contrib([t.contributions(M) for t in tables]))
        dm = self._dmatrix(X)
        return self._explanation(self._stack_contrib(
            [b.predict(dm, pred_contribs=True, validate_features=True) for b in self.boosters]))

    def explain(self, df: pd.DataFrame) -> Explanation:
        """Exact contributions of a contract frame."""
        return self.explain_features(self.transform(df))

    def explain_matrix(self, X: np.ndarray) -> Explanation:
        """`explain` for a model matrix (same values, without pandas)."""
        if X.ndim != 2 or X.shape[1] != len(self.fields):
            raise ValueError("feature matrix does not have one column per model field")
        tables = self.all_tables()
        if tables is not None:
            return self._explanation(self._stack_contrib([t.contributions(X) for t in tables]))
        dm = xgb.DMatrix(X, feature_names=list(self.fields), feature_types=self._feature_types,
                         enable_categorical=True, nthread=1)
        # the columns are in self.fields order by construction, and __init__ checked that the
        # boosters' feature names are self.fields: XGBoost's own name check would only cost time
        return self._explanation(self._stack_contrib(
            [b.predict(dm, pred_contribs=True, validate_features=False) for b in self.boosters]))

    def explain_records(self, records: Sequence[Mapping]) -> Explanation:
        """Exact contributions of parsed contract records."""
        return self.explain_matrix(self.matrix(records))

    def _explanation(self, contrib: np.ndarray) -> Explanation:
        # XGBoost returns float32; in float64 the served margins equal base + sum(contributions)
        # to 1e-15 rather than 1e-7 (a client re-adding the JSON values must get the margin back)
        contrib = np.asarray(contrib, dtype="float64")
        contributions = contrib[:, :, :-1] / self.temperature[None, :, None]
        base = contrib[:, :, -1] / self.temperature + self.bias
        # field by field in a fixed order: numpy's sum over an axis may pair terms differently
        # for different batch shapes, and a record must get the same bits alone or in a batch
        margins = base.copy()
        for j in range(contributions.shape[2]):
            margins += contributions[:, :, j]
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

    def change_of(self, margins: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(expected change in %, spread in %-points) of each row, or None for a class-margin model."""
        if self.link not in CHANGE_LINKS:
            return None
        return margins[:, 0], spread_of(margins, self.link, self.sigma)

    def condition_names(self, X: np.ndarray) -> list[str | None]:
        """Each model-matrix row's pain condition by name (None when missing or not read)."""
        if "pain_condition" not in self.fields:
            return [None] * len(X)
        names = self.builder.categories["pain_condition"]
        return [names[int(c)] if c == c else None for c in X[:, self.fields.index("pain_condition")]]

    def intervals_matrix(self, X: np.ndarray, margins: np.ndarray) -> dict[str, np.ndarray] | None:
        """{"80": (n, 2), "90": (n, 2)} prediction intervals of the measured change of the rows
        of a model matrix, or None when the model has no conformal calibration."""
        return self.intervals(margins, self.condition_names(X))

    def intervals(self, margins: np.ndarray, conditions) -> dict[str, np.ndarray] | None:
        """`intervals_matrix` for rows whose pain conditions are given by name (None: unknown)."""
        change = self.change_of(margins)
        if change is None or not self.meta.conformal:
            return None
        return change_intervals(self.meta.conformal, change[0], change[1], conditions)

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


def _file_names(additive: bool, n: int) -> list[str]:
    """The files of a saved model's `n` outputs."""
    if additive:
        return [ADDITIVE_FILE.format(k) for k in range(n)]
    return [BOOSTER_FILE] + [EXTRA_BOOSTER_FILE.format(k) for k in range(1, n)]
