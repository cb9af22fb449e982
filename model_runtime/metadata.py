"""The typed metadata of a trained model: what it reads, how its margins become
probabilities, its risk cut-offs and the reference statistics of its training data.

Stored as `meta.json` beside the booster; `to_json` / `from_json` round-trip it, and
`check_contract` refuses a model trained on another major version of the data contract.
Keys this code does not know are kept in `extra`, so a newer model's metadata survives
a load and save unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from data_contracts.fields import CONTRACT_MAJOR, RESPONSES
from model_runtime.links import SOFTMAX, MarginCalibration


class ContractVersionError(RuntimeError):
    """A model trained on another major version of the data contract."""


@dataclass
class ModelMeta:
    """Everything a trained model needs beside its booster."""

    contract_version: str
    label_threshold_pct: float
    features: tuple[str, ...]
    link: str = SOFTMAX
    outputs: tuple[str, ...] = RESPONSES
    calibration: MarginCalibration = field(default_factory=MarginCalibration)
    risk_cutoffs: dict[str, float] = field(default_factory=lambda: {"moderate": 0.2, "high": 0.35})
    reference: dict = field(default_factory=dict)
    class_prior: tuple[float, ...] = ()
    model_shape: dict = field(default_factory=dict)
    trained_at: str | None = None
    seed: int | None = None
    attribution_reference: dict = field(default_factory=dict)
    training_metrics: dict = field(default_factory=dict)
    conformal: dict = field(default_factory=dict)
    """Quantiles of the standardized residual per level and pain condition (model_runtime.intervals)."""
    risk_cutoffs_reason: str = ""
    """How the risk cut-offs were chosen (decision curves and the noise floor)."""
    extra: dict = field(default_factory=dict)

    def check_contract(self) -> None:
        """Raise ContractVersionError unless the model speaks this code's contract major."""
        major = int(str(self.contract_version).split(".")[0])
        if major != CONTRACT_MAJOR:
            raise ContractVersionError(
                f"model was trained with data contract {self.contract_version}, this code speaks contract "
                f"{CONTRACT_MAJOR}.x: refusing to serve it (retrain the model or use a matching release)"
            )

    @property
    def sigma(self) -> float | None:
        """The ordinal model's residual spread (None for softmax models)."""
        return self.calibration.sigma

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the layout of meta.json)."""
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if f.name == "calibration":
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, d: dict) -> ModelMeta:
        """Inverse of `to_dict`; unknown keys go to `extra`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["calibration"] = MarginCalibration.from_dict(d.get("calibration", {}))
        for name in ("features", "outputs", "class_prior"):
            if name in kw:
                kw[name] = tuple(kw[name])
        kw["label_threshold_pct"] = float(kw["label_threshold_pct"])
        kw["contract_version"] = str(kw["contract_version"])
        return cls(**kw, extra={k: v for k, v in d.items() if k not in known})

    def to_json(self) -> str:
        """meta.json text (sorted keys, so equal metadata gives equal files)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        """Parse meta.json text."""
        return cls.from_dict(json.loads(text))
