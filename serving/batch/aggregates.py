"""The job's aggregates: everything the drift metrics, the MLflow run and the cohort
report need, kept as sums that merge chunk by chunk (memory stays bounded and the Dask
engine gives the same numbers), how one chunk adds to them, and the drift and
rejected-rows tables made from them at the end. Sums per site and against measured
outcomes live in `serving.batch.sites`."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, RESPONSES
from features.derived import kind
from model_runtime.links import CHANGE_LINKS, spread_of
from serving.batch.options import INTENSITY_BANDS, P_BINS, PROTOCOLS, RISK_LEVELS
from serving.batch.sites import OutcomeSums, SiteSums, bin_index, n_bins, observed_outcome, site_sums


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
    group_psq: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L, 3), squared probabilities
    group_change: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L,), expected change
    change_sum: float = 0.0  # expected change of the pain threshold (%-points), change models
    spread_sum: float = 0.0  # each person's spread of the change (%-points), change models
    outcome: OutcomeSums = field(default_factory=OutcomeSums)
    sites: dict[str, SiteSums] = field(default_factory=dict)
    problems_by_rule: Counter = field(default_factory=Counter)  # (field, rule) -> rows
    sample_contrib: list[np.ndarray] = field(default_factory=list)  # (n_s, K, F)
    sample_values: list[np.ndarray] = field(default_factory=list)  # (n_s, F), numbers and category codes
    sample_categories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> names of its codes

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
        self.change_sum += other.change_sum
        self.spread_sum += other.spread_sum
        for sums in ("group_n", "group_pred", "group_psum", "group_psq", "group_change"):
            mine = getattr(self, sums)
            for g, v in getattr(other, sums).items():
                mine[g] = mine[g] + v if g in mine else v.copy()
        self.outcome.merge(other.outcome)
        for key, site in other.sites.items():
            if key in self.sites:
                self.sites[key].merge(site)
            else:
                self.sites[key] = copy.deepcopy(site)
        self.problems_by_rule.update(other.problems_by_rule)
        self.sample_contrib += other.sample_contrib
        self.sample_values += other.sample_values
        for f, names in other.sample_categories.items():
            self.sample_categories.setdefault(f, names)


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


def expected_change(predictor, margins: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(expected change of the pain threshold in %-points, each person's spread of it) of
    every row, or None for a class-margin model."""
    if predictor.link not in CHANGE_LINKS:
        return None
    return margins[:, 0], spread_of(margins, predictor.link, predictor.sigma)


def add_predictions(agg: Aggregates, P: np.ndarray, risk: np.ndarray, valid: pd.DataFrame,
                    change: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """The prediction distribution: classes, risk levels, probability sums, sums of
    squares and histograms, overall and per pain condition, modality and protocol, and
    (`change`, from `expected_change`) the expected change and its spread."""
    pred = P.argmax(axis=1)
    K = len(RESPONSES)
    agg.pred_counts += np.bincount(pred, minlength=K)
    agg.risk_counts += np.bincount(risk, minlength=len(RISK_LEVELS))
    agg.p_sum += P.sum(axis=0)
    for k in range(K):
        agg.p_hist[k] += np.histogram(P[:, k], bins=P_BINS, range=(0.0, 1.0))[0]
    if change is not None:
        agg.change_sum += float(change[0].sum())
        agg.spread_sum += float(change[1].sum())
    for g, (codes, levels) in _group_codes(valid).items():
        ok = codes >= 0
        c = codes[ok]
        agg.group_n[g] = np.bincount(c, minlength=levels)
        agg.group_pred[g] = np.bincount(c * K + pred[ok], minlength=levels * K).reshape(levels, K)
        agg.group_psum[g] = np.stack([np.bincount(c, weights=P[ok, k], minlength=levels) for k in range(K)], axis=1)
        agg.group_psq[g] = np.stack([np.bincount(c, weights=np.square(P[ok, k]), minlength=levels)
                                     for k in range(K)], axis=1)
        if change is not None:
            agg.group_change[g] = np.bincount(c, weights=change[0][ok], minlength=levels)


def add_outcomes_and_sites(agg: Aggregates, predictor, valid: pd.DataFrame, bins: dict[str, np.ndarray],
                           P: np.ndarray, change: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Measured outcomes beside the predictions (when the file has them) and the sums per
    site (when it has a `site` column); `bins` as `add_input_drift` returns them."""
    expected = change[0] if change is not None else None
    observed = observed_outcome(valid, predictor.threshold_pct)
    if observed is not None and len(observed.y):
        agg.outcome.add(observed.y, P[observed.mask], observed.change,
                        expected[observed.mask] if expected is not None else None)
    agg.sites = site_sums(valid, P, expected, predictor, bins, observed)


def add_input_drift(agg: Aggregates, predictor, X: pd.DataFrame) -> dict[str, np.ndarray]:
    """Missing counts and reference-bin counts of every model input (`X` is the
    chunk's feature frame, transformed once for everything); each input's bin per row
    (-1: missing), which the sums per site count again."""
    ref = predictor.reference
    bins = {}
    for name in predictor.fields:
        col = X[name]
        agg.input_missing[name] = int(col.isna().sum())
        if name in ref:
            b = bin_index(ref[name], col.to_numpy(dtype="float64") if ref[name]["kind"] == "number" else col)
            agg.input_counts[name] = np.bincount(b[b >= 0], minlength=n_bins(ref[name]))
            bins[name] = b
    return bins


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
    """The beeswarm sample: its contributions, its numeric input values and the codes of
    its categories (missing: NaN; the names of the codes in `sample_categories`)."""
    if sample_contrib is None or not len(sample_contrib):
        return
    agg.sample_contrib.append(np.asarray(sample_contrib, dtype="float32"))
    vals = np.full((len(sample_contrib), len(predictor.fields)), np.nan)
    Xs = X.iloc[np.flatnonzero(sampled)]
    for j, f in enumerate(predictor.fields):
        if kind(f) == "number":
            vals[:, j] = Xs[f].to_numpy(dtype="float64")
        elif isinstance(Xs[f].dtype, pd.CategoricalDtype):
            codes = np.asarray(Xs[f].cat.codes, dtype="float64")
            vals[:, j] = np.where(codes < 0, np.nan, codes)
            agg.sample_categories[f] = tuple(str(c) for c in Xs[f].cat.categories)
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
