"""What a model learns about its own uncertainty, from out-of-fold predictions of the
training split: the conformal quantiles of its prediction intervals and the risk
cut-offs earned by decision curves; and how both hold on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from model_runtime.intervals import fit_conformal
from model_runtime.links import CHANGE_LINKS, spread_of
from training import decision
from training.config import TrainConfig


@dataclass
class Uncertainty:
    """The conformal calibration, the risk cut-offs with their reason, and the noise floor."""

    conformal: dict
    cutoffs: dict[str, float]
    reason: str
    noise_floor: float | None


def calibrate_uncertainty(y: np.ndarray, measured: np.ndarray, oof_raw: np.ndarray, cal, link: str,
                          conditions: pd.Series, cfg: TrainConfig) -> Uncertainty:
    """From the training split's out-of-fold raw margins under calibration `cal`: conformal
    quantiles (change models only) and the risk cut-offs."""
    default = (cfg.risk_moderate, cfg.risk_high)
    t = cfg.label_threshold_pct
    if link not in CHANGE_LINKS:
        return Uncertainty({}, {"moderate": default[0], "high": default[1]},
                           "configured cut-offs (a class-margin model has no noise floor of its own)", None)
    margins = np.asarray(oof_raw) / cal.temperature + cal.bias
    spread = spread_of(margins, link, cal.sigma)
    conformal = fit_conformal(measured, margins[:, 0], spread, conditions.astype(str).to_numpy())
    floor = decision.noise_floor(t, spread)
    P = cal.proba(oof_raw, link, t)
    cut, reason = decision.choose_cutoffs(y, P[:, 2], floor, default)
    return Uncertainty(conformal, cut, reason, floor)


def interval_metrics(measured: np.ndarray, intervals: dict[str, np.ndarray] | None,
                     conditions: pd.Series, oracle_sd: np.ndarray | None = None) -> dict[str, float]:
    """Coverage and median width of each interval level, overall and per pain condition."""
    if intervals is None:
        return {}
    out = {}
    cond = conditions.astype(str).to_numpy()
    for level, iv in intervals.items():
        inside = (measured >= iv[:, 0]) & (measured <= iv[:, 1])
        out[f"test_interval{level}_coverage"] = float(inside.mean())
        out[f"test_interval{level}_median_width"] = float(np.median(iv[:, 1] - iv[:, 0]))
        for name in sorted(set(cond)):
            m = cond == name
            out[f"test_interval{level}_coverage__{name}"] = float(inside[m].mean())
    return out


def risk_band_metrics(P: np.ndarray, risk: np.ndarray, conditions: pd.Series) -> dict[str, float]:
    """Shares rated moderate or high, overall and among pain-free people (a signal check:
    pain-free people rarely flare)."""
    flagged = np.isin(risk, ["moderate", "high"])
    free = (conditions.astype(str) == "pain_free").to_numpy()
    out = {"test_share_moderate_or_high": float(flagged.mean())}
    if free.any():
        out["test_pain_free_moderate_or_high"] = float(flagged[free].mean())
    return out
