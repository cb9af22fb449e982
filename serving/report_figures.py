"""The cohort report's figures, from aggregates: the headline (expected share of each
response, then the most likely response and the risk levels as secondary views),
expected shares per group and the main drivers of an output as bars drawn in HTML (quick
to build, text a reader can search); the probability histograms and the drift of every
field drawn with matplotlib and embedded as PNG."""

from __future__ import annotations

import base64
import io

import numpy as np

from features.reference import PSI_FLAG
from model_runtime.links import SPREAD_OUTPUT
from serving.report_html import bar_chart, stacked_chart
from serving.report_words import COLORS, RISK_COLORS, effect_unit, field_name, output_name, response


def plt_():
    """matplotlib's pyplot on the Agg backend, with the report's style."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def png(fig, alt: str) -> str:
    """The figure as an inline <img> (closed afterwards)."""
    plt = plt_()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def fig_headline(d) -> str:
    """Expected share of each response (the mean probability), beside the secondary views:
    the most likely response person by person, and the hyperalgesia risk levels (bars in HTML)."""
    agg = d.agg
    n = max(int(agg.pred_counts.sum()), 1)
    names = [response(r) for r in d.responses]
    colors = [COLORS.get(r, "#888") for r in d.responses]
    expected = bar_chart("Expected share of each response (mean probability)",
                         list(zip(names, agg.p_sum / n * 100, colors, strict=True)), 100)
    likely = bar_chart("Secondary: most likely response, person by person",
                       list(zip(names, agg.pred_counts / n * 100, colors, strict=True)), 100, faded=True)
    risk = bar_chart("Hyperalgesia risk level", list(zip(d.risk_levels, agg.risk_counts / n * 100,
                                                         [RISK_COLORS.get(r, "#888") for r in d.risk_levels],
                                                         strict=True)), 100)
    return f"<div class='trio'><div class='main'>{expected}</div><div>{likely}</div><div>{risk}</div></div>"


def fig_histograms(d) -> str:
    """How the probability of each response is spread over the scored people."""
    plt = plt_()
    agg = d.agg
    edges = np.linspace(0, 1, d.p_bins + 1)
    fig, axes = plt.subplots(1, len(d.responses), figsize=(8, 1.9), sharey=True, layout="constrained")
    n = max(int(agg.pred_counts.sum()), 1)
    for k, r in enumerate(d.responses):
        ax = axes[k]
        ax.bar(edges[:-1], agg.p_hist[k] / n * 100, width=np.diff(edges), align="edge", color=COLORS.get(r, "#888"),
               edgecolor="white", linewidth=0.5)
        ax.set_title(f"probability of {response(r)}")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
    axes[0].set_ylabel("% of scored people")
    return png(fig, "distribution of the probabilities")


def fig_groups(d, rows, title: str) -> str:
    """Stacked expected shares (mean probabilities) per group, small groups marked (HTML)."""
    rows = [r for r in rows if not r.hidden]
    if not rows:
        return ""
    legend = [(response(r), COLORS.get(r, "#888")) for r in d.responses]
    return stacked_chart(title, [(f"{r.name}  (n={r.n:,}{', small group' if r.small else ''})",
                                  [float(v) * 100 for v in r.shares], r.small) for r in rows], legend)


def fig_drivers(d, ranked: list[tuple[str, float]], k: int, top: int = 15) -> str:
    """The fields with the largest mean |effect| on output k (HTML bars)."""
    if not ranked:
        return ""
    o = d.agg.outputs[k]
    t = ranked[:top]
    fmt = "{:.2f}" if o != SPREAD_OUTPUT else "{:.1f} %"
    return bar_chart(f"Mean size of each field's effect, in {effect_unit(o)}",
                     [(field_name(f), v, COLORS.get(o, "#6d597a")) for f, v in t], max(t[0][1], 1e-12), fmt)


def fig_class_drivers(d, table: dict[str, dict[str, float]], order: list[str], top: int = 12) -> str:
    """A class-margin model's drivers: mean |effect| on each response's chance, one chart each."""
    charts = []
    for o in d.agg.outputs:
        t = sorted(order, key=lambda f: -table[f][o])[:top]
        charts.append(bar_chart(f"{output_name(o)}: mean size of the effect (log-odds)",
                                [(field_name(f), table[f][o], COLORS.get(o, "#6d597a")) for f in t],
                                max(table[t[0]][o], 1e-12), "{:.2f}"))
    return "<div class='trio'>" + "".join(f"<div>{c}</div>" for c in charts) + "</div>"


def fig_drift(d, fields: list[str], values_psi, effect_psi) -> str:
    """PSI of each field's values and of its effect on the predictions, against training."""
    plt = plt_()
    fields = fields[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(fields) + 1.0))
    y = np.arange(len(fields))
    ax.barh(y + 0.2, values_psi.reindex(fields).fillna(0).to_numpy(), height=0.4, color="#457b9d",
            label="the field's values")
    ax.barh(y - 0.2, effect_psi.reindex(fields).fillna(0).to_numpy(), height=0.4, color="#e9c46a",
            label="the field's effect on the predictions")
    ax.axvline(PSI_FLAG, color="#d62828", linestyle="--", linewidth=1, label=f"flag at {PSI_FLAG}")
    ax.set_yticks(y)
    ax.set_yticklabels([field_name(f) for f in fields])
    ax.set_xlabel("population stability index against the model's training data")
    ax.legend(frameon=False, loc="lower right")
    ax.set_title("Drift")
    return png(fig, "drift against the training data")
