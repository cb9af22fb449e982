"""The job's aggregates: everything the drift metrics, the MLflow run and the cohort
report need, kept as sums that merge chunk by chunk (memory stays bounded and the Dask
engine gives the same numbers), how one chunk adds to them, and the drift and
rejected-rows tables made from them at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, RESPONSES
from features.derived import kind
from serving.batch.options import INTENSITY_BANDS, P_BINS, PROTOCOLS, RISK_LEVELS


def _zeros(*shape: int, dtype: str = "float64"):
    """A dataclass field that starts as a fresh array of zeros."""
    return field(default_factory=lambda: np.zeros(shape, dtype=dtype))


@dataclass
class Aggregates:
    """Mergeable sums of one chunk or of the whole job (see the module docstring)."""

    fields: tuple[str, ...]
    outputs: tuple[str, ...]
    input_counts: dict[str, np.ndarray] = field(default_factory=dict)
    input_missing: dict[str, int] = field(default_factory=dict)
    attr_counts: dict[str, np.ndarray] = field(default_factory=dict)
    abs_contrib_sum: np.ndarray | None = None  # (K, F)
    n_contrib: int = 0
    pred_counts: np.ndarray = _zeros(len(RESPONSES), dtype="int64")
    risk_counts: np.ndarray = _zeros(len(RISK_LEVELS), dtype="int64")
    p_sum: np.ndarray = _zeros(len(RESPONSES))
    p_hist: np.ndarray = _zeros(len(RESPONSES), P_BINS, dtype="int64")
    group_n: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L,)
    group_pred: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L, 3)
    group_psum: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L, 3)
    problems_by_rule: Counter = field(default_factory=Counter)  # (field, rule) -> rows
    sample_contrib: list[np.ndarray] = field(default_factory=list)  # (n_s, K, F)
    sample_values: list[np.ndarray] = field(default_factory=list)  # (n_s, F), numbers only

    def merge(self, other: Aggregates) -> None:
        """Add `other` (a later chunk) into these sums."""
        for name, c in other.input_counts.items():
            self.input_counts[name] = self.input_counts[name] + c if name in self.input_counts else c.copy()
        for name, c in other.input_missing.items():
            self.input_missing[name] = self.input_missing.get(name, 0) + c
        for name, c in other.attr_counts.items():
            self.attr_counts[name] = self.attr_counts[name] + c if name in self.attr_counts else c.copy()
        if other.abs_contrib_sum is not None:
            self.abs_contrib_sum = (other.abs_contrib_sum.copy() if self.abs_contrib_sum is None
                                    else self.abs_contrib_sum + other.abs_contrib_sum)
        self.n_contrib += other.n_contrib
        self.pred_counts += other.pred_counts
        self.risk_counts += other.risk_counts
        self.p_sum += other.p_sum
        self.p_hist += other.p_hist
        for g in other.group_n:
            if g in self.group_n:
                self.group_n[g] += other.group_n[g]
                self.group_pred[g] += other.group_pred[g]
                self.group_psum[g] += other.group_psum[g]
            else:
                self.group_n[g] = other.group_n[g].copy()
                self.group_pred[g] = other.group_pred[g].copy()
                self.group_psum[g] = other.group_psum[g].copy()
        self.problems_by_rule.update(other.problems_by_rule)
        self.sample_contrib += other.sample_contrib
        self.sample_values += other.sample_values


# ------------------------------------------------------------------------------------
# one chunk's contribution (called by score_chunk, here or on a Dask worker)
# ------------------------------------------------------------------------------------
def add_problems(agg: Aggregates, problems: pd.DataFrame) -> None:
    """Rejected rows counted by (field, rule): the rule is the problem text before ';'."""
    if not len(problems):
        return
    rule = problems["problem"].str.split(";", n=1).str[0]
    per_row = pd.DataFrame({"row": problems["row"], "field": problems["field"], "rule": rule})
    agg.problems_by_rule.update(
        {(f, r): int(c) for (f, r), c in per_row.groupby(["field", "rule"], sort=True).size().items()}
    )


def _group_codes(valid: pd.DataFrame) -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    for g in ("pain_condition", "exercise_modality"):
        out[g] = (np.asarray(valid[g].cat.codes, dtype="int64"), len(BY_NAME[g].categories))
    inten = valid["exercise_intensity_pct"].to_numpy(dtype="float64")
    band = np.where(inten >= 80, 2, np.where(inten >= 50, 1, 0))
    out["protocol"] = (out["exercise_modality"][0] * len(INTENSITY_BANDS) + band, len(PROTOCOLS))
    return out


def add_predictions(agg: Aggregates, P: np.ndarray, risk: np.ndarray, valid: pd.DataFrame) -> None:
    """The prediction distribution: classes, risk levels, probability sums and
    histograms, overall and per pain condition, modality and protocol."""
    pred = P.argmax(axis=1)
    agg.pred_counts += np.bincount(pred, minlength=len(RESPONSES))
    agg.risk_counts += np.bincount(risk, minlength=len(RISK_LEVELS))
    agg.p_sum += P.sum(axis=0)
    for k in range(len(RESPONSES)):
        agg.p_hist[k] += np.histogram(P[:, k], bins=P_BINS, range=(0.0, 1.0))[0]
    for g, (codes, levels) in _group_codes(valid).items():
        ok = codes >= 0
        c = codes[ok]
        agg.group_n[g] = np.bincount(c, minlength=levels)
        agg.group_pred[g] = np.bincount(c * len(RESPONSES) + pred[ok], minlength=levels * len(RESPONSES)).reshape(
            levels, len(RESPONSES))
        agg.group_psum[g] = np.stack([np.bincount(c, weights=P[ok, k], minlength=levels)
                                      for k in range(len(RESPONSES))], axis=1)


def add_input_drift(agg: Aggregates, predictor, X: pd.DataFrame) -> None:
    """Missing counts and reference-bin counts of every model input (`X` is the
    chunk's feature frame, transformed once for everything)."""
    from features.reference import bin_counts

    ref = predictor.reference
    for name in predictor.fields:
        col = X[name]
        agg.input_missing[name] = int(col.isna().sum())
        if name in ref:
            values = col.to_numpy(dtype="float64") if ref[name]["kind"] == "number" else col
            agg.input_counts[name] = bin_counts(ref[name], values)


def add_attributions(agg: Aggregates, predictor, contrib: np.ndarray | None) -> None:
    """Reference-bin counts and mean |contribution| of the attributions (every row, or
    the random sample with explain "none")."""
    from features.reference import bin_counts

    if contrib is None or not len(contrib):
        return
    aref = predictor.meta.attribution_reference
    for k, o in enumerate(predictor.outputs):
        for j, f in enumerate(predictor.fields):
            r = aref.get(f"{o}__{f}")
            if r is not None:
                agg.attr_counts[f"{o}__{f}"] = bin_counts(r, contrib[:, k, j])
    agg.abs_contrib_sum = np.abs(contrib).sum(axis=0, dtype="float64")
    agg.n_contrib = len(contrib)


def add_sample(agg: Aggregates, predictor, X: pd.DataFrame, sampled: np.ndarray,
               sample_contrib: np.ndarray | None) -> None:
    """The beeswarm sample: its contributions and its numeric input values."""
    if sample_contrib is None or not len(sample_contrib):
        return
    agg.sample_contrib.append(np.asarray(sample_contrib, dtype="float32"))
    vals = np.full((len(sample_contrib), len(predictor.fields)), np.nan)
    Xs = X.iloc[np.flatnonzero(sampled)]
    for j, f in enumerate(predictor.fields):
        if kind(f) == "number":
            vals[:, j] = Xs[f].to_numpy(dtype="float64")
    agg.sample_values.append(vals)


# ------------------------------------------------------------------------------------
# the tables made from the job's aggregates
# ------------------------------------------------------------------------------------
def drift_table(agg: Aggregates, predictor) -> pd.DataFrame:
    """PSI of every input field and every attribution against the training reference."""
    from features.reference import PSI_FLAG, psi_from_counts

    rows = []
    ref = predictor.reference
    n_scored = int(agg.pred_counts.sum())
    for f in predictor.fields:
        r = ref.get(f)
        counts = agg.input_counts.get(f)
        value = psi_from_counts(r, counts) if r is not None and counts is not None else None
        miss = agg.input_missing.get(f, 0) / n_scored if n_scored else None
        rows.append({"kind": "input", "name": f, "field": f, "output": "", "psi": value,
                     "missing_rate": miss, "reference_missing_rate": r.get("missing_rate") if r else None})
    aref = predictor.meta.attribution_reference
    for o in predictor.outputs:
        for f in predictor.fields:
            key = f"{o}__{f}"
            counts = agg.attr_counts.get(key)
            value = psi_from_counts(aref[key], counts) if key in aref and counts is not None else None
            rows.append({"kind": "attribution", "name": key, "field": f, "output": o, "psi": value,
                         "missing_rate": None, "reference_missing_rate": None})
    df = pd.DataFrame(rows)
    df["psi"] = df["psi"].astype("float64")
    df["flag"] = (df["psi"] > PSI_FLAG).fillna(False).astype(bool)
    return df


def problems_table(agg: Aggregates) -> pd.DataFrame:
    """Rejected rows by field and rule, most frequent first."""
    rows = [{"field": f, "problem": r, "count": c} for (f, r), c in agg.problems_by_rule.items()]
    df = pd.DataFrame(rows, columns=["field", "problem", "count"])
    return df.sort_values(["count", "field", "problem"], ascending=[False, True, True]).reset_index(drop=True)


@dataclass
class Tally:
    """Rows read, scored and rejected so far, and the input's unknown columns."""

    read: int = 0
    scored: int = 0
    rejected: int = 0
    unknown_columns: list[str] = field(default_factory=list)
