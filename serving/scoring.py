"""Score validated records and build the JSON of /predict and /explain.

One matrix build and one TreeSHAP call per batch (the contributions give the margins,
so the model is never run twice); `run` takes a batch of jobs from several requests and
returns each request's response body. Used by the BentoML service through the
micro-batcher; pure Python, so it is tested without a server.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from data_contracts.fields import CONTRACT_VERSION, PREDICTORS, RESPONSES
from model_runtime.loading import LoadedModel
from serving.explain import top_contributions

Kind = Literal["predict", "explain"]


@dataclass(frozen=True)
class Job:
    """One request's work: /predict or /explain on its validated records."""

    kind: Kind
    records: list[dict]


class Scorer:
    """The response bodies of /predict, /explain and /metadata for one loaded model."""

    def __init__(self, loaded: LoadedModel, top_k: int = 5) -> None:
        self.loaded = loaded
        self.predictor = p = loaded.predictor
        self.top_k = top_k
        self.outputs: tuple[str, ...] = p.outputs
        self.model_info = {
            "name": loaded.name,
            "version": loaded.version,
            "contract_version": p.contract_version,
            "label_threshold_pct": p.threshold_pct,
        }
        self._hyper = RESPONSES.index("hyperalgesia")
        self._field_pos = {f: j for j, f in enumerate(p.fields)}
        # explanations name every contract predictor (0 for one the model does not use), then the
        # model's derived features
        self._explained = PREDICTORS + tuple(f for f in p.fields if f not in PREDICTORS)

    # ---- one batch of jobs -----------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[bytes]:
        """Score the records of every job in one pass and return one JSON body (UTF-8 bytes) per
        job, in order: predictions for a "predict" job, explanations for an "explain" one."""
        records = jobs[0].records if len(jobs) == 1 else [r for job in jobs for r in job.records]
        p = self.predictor
        X = p.matrix(records)
        ex = p.explain_matrix(X)
        P = p.proba(ex.margins)
        out: list[bytes] = []
        start = 0
        predict_rows = any(job.kind == "predict" for job in jobs)
        if predict_rows:
            tops = top_contributions(records, p.fields, ex.reasons(), self.top_k, values=X)
            missing = p.missing_optional_matrix(X)
            warnings = p.range_warnings_matrix(X)
            risk = p.risk_level(P[:, self._hyper])
            change = self._change(X, ex.margins)
        for job in jobs:
            stop = start + len(job.records)
            if job.kind == "predict":
                items = [self._prediction(job.records[i - start], P[i], tops[i], missing[i], warnings[i],
                                          str(risk[i]), change[i]) for i in range(start, stop)]
                payload = {"model": self.model_info, "predictions": items}
            else:
                items = [self._explanation(job.records[i - start], ex.margins[i], ex.base[i], ex.contributions[i])
                         for i in range(start, stop)]
                payload = {"model": self.model_info, "explanations": items}
            out.append(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())
            start = stop
        return out

    def _change(self, X: np.ndarray, margins: np.ndarray) -> list[dict]:
        """Per row: the expected change, its spread and the prediction intervals (empty for a
        class-margin model)."""
        p = self.predictor
        change = p.change_of(margins)
        if change is None:
            return [{} for _ in range(len(X))]
        intervals = p.intervals_matrix(X, margins) or {}
        mu, sd = change[0].tolist(), change[1].tolist()
        bounds = {level: iv.tolist() for level, iv in intervals.items()}
        out = []
        for i in range(len(X)):
            item = {"expected_change_pct": mu[i], "change_sd_pct": sd[i]}
            if bounds:
                item["change_interval_pct"] = {level: b[i] for level, b in bounds.items()}
            out.append(item)
        return out

    def _prediction(self, rec: dict, p: np.ndarray, tops: list, missing: list, warnings: list, risk,
                    change: dict) -> dict:
        """One record's entry of a /predict answer."""
        probs = p.tolist()
        return {
            "subject_id": rec["subject_id"],
            "probabilities": dict(zip(RESPONSES, probs)),
            "predicted_response": RESPONSES[int(np.argmax(p))],
            "hyperalgesia_risk": risk,
            **change,
            "top_contributions": tops,
            "missing_inputs": missing,
            "warnings": warnings,
        }

    def _explanation(self, rec: dict, margins: np.ndarray, base: np.ndarray, contrib: np.ndarray) -> dict:
        fields = self.predictor.fields
        rows = contrib.tolist()
        if tuple(fields) == self._explained:
            per_output = {o: dict(zip(fields, row)) for o, row in zip(self.outputs, rows)}
        else:  # a model on a subset of the predictors: the others contribute nothing
            per_output = {o: {f: (row[self._field_pos[f]] if f in self._field_pos else 0.0) for f in self._explained}
                          for o, row in zip(self.outputs, rows)}
        return {
            "subject_id": rec["subject_id"],
            "margins": dict(zip(self.outputs, margins.tolist())),
            "base_values": dict(zip(self.outputs, base.tolist())),
            "contributions": per_output,
        }

    # ---- GET /metadata -------------------------------------------------------------------
    def metadata(self) -> dict:
        """The body of GET /metadata. Training metrics and model shape keep their scalar values
        only, with non-finite numbers as None, so the body is valid JSON."""
        p = self.predictor
        meta = p.meta

        def clean(d: dict) -> dict:
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
                    if isinstance(v, (int, float, str)) or v is None}

        return {
            "model": {**self.model_info, "uri": self.loaded.uri, "run_id": self.loaded.run_id},
            "service_contract_version": CONTRACT_VERSION,
            "outputs": list(self.outputs),
            "link": p.link,
            "residual_sigma_pct": p.sigma,
            "features": list(p.fields),
            "risk_cutoffs": {k: float(v) for k, v in meta.risk_cutoffs.items()},
            "training_metrics": clean(meta.training_metrics),
            "model_shape": clean(meta.model_shape),
            "trained_at": meta.trained_at,
        }
