"""Subgroup calibration: where pooled checks hide a model's misses. For each pain condition
x exercise modality x intensity band of the test split: people, mean predicted vs observed
P(hyperalgesia) and P(hypoalgesia) with bootstrap intervals of the difference, and the
calibration slope of the hyperalgesia probability. The fibromyalgia high-load group
(HIIT, isometric or >= 80 % intensity), where hyperalgesia matters most, is singled out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HYPO, HYPER = 0, 2
INTENSITY_BANDS = ((0.0, 50.0, "<50 %"), (50.0, 80.0, "50-79 %"), (80.0, np.inf, ">=80 %"))
MIN_N = 20  # below this a cell is listed with its count only
HIGH_LOAD = "fibromyalgia, high load (HIIT, isometric or >= 80 %)"


def intensity_band(intensity: np.ndarray) -> np.ndarray:
    """The intensity band label of each value."""
    out = np.empty(len(intensity), dtype=object)
    for lo, hi, name in INTENSITY_BANDS:
        out[(intensity >= lo) & (intensity < hi)] = name
    return out


def fibromyalgia_high_load(df: pd.DataFrame) -> np.ndarray:
    """People with fibromyalgia under HIIT, isometric or >= 80 % intensity."""
    load = df["exercise_modality"].isin(["hiit", "isometric"]).to_numpy() | (
        df["exercise_intensity_pct"].to_numpy(dtype="float64") >= 80)
    return (df["pain_condition"] == "fibromyalgia").to_numpy() & load


def calibration_slope(event: np.ndarray, p: np.ndarray) -> float:
    """Slope of a logistic regression of the event on logit(p) (1 = perfectly calibrated spread)."""
    from sklearn.linear_model import LogisticRegression

    if event.min() == event.max():
        return float("nan")
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))[:, None]
    return float(LogisticRegression(C=1e6, max_iter=1000).fit(logit, event).coef_[0, 0])


def _cell(y: np.ndarray, P: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict:
    """Predicted vs observed in one group, with bootstrap 95 % intervals of observed - predicted."""
    n = len(y)
    row = {"n": n, "predicted_hyperalgesia": float(P[:, HYPER].mean()), "observed_hyperalgesia": float(np.mean(y == HYPER)),
           "predicted_hypoalgesia": float(P[:, HYPO].mean()), "observed_hypoalgesia": float(np.mean(y == HYPO)),
           "slope_hyperalgesia": calibration_slope((y == HYPER).astype(int), P[:, HYPER])}
    idx = rng.integers(0, n, size=(n_boot, n))
    for k, name in ((HYPER, "hyperalgesia"), (HYPO, "hypoalgesia")):
        diff = (y[idx] == k).mean(axis=1) - P[idx, k].mean(axis=1)
        row[f"gap_{name}_ci_low"], row[f"gap_{name}_ci_high"] = (float(v) for v in np.percentile(diff, [2.5, 97.5]))
    return row


def subgroup_calibration(y: np.ndarray, P: np.ndarray, df: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                         oracle_P: np.ndarray | None = None) -> pd.DataFrame:
    """One row per condition x modality x intensity band (and the fibromyalgia high-load
    group first), with the oracle's mean P(hyperalgesia) when it is given."""
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame({"pain_condition": df["pain_condition"].astype(str).to_numpy(),
                         "exercise_modality": df["exercise_modality"].astype(str).to_numpy(),
                         "intensity_band": intensity_band(df["exercise_intensity_pct"].to_numpy(dtype="float64"))})
    groups = [(HIGH_LOAD, "", "", fibromyalgia_high_load(df))]
    for (c, m, b), rows in keys.groupby(["pain_condition", "exercise_modality", "intensity_band"], sort=True).indices.items():
        mask = np.zeros(len(df), dtype=bool)
        mask[rows] = True
        groups.append((c, m, b, mask))
    out = []
    for c, m, b, mask in groups:
        row = {"pain_condition": c, "exercise_modality": m, "intensity_band": b}
        n = int(mask.sum())
        row.update(_cell(y[mask], P[mask], rng, n_boot) if n >= MIN_N else {"n": n})
        if oracle_P is not None and n:
            row["oracle_hyperalgesia"] = float(oracle_P[mask, HYPER].mean())
        out.append(row)
    return pd.DataFrame(out)


AGE_BANDS = ((18, 40, "18-39"), (40, 60, "40-59"), (60, 101, "60-100"))


def _levels(df: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(group, level, mask) for sex, age band, pain condition, modality and site."""
    out = []
    for col in ("sex", "pain_condition", "exercise_modality"):
        values = df[col].astype(str).to_numpy()
        out += [(col, level, values == level) for level in sorted(set(values))]
    age = df["age_years"].to_numpy(dtype="float64")
    out += [("age_band", name, (age >= lo) & (age < hi)) for lo, hi, name in AGE_BANDS]
    if "site" in df.columns and df["site"].nunique() > 1:
        sites = df["site"].astype(str).to_numpy()
        out += [("site", s, sites == s) for s in sorted(set(sites))]
    return out


def subgroup_metrics(y: np.ndarray, P: np.ndarray, df: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Test metrics per sex, age band, pain condition, modality and site (when there are several),
    with 95 % bootstrap intervals of the log-loss; groups under 30 people: counts only."""
    from training import metrics

    rng = np.random.default_rng(seed)
    rows = []
    for group, level, m in _levels(df):
        n = int(m.sum())
        if n < 30:
            rows.append({"group": group, "level": level, "n": n})
            continue
        pm = metrics.point_metrics(y[m], P[m])
        ym, Pm = y[m], P[m]
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = [metrics.log_loss(ym[i], Pm[i]) for i in idx]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        rows.append({"group": group, "level": level, "n": n, "log_loss": pm["log_loss"], "log_loss_ci_low": float(lo),
                     "log_loss_ci_high": float(hi), "auroc_macro": pm["auroc_macro"], "brier": pm["brier"],
                     "ece": pm["ece"], "balanced_accuracy": pm["balanced_accuracy"],
                     "observed_hyperalgesia": float(np.mean(ym == HYPER)), "predicted_hyperalgesia": float(Pm[:, HYPER].mean())})
    return pd.DataFrame(rows)
