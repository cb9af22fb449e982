"""The cohort report of a batch: one self-contained HTML page (inline CSS, figures as
embedded PNG) that a researcher can show a trial committee.

It shows aggregates only: counts, predicted response by pain condition and by exercise
protocol, the main drivers across the cohort (mean |contribution| and a beeswarm of a
random sample of rows, drawn as points without any value printed), drift against the
model's training reference, and the rows read, scored and rejected. Built from
`serving.batch.Aggregates`; never from the records themselves.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from features.reference import PSI_FLAG
from model_runtime.links import ORDINAL_OUTPUT

COLORS = {"hypoalgesia": "#2a9d8f", "no_change": "#b0b0b0", "hyperalgesia": "#e76f51"}
RISK_COLORS = {"low": "#8ab17d", "moderate": "#e9c46a", "high": "#e76f51"}
TOWARD = {"hypoalgesia": "toward hypoalgesia", "no_change": "toward no change", "hyperalgesia": "toward hyperalgesia",
          ORDINAL_OUTPUT: "on the expected change (right = toward hypoalgesia)"}


def _units(outputs) -> str:
    """Units of the model's margins: %-points of the expected change (ordinal model) or log-odds."""
    return "%-points of expected change" if tuple(outputs) == (ORDINAL_OUTPUT,) else "log-odds"


@dataclass
class ReportData:
    input_name: str
    model_uri: str
    model_name: str | None
    model_version: str | None
    model_run_id: str | None
    contract_version: str
    explain: str
    engine: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    unknown_columns: list[str]
    problems: pd.DataFrame  # field, problem (the rule), count
    agg: object  # serving.batch.Aggregates
    drift: pd.DataFrame  # serving.batch.drift_table
    responses: tuple[str, ...]
    risk_levels: tuple[str, ...]
    risk_cutoffs: dict
    group_levels: dict[str, tuple[str, ...]]
    p_bins: int = 20
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


# ------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _label(s: str) -> str:
    return s.replace("_", " ")


def _field(f: str) -> str:
    """A contract field in clinical words (the HTTP explanations' labels)."""
    from serving.explain import label

    return label(f) if label(f) != f else _label(f)


def fig_overview(d: ReportData) -> str:
    plt = _plt()
    agg = d.agg
    n = max(int(agg.pred_counts.sum()), 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.4))
    ax = axes[0]
    shares = agg.pred_counts / n * 100
    ax.barh([_label(r) for r in d.responses][::-1], shares[::-1], color=[COLORS.get(r, "#888") for r in d.responses][::-1])
    for y, v in enumerate(shares[::-1]):
        ax.text(v + 1, y, f"{v:.1f} %", va="center")
    ax.set_xlim(0, 110)
    ax.set_xlabel("% of scored rows")
    ax.set_title("Predicted response (most likely class)")
    ax = axes[1]
    rs = agg.risk_counts / n * 100
    ax.barh([_label(r) for r in d.risk_levels][::-1], rs[::-1], color=[RISK_COLORS.get(r, "#888") for r in d.risk_levels][::-1])
    for y, v in enumerate(rs[::-1]):
        ax.text(v + 1, y, f"{v:.1f} %", va="center")
    ax.set_xlim(0, 110)
    ax.set_xlabel("% of scored rows")
    ax.set_title("Hyperalgesia risk level")
    return _png(fig)


def fig_histograms(d: ReportData) -> str:
    plt = _plt()
    agg = d.agg
    edges = np.linspace(0, 1, d.p_bins + 1)
    fig, axes = plt.subplots(1, len(d.responses), figsize=(9, 2.2), sharey=True)
    n = max(int(agg.pred_counts.sum()), 1)
    for k, r in enumerate(d.responses):
        ax = axes[k]
        ax.bar(edges[:-1], agg.p_hist[k] / n * 100, width=np.diff(edges), align="edge", color=COLORS.get(r, "#888"),
               edgecolor="white", linewidth=0.5)
        ax.set_title(f"P({_label(r)})")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
    axes[0].set_ylabel("% of scored rows")
    return _png(fig)


def group_table(d: ReportData, group: str) -> pd.DataFrame:
    agg = d.agg
    if group not in agg.group_n:
        return pd.DataFrame()
    levels = d.group_levels[group]
    n = agg.group_n[group]
    pred, psum = agg.group_pred[group], agg.group_psum[group]
    rows = []
    for i, level in enumerate(levels):
        if n[i] == 0:
            continue
        row = {"group": level, "n": int(n[i])}
        for k, r in enumerate(d.responses):
            row[f"pred_{r}"] = pred[i, k] / n[i] * 100
        for k, r in enumerate(d.responses):
            row[f"mean_p_{r}"] = psum[i, k] / n[i]
        rows.append(row)
    return pd.DataFrame(rows)


def fig_groups(d: ReportData, table: pd.DataFrame, title: str) -> str:
    plt = _plt()
    if table.empty:
        return ""
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(table) + 1.0))
    left = np.zeros(len(table))
    labels = [f"{_label(g)}  (n={n:,})" for g, n in zip(table["group"], table["n"])][::-1]
    for r in d.responses:
        v = table[f"pred_{r}"].to_numpy()[::-1]
        ax.barh(labels, v, left=left, color=COLORS.get(r, "#888"), label=_label(r))
        for y, (x0, w) in enumerate(zip(left, v)):
            if w >= 7:
                ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", fontsize=7, color="white")
        left += v
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the group predicted as")
    ax.set_title(title)
    ax.legend(ncol=len(d.responses), loc="lower center", bbox_to_anchor=(0.5, 1.06), frameon=False)
    return _png(fig)


def drivers_table(d: ReportData) -> pd.DataFrame:
    agg = d.agg
    if agg.abs_contrib_sum is None or agg.n_contrib == 0:
        return pd.DataFrame()
    mean = agg.abs_contrib_sum / agg.n_contrib  # (K, F)
    df = pd.DataFrame(mean.T, columns=list(agg.outputs))
    df.insert(0, "field", list(agg.fields))
    df["total"] = mean.sum(axis=0)
    return df.sort_values("total", ascending=False).reset_index(drop=True)


def fig_drivers(d: ReportData, table: pd.DataFrame, top: int = 15) -> str:
    plt = _plt()
    if table.empty:
        return ""
    t = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(t) + 1.0))
    left = np.zeros(len(t))
    for o in d.agg.outputs:
        v = t[o].to_numpy()
        ax.barh([_field(f) for f in t["field"]], v, left=left, color=COLORS.get(o, "#6d597a"), label=f"margin of {_label(o)}")
        left += v
    ax.set_xlabel(f"mean |contribution| ({_units(d.agg.outputs)}), summed over the model's outputs")
    ax.set_title("Main drivers across the cohort")
    ax.legend(frameon=False, loc="lower right")
    return _png(fig)


def _swarm_offsets(x: np.ndarray, n_bins: int = 60, width: float = 0.4) -> np.ndarray:
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


def fig_beeswarm(d: ReportData, max_fields: int = 12) -> tuple[str, int]:
    """One beeswarm per output of interest, on the random sample: x = the field's effect
    on that output relative to the others (centered log-odds), colour = the field's value
    within the sample (low blue to high red; categories and missing values grey)."""
    from serving.explain import centered

    agg = d.agg
    if not agg.sample_contrib:
        return "", 0
    plt = _plt()
    C = centered(np.concatenate(agg.sample_contrib, axis=0).astype("float64"))  # (n, K, F)
    V = np.concatenate(agg.sample_values, axis=0)
    n = C.shape[0]
    outs = [k for k, o in enumerate(agg.outputs) if o != "no_change"] or list(range(len(agg.outputs)))
    fig, axes = plt.subplots(1, len(outs), figsize=(5.2 * len(outs) + 1.0, 0.42 * max_fields + 1.2), squeeze=False,
                             layout="constrained")
    # colour: rank within the sample per field
    col = np.full(V.shape, np.nan)
    for j in range(V.shape[1]):
        v = V[:, j]
        ok = ~np.isnan(v)
        if ok.sum() > 1:
            col[ok, j] = pd.Series(v[ok]).rank(pct=True).to_numpy()
    cmap = plt.get_cmap("coolwarm")
    for a, k in enumerate(outs):
        ax = axes[0, a]
        imp = np.abs(C[:, k, :]).mean(axis=0)
        top = np.argsort(-imp, kind="stable")[:max_fields]
        for y, j in enumerate(top[::-1]):
            x = C[:, k, j]
            off = _swarm_offsets(x)
            c = col[:, j]
            grey = np.isnan(c)
            ax.scatter(x[grey], y + off[grey], s=4, color="#aaaaaa", alpha=0.7, linewidths=0, rasterized=True)
            ax.scatter(x[~grey], y + off[~grey], s=4, c=c[~grey], cmap=cmap, vmin=0, vmax=1, alpha=0.8, linewidths=0,
                       rasterized=True)
        ax.set_yticks(range(len(top)))
        ax.set_yticklabels([_field(agg.fields[j]) for j in top[::-1]])
        ax.axvline(0, color="#555", linewidth=0.6)
        ax.set_xlabel(f"effect {TOWARD.get(agg.outputs[k], agg.outputs[k])} ({_units(agg.outputs)})")
        ax.set_title(f"{_label(agg.outputs[k])}")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    cb = fig.colorbar(sm, ax=axes[0, -1], fraction=0.04, pad=0.02)
    cb.set_ticks([0, 1])
    cb.set_ticklabels(["low", "high"])
    cb.set_label("field value (within the sample)")
    return _png(fig), n


def fig_drift(d: ReportData) -> str:
    plt = _plt()
    df = d.drift
    if df.empty:
        return ""
    inp = df[df["kind"] == "input"].set_index("field")["psi"]
    att = df[df["kind"] == "attribution"].groupby("field")["psi"].max()
    fields = list(d.agg.fields)[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(fields) + 1.0))
    y = np.arange(len(fields))
    ax.barh(y + 0.2, inp.reindex(fields).fillna(0).to_numpy(), height=0.4, color="#457b9d", label="input values")
    ax.barh(y - 0.2, att.reindex(fields).fillna(0).to_numpy(), height=0.4, color="#e9c46a",
            label="attributions (max over outputs)")
    ax.axvline(PSI_FLAG, color="#d62828", linestyle="--", linewidth=1, label=f"flag at {PSI_FLAG}")
    ax.set_yticks(y)
    ax.set_yticklabels([_field(f) for f in fields])
    ax.set_xlabel("population stability index vs the model's training reference")
    ax.legend(frameon=False, loc="lower right")
    ax.set_title("Drift")
    return _png(fig)


# ------------------------------------------------------------------------------------
# page
# ------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border-bottom:1px solid #eee;padding:.25em .6em;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}.muted{color:#666;font-size:.9em}.flag{color:#b00020;font-weight:600}
.ok{color:#2a7d2a}.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{font-size:1.5em;display:block}img{max-width:100%}.note{background:#f8f8f2;border-left:3px solid #ccc;padding:.5em 1em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(df: pd.DataFrame, formats: dict | None = None, left: tuple[str, ...] = (), headers: dict | None = None,
           flag_col: str | None = None) -> str:
    if df.empty:
        return '<p class="muted">none</p>'
    formats = formats or {}
    headers = headers or {}
    cols = [c for c in df.columns if c != flag_col]
    out = ["<table><tr>" + "".join(f'<th class="{"l" if c in left else ""}">{_e(headers.get(c, c))}</th>' for c in cols) + "</tr>"]
    for _, row in df.iterrows():
        cls = ' class="flag"' if flag_col and bool(row[flag_col]) else ""
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float) and np.isnan(v):
                s = "–"
            elif c in formats:
                s = formats[c].format(v)
            else:
                s = str(v)
            cells.append(f'<td class="{"l" if c in left else ""}">{_e(s)}</td>')
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _group_section(d: ReportData, group: str, title: str) -> str:
    t = group_table(d, group)
    if t.empty:
        return f"<h3>{_e(title)}</h3><p class='muted'>no scored rows</p>"
    shown = t.copy()
    shown["group"] = shown["group"].map(_label)
    fmt = {f"pred_{r}": "{:.1f} %" for r in d.responses} | {f"mean_p_{r}": "{:.3f}" for r in d.responses} | {"n": "{:,}"}
    headers = {"group": title, "n": "rows"} | {f"pred_{r}": f"predicted {_label(r)}" for r in d.responses} | {
        f"mean_p_{r}": f"mean P({_label(r)})" for r in d.responses}
    return (f"<h3>By {_e(title.lower())}</h3>" + fig_groups(d, t, f"Predicted response by {title.lower()}")
            + _table(shown, fmt, left=("group",), headers=headers))


def render(d: ReportData) -> str:
    agg = d.agg
    n = max(d.rows_scored, 1)
    adds_up = d.rows_read == d.rows_scored + d.rows_rejected
    model = f"{d.model_name} version {d.model_version}" if d.model_name else d.model_uri
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Cohort report: {_e(d.input_name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Cohort report: {_e(d.input_name)}</h1>",
        f"<p class='muted'>Exercise-induced hypoalgesia responder model <b>{_e(model)}</b> ({_e(d.model_uri)}), "
        f"data contract {_e(d.contract_version)}. Scored {_e(d.created)}; engine {_e(d.engine)}, "
        f"explanations: {_e(d.explain)}.</p>",
        "<h2>Counts</h2><div class='cards'>",
        f"<div class='card'>rows read<b>{d.rows_read:,}</b></div>",
        f"<div class='card'>scored<b>{d.rows_scored:,}</b></div>",
        f"<div class='card'>rejected<b>{d.rows_rejected:,}</b></div></div>",
        f"<p>{d.rows_read:,} read = {d.rows_scored:,} scored + {d.rows_rejected:,} rejected "
        + ("<span class='ok'>(adds up)</span>" if adds_up else "<span class='flag'>(does not add up)</span>")
        + ". Every rejected row is listed with its reasons in the rejects file (subject_id, row, field, problem), "
        "which is not part of this report.</p>",
    ]
    if d.unknown_columns:
        parts.append(f"<p>Columns not in the data contract, not used: {_e(', '.join(d.unknown_columns))}.</p>")
    if not d.problems.empty:
        parts.append("<h3>Rejected rows by field and rule</h3>"
                     + _table(d.problems.head(40), {"count": "{:,}"}, left=("field", "problem"),
                              headers={"count": "rows"}))
        if len(d.problems) > 40:
            parts.append(f"<p class='muted'>... and {len(d.problems) - 40} more kinds of problem.</p>")

    parts.append("<h2>Predicted response</h2>")
    if d.rows_scored:
        cut = d.risk_cutoffs
        parts.append(fig_overview(d))
        means = ", ".join(f"P({_label(r)}) {agg.p_sum[k] / n:.3f}" for k, r in enumerate(d.responses))
        parts.append(f"<p>Mean predicted probabilities: {_e(means)}. Hyperalgesia risk levels use the model's cut-offs"
                     + (f" (moderate from {cut.get('moderate')}, high from {cut.get('high')})" if cut else "")
                     + ".</p>")
        parts.append(fig_histograms(d))
        parts.append(_group_section(d, "pain_condition", "Pain condition"))
        parts.append(_group_section(d, "exercise_modality", "Exercise modality"))
        parts.append(_group_section(d, "protocol", "Protocol (modality and intensity)"))
    else:
        parts.append("<p>No row was scored.</p>")

    parts.append("<h2>Main drivers</h2>")
    dt = drivers_table(d)
    if dt.empty:
        parts.append("<p class='muted'>no explanations computed</p>")
    else:
        basis = (f"all {agg.n_contrib:,} scored rows" if d.explain != "none"
                 else f"a random sample of {agg.n_contrib:,} scored rows (the batch ran without explanations)")
        parts.append(f"<p>Exact TreeSHAP contributions ({_units(agg.outputs)} of each model output) of every contract field, "
                     f"averaged in absolute value over {_e(basis)}.</p>")
        parts.append(fig_drivers(d, dt))
        bee, n_s = fig_beeswarm(d)
        if bee:
            parts.append(f"<h3>How each field moves predictions</h3><p>A beeswarm of a random sample of {n_s:,} scored "
                         "rows: each point is one row, placed by the field's effect on the output (for class margins "
                         "relative to the other outputs; right = more likely), coloured by the field's value within "
                         "the sample.</p>")
            parts.append(bee)
        fmt = {o: "{:.4f}" for o in agg.outputs} | {"total": "{:.4f}"}
        parts.append(_table(dt.head(25), fmt, left=("field",),
                            headers={o: f"mean |contribution| {_label(o)}" for o in agg.outputs} | {"total": "sum"}))

    parts.append("<h2>Drift against the training reference</h2>")
    drift = d.drift
    if drift.empty or drift["psi"].isna().all():
        parts.append("<p class='muted'>not computed (no scored rows)</p>")
    else:
        flags = drift[drift["flag"]]
        if len(flags):
            names = ", ".join(sorted(set(flags["field"])))
            parts.append(f"<p class='flag'>{len(flags)} drift flag(s) (PSI above {PSI_FLAG}): {_e(names)}. "
                         "The cohort differs from the data the model was trained on in these fields; "
                         "read its predictions for them with care.</p>")
        else:
            parts.append(f"<p class='ok'>No drift flag: every population stability index is at most {PSI_FLAG}.</p>")
        parts.append(fig_drift(d))
        inp = drift[drift["kind"] == "input"][["field", "psi", "missing_rate", "reference_missing_rate", "flag"]].copy()
        att = drift[drift["kind"] == "attribution"]
        if not att.empty and att["psi"].notna().any():
            idx = att.groupby("field")["psi"].idxmax().dropna()
            top = att.loc[idx.values].set_index("field")
            inp["attr_psi"] = inp["field"].map(top["psi"])
            inp["attr_output"] = inp["field"].map(top["output"]).map(lambda x: _label(x) if isinstance(x, str) else x)
            inp["flag"] = inp["flag"] | inp["field"].map(top["flag"]).fillna(False).astype(bool)
        fmt = {"psi": "{:.3f}", "missing_rate": "{:.1%}", "reference_missing_rate": "{:.1%}", "attr_psi": "{:.3f}"}
        parts.append(_table(inp, fmt, left=("field", "attr_output"), flag_col="flag",
                            headers={"psi": "PSI of values", "missing_rate": "missing (batch)",
                                     "reference_missing_rate": "missing (training)",
                                     "attr_psi": "PSI of attributions (max)", "attr_output": "for output"}))
    parts.append(
        "<h2>How to read this</h2><div class='note'><p>Probabilities are the model's estimates for one person doing "
        "one exercise bout, from the predictors in the data contract; they are research estimates, not diagnoses. "
        "Contributions are exact TreeSHAP values computed by XGBoost: for every row, the base value plus the "
        "contributions equals the model's margin. The population stability index (PSI) compares this cohort's "
        f"distribution of each field, and of each field's contributions, with the model's training data; above "
        f"{PSI_FLAG} it is flagged. This page holds aggregates only, no individual record.</p></div>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)
