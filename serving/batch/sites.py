"""Sums per recruiting site and against measured outcomes, for the cohort report.

A cohort file may carry a `site` column and, when the outcome was measured, the pressure
pain threshold after the bout (`ppt_post_kpa`). Per site the job keeps the number of
people, probability sums and sums of squares, the most likely responses, the expected
change and the reference-bin counts of every model input (the site's drift); for the rows
with a measured outcome it keeps the observed responses beside the predictions for the
same rows (calibration). All of it is sums, merged chunk by chunk like `Aggregates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_contracts.fields import RESPONSES

NO_SITE = ""
"""The key of the rows whose site is not given."""
_K = len(RESPONSES)


def _zeros(n: int, dtype: str = "float64"):
    """A dataclass field that starts as a fresh vector of zeros."""
    return field(default_factory=lambda: np.zeros(n, dtype=dtype))


@dataclass
class OutcomeSums:
    """Rows with a measured outcome: observed responses and change beside the model's
    probabilities and expected change for the same rows."""

    n: int = 0
    observed: np.ndarray = _zeros(_K, dtype="int64")
    p_sum: np.ndarray = _zeros(_K)
    log_loss_sum: float = 0.0
    observed_change_sum: float = 0.0
    observed_change_sq: float = 0.0
    expected_change_sum: float = 0.0

    def add(self, y: np.ndarray, P: np.ndarray, observed_change: np.ndarray, expected: np.ndarray | None) -> None:
        """Add rows: observed class codes `y`, probabilities `P` (n, 3), the measured change
        in % and the model's expected change (None for a class-margin model)."""
        self.n += len(y)
        self.observed += np.bincount(y, minlength=_K)
        self.p_sum += P.sum(axis=0)
        self.log_loss_sum += float(-np.log(np.clip(P[np.arange(len(y)), y], 1e-15, 1.0)).sum())
        self.observed_change_sum += float(observed_change.sum())
        self.observed_change_sq += float(np.square(observed_change).sum())
        if expected is not None:
            self.expected_change_sum += float(expected.sum())

    def merge(self, other: OutcomeSums) -> None:
        """Add `other` into these sums."""
        self.n += other.n
        self.observed += other.observed
        self.p_sum += other.p_sum
        self.log_loss_sum += other.log_loss_sum
        self.observed_change_sum += other.observed_change_sum
        self.observed_change_sq += other.observed_change_sq
        self.expected_change_sum += other.expected_change_sum


@dataclass
class SiteSums:
    """One site's people, predictions, input bin counts and measured outcomes."""

    n: int = 0
    pred: np.ndarray = _zeros(_K, dtype="int64")
    p_sum: np.ndarray = _zeros(_K)
    p_sq: np.ndarray = _zeros(_K)
    change_sum: float = 0.0
    input_counts: dict[str, np.ndarray] = field(default_factory=dict)
    outcome: OutcomeSums = field(default_factory=OutcomeSums)

    def merge(self, other: SiteSums) -> None:
        """Add `other` (the same site in a later chunk) into these sums."""
        self.n += other.n
        self.pred += other.pred
        self.p_sum += other.p_sum
        self.p_sq += other.p_sq
        self.change_sum += other.change_sum
        for name, c in other.input_counts.items():
            self.input_counts[name] = self.input_counts[name] + c if name in self.input_counts else c.copy()
        self.outcome.merge(other.outcome)


@dataclass
class Observed:
    """The chunk's rows with a measured outcome: a mask over the valid rows, their class
    codes and their measured change in %."""

    mask: np.ndarray
    y: np.ndarray
    change: np.ndarray


def observed_outcome(valid: pd.DataFrame, threshold_pct: float) -> Observed | None:
    """The measured outcome of the rows that have one (None when no row has it)."""
    from data_contracts.labels import eih_pct, response_codes

    if "ppt_post_kpa" not in valid.columns or not valid["ppt_post_kpa"].notna().any():
        return None
    change = eih_pct(valid).to_numpy(dtype="float64")
    mask = ~np.isnan(change)
    return Observed(mask, response_codes(change[mask], threshold_pct).astype("int64"), change[mask])


def bin_index(ref: dict, values) -> np.ndarray:
    """Each value's bin in a training reference (as `features.reference.bin_counts`
    counts them), -1 for a missing value or an unknown category."""
    if ref["kind"] == "number":
        v = np.asarray(values, dtype="float64")
        idx = np.searchsorted(np.asarray(ref["edges"]), v, side="right")
        return np.where(np.isnan(v), -1, idx)
    return np.asarray(pd.Categorical(values, categories=ref["categories"]).codes, dtype="int64")


def n_bins(ref: dict) -> int:
    """The number of bins of a training reference."""
    return len(ref["edges"]) + 1 if ref["kind"] == "number" else len(ref["categories"])


def _site_input_counts(codes: np.ndarray, n_sites: int, predictor, bins: dict[str, np.ndarray]
                       ) -> list[dict[str, np.ndarray]]:
    """Per site (by code), the reference-bin counts of every model input."""
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n_sites)]
    for name, b in bins.items():
        n_bins_ = n_bins(predictor.reference[name])
        ok = b >= 0
        counts = np.bincount(codes[ok] * n_bins_ + b[ok], minlength=n_sites * n_bins_).reshape(n_sites, n_bins_)
        for s in range(n_sites):
            out[s][name] = counts[s].copy()
    return out


def site_sums(valid: pd.DataFrame, P: np.ndarray, expected: np.ndarray | None, predictor,
              bins: dict[str, np.ndarray], observed: Observed | None) -> dict[str, SiteSums]:
    """The chunk's sums per site (key `NO_SITE` for rows without one); empty without a
    `site` column. `bins`: each model input's reference bin per row (`bin_index`)."""
    if "site" not in valid.columns:
        return {}
    codes, names = pd.factorize(valid["site"], use_na_sentinel=True)
    codes = np.asarray(codes, dtype="int64")
    keys = [str(s) for s in names]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(keys), codes)
        keys.append(NO_SITE)
    n_sites = len(keys)
    n = np.bincount(codes, minlength=n_sites)
    pred = np.bincount(codes * _K + P.argmax(axis=1), minlength=n_sites * _K).reshape(n_sites, _K)
    p_sum = np.stack([np.bincount(codes, weights=P[:, k], minlength=n_sites) for k in range(_K)], axis=1)
    p_sq = np.stack([np.bincount(codes, weights=np.square(P[:, k]), minlength=n_sites) for k in range(_K)], axis=1)
    change = np.bincount(codes, weights=expected, minlength=n_sites) if expected is not None else np.zeros(n_sites)
    inputs = _site_input_counts(codes, n_sites, predictor, bins)
    out = {}
    for s, key in enumerate(keys):
        out[key] = SiteSums(int(n[s]), pred[s].copy(), p_sum[s].copy(), p_sq[s].copy(), float(change[s]), inputs[s])
    if observed is not None:
        oc = codes[observed.mask]
        exp_o = expected[observed.mask] if expected is not None else None
        for s, key in enumerate(keys):
            m = oc == s
            if m.any():
                out[key].outcome.add(observed.y[m], P[observed.mask][m], observed.change[m],
                                     exp_o[m] if exp_o is not None else None)
    return out
