"""The cohort report's beeswarm: how each field moves one model output, drawn from the
random sample of scored rows as unlabelled points. A number's points are coloured by the
value's rank within the sample (low blue to high red), a category's points by category,
with a legend naming every category shown; missing values are grey."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.report_figures import plt_, png
from serving.report_html import esc
from serving.report_words import effect_axis, effect_values, field_name, is_change_model, output_name

CATEGORY_COLORS = ("#009E73", "#E69F00", "#CC79A7", "#000000", "#56B4E9", "#F0E442", "#D55E00", "#0072B2")
"""Colour-blind safe (Okabe-Ito), apart from the blue-to-red of the numbers."""
MISSING = "#aaaaaa"


def swarm_offsets(x: np.ndarray, n_bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread points of similar x (a beeswarm, deterministic)."""
    if len(x) == 0:
        return np.zeros(0)
    lo, hi = np.nanmin(x), np.nanmax(x)
    b = np.zeros(len(x), dtype=int) if hi <= lo else np.minimum(((x - lo) / (hi - lo) * n_bins).astype(int), n_bins - 1)
    order = np.lexsort((x, b))
    rank = np.empty(len(x), dtype=int)
    counts = np.bincount(b, minlength=n_bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(x)) - starts[b[order]]
    side = np.where(rank % 2 == 0, 1, -1) * ((rank + 1) // 2)
    peak = max(counts.max(), 1)
    return side / peak * width * 2


def _ranks(V: np.ndarray, categorical: dict[int, tuple[str, ...]]) -> np.ndarray:
    """Each numeric field's values as ranks in [0, 1] within the sample (NaN: missing or a category)."""
    col = np.full(V.shape, np.nan)
    for j in range(V.shape[1]):
        v = V[:, j]
        ok = ~np.isnan(v)
        if j not in categorical and ok.sum() > 1:
            col[ok, j] = pd.Series(v[ok]).rank(pct=True).to_numpy()
    return col


def _panel(ax, X: np.ndarray, V: np.ndarray, ranks: np.ndarray, categorical: dict, top: np.ndarray, cmap) -> None:
    """One output's rows of points: y = field, x = effect, colour = value or category."""
    for y, j in enumerate(top[::-1]):
        x = X[:, j]
        off = swarm_offsets(x)
        if j in categorical:
            codes = V[:, j]
            grey = np.isnan(codes)
            colors = [CATEGORY_COLORS[int(c) % len(CATEGORY_COLORS)] for c in codes[~grey]]
            ax.scatter(x[~grey], y + off[~grey], s=4, c=colors, alpha=0.8, linewidths=0, rasterized=True)
        else:
            c = ranks[:, j]
            grey = np.isnan(c)
            ax.scatter(x[~grey], y + off[~grey], s=4, c=c[~grey], cmap=cmap, vmin=0, vmax=1, alpha=0.8, linewidths=0,
                       rasterized=True)
        ax.scatter(x[grey], y + off[grey], s=4, color=MISSING, alpha=0.7, linewidths=0, rasterized=True)


def legend(fields: tuple[str, ...], shown: set[int], categorical: dict[int, tuple[str, ...]]) -> str:
    """The HTML legend of the colours: numbers, missing values and each category shown."""
    rows = ["<div><b>Numbers</b>: the value within the sample, low <span class='grad'></span> high;"
            f"<span class='sw' style='background:{MISSING}'></span>not measured</div>"]
    for j in sorted(shown & set(categorical), key=lambda j: field_name(fields[j])):
        swatches = "".join(f"<span class='sw' style='background:{CATEGORY_COLORS[i % len(CATEGORY_COLORS)]}'></span>"
                           f"{esc(name.replace('_', ' '))}" for i, name in enumerate(categorical[j]))
        rows.append(f"<div><b>{esc(field_name(fields[j]))}</b>:{swatches}</div>")
    return "<div class='legend swarm-legend'>" + "".join(rows) + "</div>"


def fig_beeswarm(d, outputs: list[int], max_fields: int = 12) -> tuple[str, str, int]:
    """(image, legend, rows in the sample) of one beeswarm panel per output in `outputs`:
    x = the field's effect on that output (a class margin's relative to the other
    responses), in the unit `effect_axis` names."""
    from serving.explain import centered

    agg = d.agg
    if not agg.sample_contrib:
        return "", "", 0
    C = np.concatenate(agg.sample_contrib, axis=0).astype("float64")  # (n, K, F)
    if not is_change_model(agg.outputs):
        C = centered(C)
    V = np.concatenate(agg.sample_values, axis=0)
    categorical = {agg.fields.index(f): names for f, names in agg.sample_categories.items() if f in agg.fields}
    ranks = _ranks(V, categorical)
    plt = plt_()
    fig, axes = plt.subplots(1, len(outputs), figsize=(5.6 * len(outputs) + 1.0, 0.42 * max_fields + 1.2),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("coolwarm")
    shown: set[int] = set()
    for a, k in enumerate(outputs):
        o = agg.outputs[k]
        X = effect_values(o, C[:, k, :])
        top = np.argsort(-np.abs(X).mean(axis=0), kind="stable")[:max_fields]
        shown.update(int(j) for j in top)
        ax = axes[0, a]
        _panel(ax, X, V, ranks, categorical, top, cmap)
        ax.set_yticks(range(len(top)))
        ax.set_yticklabels([field_name(agg.fields[j]) for j in top[::-1]])
        ax.axvline(0, color="#555", linewidth=0.6)
        ax.set_xlabel(effect_axis(o))
        ax.set_title(output_name(o)[0].upper() + output_name(o)[1:])
    return png(fig, "beeswarm of the fields' effects"), legend(agg.fields, shown, categorical), C.shape[0]
