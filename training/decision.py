"""Decision curves and the risk cut-offs they earn.

Two decisions follow from a prediction: "adapt the protocol to avoid a flare" (act when
P(hyperalgesia) >= a threshold) and "expect benefit" (act when P(hypoalgesia) >= a
threshold). The net benefit of acting at threshold probability pt is
TP/n - FP/n x pt / (1 - pt) (Vickers & Elkin 2006): true positives gained, false positives
charged at the odds the threshold implies. It is compared with acting for everyone
(treat-all) and for no one (treat-none, 0).

The cut-offs of the hyperalgesia risk levels are chosen on out-of-fold predictions of the
training split (never on the test split that reports them), from two facts:
- the noise floor: the P(hyperalgesia) a person gets from measurement noise alone, with no
  true effect of exercise (expected change 0, the median spread): a "risk" at the floor is
  not a signal;
- the decision curve: a cut-off is only worth having where acting on the model beats both
  acting for everyone and for no one.
"moderate" is the first threshold at least 5 points above the floor where the model's net
benefit beats both defaults; "high" the first at least 15 points above it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

THRESHOLDS = np.round(np.arange(0.02, 0.81, 0.01), 2)
MODERATE_ABOVE_FLOOR, HIGH_ABOVE_FLOOR = 0.05, 0.15
MIN_GAIN = 0.001  # net benefit over the better default, per person
DECISIONS = {"adapt": 2, "expect_benefit": 0}  # decision -> the class it acts on


def net_benefit(event: np.ndarray, p: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """Net benefit of acting when p >= pt, for each threshold. `event` is 0/1 or, for an
    expected curve, the probability of the event."""
    event = np.asarray(event, dtype="float64")
    act = np.asarray(p)[None, :] >= thresholds[:, None]
    n = len(event)
    tp = (act * event[None, :]).sum(axis=1) / n
    fp = (act * (1.0 - event[None, :])).sum(axis=1) / n
    return tp - fp * thresholds / (1.0 - thresholds)


def treat_all(event: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """Net benefit of acting for everyone."""
    prev = float(np.mean(event))
    return prev - (1.0 - prev) * thresholds / (1.0 - thresholds)


def curves(y: np.ndarray, P: np.ndarray, groups: pd.Series | None = None) -> pd.DataFrame:
    """Long table: decision, group ("all" or a pain condition), threshold, model, treat_all, treat_none."""
    rows = []
    sets = [("all", np.ones(len(y), dtype=bool))]
    if groups is not None:
        g = groups.astype(str).to_numpy()
        sets += [(name, g == name) for name in sorted(set(g))]
    for decision, k in DECISIONS.items():
        for name, m in sets:
            if m.sum() < 30:
                continue
            ev = (y[m] == k).astype("float64")
            rows.append(pd.DataFrame({"decision": decision, "group": name, "threshold": THRESHOLDS,
                                      "model": net_benefit(ev, P[m, k]), "treat_all": treat_all(ev), "treat_none": 0.0}))
    return pd.concat(rows, ignore_index=True)


def noise_floor(threshold_pct: float, spread: np.ndarray) -> float:
    """P(hyperalgesia) from measurement noise alone: expected change 0 with the median spread."""
    return float(ndtr(-threshold_pct / float(np.median(spread))))


def choose_cutoffs(y: np.ndarray, p_hyper: np.ndarray, floor: float, default: tuple[float, float]
                   ) -> tuple[dict[str, float], str]:
    """The risk cut-offs {"moderate", "high"} and the reason, in words."""
    ev = (y == DECISIONS["adapt"]).astype("float64")
    gain = net_benefit(ev, p_hyper) - np.maximum(treat_all(ev), 0.0)
    useful = THRESHOLDS[gain >= MIN_GAIN]
    mod = useful[useful >= floor + MODERATE_ABOVE_FLOOR - 1e-9]
    high = useful[useful >= floor + HIGH_ABOVE_FLOOR - 1e-9]
    base = (f"measurement noise alone gives P(hyperalgesia) = {floor:.2f} (expected change 0, median spread);"
            " cut-offs come from out-of-fold decision curves of 'adapt the protocol' on the training split")
    if len(mod) and len(high):
        cut = {"moderate": float(mod[0]), "high": float(high[0])}
        return cut, (f"{base}: moderate = first threshold >= floor + {MODERATE_ABOVE_FLOOR:.2f} and high = first"
                     f" >= floor + {HIGH_ABOVE_FLOOR:.2f} where acting on the model beats adapting everyone's"
                     " protocol and no one's")
    cut = {"moderate": max(default[0], round(floor + MODERATE_ABOVE_FLOOR, 2)),
           "high": max(default[1], round(floor + HIGH_ABOVE_FLOOR, 2))}
    return cut, (f"{base}: the model beats both defaults at no threshold far enough above the floor, so the"
                 " cut-offs sit at the floor + 0.05 / + 0.15 (or the configured defaults if higher) and carry"
                 " little decision value")
