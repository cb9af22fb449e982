"""External validation of a registered model on a cohort with outcomes (`eih evaluate`):
discrimination, calibration in the large and slope, log-loss against the cohort's own class
prior, overall and per site and per pain condition, with 95 % bootstrap intervals (people
resampled), the coverage of the model's 80 % and 90 % prediction intervals (flagged where it
is more than `COVERAGE_TOLERANCE` from nominal), a calibration plot and an HTML report.

The class prior is the evaluated cohort's own class frequencies: a model that cannot beat it
adds nothing at this site, however well it did where it was developed.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.fields import RESPONSES
from training import metrics
from training.internal import summarize

GROUPS = ("site", "pain_condition")
MIN_GROUP = 30
COVERAGE_TOLERANCE = 0.05
"""A cohort where the intervals cover more than 5 points off nominal gets a flag: the model's
spread does not hold there, and its intervals should not be shown to clinicians until updated."""


def inside_intervals(predictor, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """{level: whether each person's measured change fell inside the model's interval}; {} for a
    model without intervals."""
    from data_contracts.labels import eih_pct

    conditions = [None if c != c else str(c) for c in df["pain_condition"].astype(object)]
    bounds = predictor.intervals(predictor.margins(df), conditions) or {}
    change = eih_pct(df).to_numpy(dtype="float64")
    return {level: (change >= b[:, 0]) & (change <= b[:, 1]) for level, b in bounds.items()}


def coverage_figures(inside: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """{"interval80_coverage": share, ...} of everyone (or of `mask`)."""
    return {f"interval{level}_coverage": float(v[mask].mean() if mask is not None else v.mean())
            for level, v in inside.items()}


def coverage_flags(overall: dict, groups: pd.DataFrame) -> list[str]:
    """One sentence per level and group (and overall) whose coverage is off nominal by more than
    `COVERAGE_TOLERANCE`."""
    rows = [("everyone", overall)] + [(f"{r['group']} {r['level']}", r) for r in groups.to_dict("records")]
    flags = []
    for who, figs in rows:
        for key, value in figs.items():
            if key.startswith("interval") and key.endswith("_coverage") and value == value:
                nominal = int(key[len("interval"):-len("_coverage")]) / 100
                if abs(value - nominal) > COVERAGE_TOLERANCE:
                    flags.append(f"{who}: the {nominal:.0%} intervals held {value:.0%} of measured changes "
                                 f"(more than {COVERAGE_TOLERANCE:.0%} off nominal)")
    return flags


def _citl(y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """Calibration in the large per class: observed share - mean predicted probability."""
    return {f"citl_{c}": float(np.mean(y == k) - P[:, k].mean()) for k, c in enumerate(RESPONSES)}


def figures(y: np.ndarray, P: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Point figures and 95 % intervals of one group of people: log-loss, the cohort-prior
    log-loss and the paired difference, macro AUROC, ECE, calibration slopes and calibration in
    the large (observed - predicted) of each class."""
    prior = np.bincount(y, minlength=3) / len(y)
    s = summarize(y, P[None], {"null": np.tile(prior, (1, len(y), 1))}, n_boot, seed)
    out = {"n": float(len(y))}
    for k, v in s.point.items():
        out[k] = v
        if k in s.intervals:
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = s.intervals[k]
    slopes, intercepts = metrics.calibration_slope_intercept(y, P)
    for k, c in enumerate(RESPONSES):
        out[f"calibration_slope_{c}"], out[f"calibration_intercept_{c}"] = float(slopes[k]), float(intercepts[k])
    out.update(_citl(y, P))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        draws.append(_citl(y[idx], P[idx]))
    frame = pd.DataFrame(draws)
    for k in frame.columns:
        out[f"{k}_ci_low"], out[f"{k}_ci_high"] = float(frame[k].quantile(0.025)), float(frame[k].quantile(0.975))
    return out


def by_group(df: pd.DataFrame, y: np.ndarray, P: np.ndarray, n_boot: int, seed: int,
             inside: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """`figures` (and the intervals' coverage) of every site and every pain condition with at
    least `MIN_GROUP` people, all three classes."""
    rows = []
    for g in GROUPS:
        if g not in df.columns or df[g].isna().all():
            continue
        values = df[g].astype(str).to_numpy()
        for level in sorted(set(values)):
            m = values == level
            if m.sum() < MIN_GROUP or len(np.unique(y[m])) < 3:
                continue
            rows.append({"group": g, "level": level, **figures(y[m], P[m], max(50, n_boot // 2), seed),
                         **coverage_figures(inside or {}, m)})
    return pd.DataFrame(rows)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="calibration" src="data:image/png;base64,{data}" style="max-width:720px">'


def _table(d: dict, keys: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{d[k]:.3f}</td><td>{d.get(k + '_ci_low', np.nan):.3f} to "
        f"{d.get(k + '_ci_high', np.nan):.3f}</td></tr>" for k in keys if k in d)
    return f"<table border=1 cellpadding=4><tr><th>figure</th><th>estimate</th><th>95 % CI</th></tr>{rows}</table>"


HEADLINE = ["log_loss", "null_log_loss", "paired_log_loss_diff_vs_null", "auroc_macro", "ece",
            "calibration_slope_hyperalgesia", "calibration_slope_mean", "citl_hypoalgesia", "citl_no_change",
            "citl_hyperalgesia", "interval80_coverage", "interval90_coverage"]


def html_report(title: str, overall: dict, groups: pd.DataFrame, plot: Path, model: str) -> str:
    """The report as one self-contained HTML page (the plot embedded)."""
    cols = ["group", "level", "n", "log_loss", "null_log_loss", "paired_log_loss_diff_vs_null",
            "paired_log_loss_diff_vs_null_ci_high", "auroc_macro", "calibration_slope_hyperalgesia", "citl_hyperalgesia",
            "interval80_coverage", "interval90_coverage"]
    flags = coverage_flags(overall, groups)
    cover = ("<p><b>Prediction intervals off nominal here:</b></p><ul>"
             + "".join(f"<li>{html.escape(f)}</li>" for f in flags) + "</ul>") if flags else \
        "<p>The 80 % and 90 % prediction intervals cover within 5 points of nominal everywhere reported.</p>"
    gtable = groups[[c for c in cols if c in groups]].round(3).to_html(index=False) if len(groups) else "<p>none</p>"
    verdict = ("beats" if overall["paired_log_loss_diff_vs_null_ci_high"] < 0 else "does not clearly beat")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Model: {html.escape(model)}; {int(overall['n'])} people with an outcome."
            f" The model {verdict} this cohort's own class prior (upper 95 % bound of the paired log-loss difference"
            f" {overall['paired_log_loss_diff_vs_null_ci_high']:+.3f}).</p>"
            f"<h2>Overall</h2>{_table(overall, HEADLINE)}{cover}"
            "<p>citl = calibration in the large, observed share - mean predicted probability (0 ideal);"
            " calibration slope 1 ideal (below 1: predictions too extreme for this cohort).</p>"
            f"<h2>Calibration</h2>{_img(plot)}<h2>Per site and per pain condition</h2>{gtable}"
            "<p>Groups with fewer than 30 people or a missing class are left out.</p></body></html>")
