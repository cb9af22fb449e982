"""The cohort report of a batch: one self-contained HTML page (inline CSS, figures as
embedded PNG) that a researcher can show a trial committee.

It shows aggregates only: how good the model is and its limits (from its own test
metrics), counts, the expected share of each response (mean probabilities; the most
likely response as a secondary view), the same per pain condition, exercise protocol and
recruiting site (small groups flagged, with 95 % intervals), predictions against
measured outcomes when the file has them, the main drivers of the expected change and of
its uncertainty (mean |effect| and a beeswarm of a random sample of rows, drawn as points
without any value printed), drift against the model's training data, and the rows read,
scored and rejected. Built from `serving.batch.Aggregates`; never from the records.

The page is put together here; its pieces live in `report_words` (clinical names),
`report_tables` (tables and intervals), `report_figures` and `report_beeswarm`
(figures), `report_model` (the model's quality box) and `report_html` (HTML helpers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from features.reference import PSI_FLAG
from serving.report_beeswarm import fig_beeswarm
from serving.report_figures import fig_class_drivers, fig_drift, fig_drivers, fig_headline, fig_histograms
from serving.report_html import CSS, esc, pct, table
from serving.report_model import model_box
from serving.report_sections import drivers_intro, group_section, outcomes_section, sites_section
from serving.report_tables import drivers, has_sites
from serving.report_words import MEANING, SPREAD, driver_outputs, field_name, is_change_model, output_name, response, short_output


@dataclass
class ReportData:
    """Everything the page shows: the job's counts and aggregates, its drift and rejected
    rows, and what the model says about itself."""

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
    threshold_pct: float = 10.0
    model_metrics: dict = field(default_factory=dict)  # the model's training_metrics
    reference: dict = field(default_factory=dict)  # the model's training reference, per field
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _counts(d: ReportData) -> list[str]:
    """Rows read, scored and rejected (they add up), and the rejected rows by rule."""
    adds_up = d.rows_read == d.rows_scored + d.rows_rejected
    parts = [
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
        parts.append(f"<p>Columns not in the data contract, not used: {esc(', '.join(d.unknown_columns))}.</p>")
    if not d.problems.empty:
        shown = d.problems.head(40)
        parts.append("<h3>Rejected rows by field and rule</h3>"
                     + table(["field", "column", "problem", "rows"],
                             [[field_name(r.field), r.field, r.problem, f"{r.count:,}"] for r in shown.itertuples()],
                             left=3))
        if len(d.problems) > 40:
            parts.append(f"<p class='muted'>... and {len(d.problems) - 40} more kinds of problem.</p>")
    return parts


def _headline(d: ReportData) -> list[str]:
    """The expected share of each response (mean probability) first; the most likely
    response and the risk levels as secondary views."""
    agg = d.agg
    n = max(d.rows_scored, 1)
    cards = [f"<div class='card'>expected share with {esc(response(r))}<b>{pct(agg.p_sum[k] / n)}</b>"
             f"<span>mean probability {agg.p_sum[k] / n:.3f}</span></div>" for k, r in enumerate(d.responses)]
    if is_change_model(agg.outputs):
        cards.append(f"<div class='card'>expected change of the pain threshold<b>{agg.change_sum / n:+.1f} %-points</b>"
                     "<span>mean over the scored people</span></div>")
        cards.append(f"<div class='card'>{SPREAD} for one person<b>±{agg.spread_sum / n:.1f} %-points</b>"
                     "<span>typical spread (1 SD) of a person's change</span></div>")
    shares = [f"{pct(agg.p_sum[k] / n)} {response(r)}" for k, r in enumerate(d.responses)]
    shares = ", ".join(shares[:-1]) + " and " + shares[-1]
    likely = ", ".join(f"{response(r)} {pct(agg.pred_counts[k] / n)} ({int(agg.pred_counts[k]):,} people)"
                       for k, r in enumerate(d.responses))
    cut = d.risk_cutoffs
    return [
        "<h2>Predicted response</h2><div class='cards' id='headline'>", *cards, "</div>",
        f"<p>After one exercise bout the model expects {esc(shares)} among the {d.rows_scored:,} scored people "
        "(each person's probabilities, averaged). The responses, by the change of the pressure pain threshold at "
        f"±{d.threshold_pct:g} %: "
        + "; ".join(f"<i>{esc(response(r))}</i>, {esc(MEANING[r])}" for r in d.responses if r in MEANING) + ".</p>",
        fig_headline(d),
        f"<p class='muted'>Secondary views. <b>Most likely response, person by person</b>: {esc(likely)}. This is not "
        "the expected rate: counting each person once under their single most likely response undercounts a "
        "response that is seldom anyone's most likely one, however many people are expected to show it. "
        "<b>Hyperalgesia risk level</b>: by the model's cut-offs of the probability of hyperalgesia"
        + (f" (moderate from {cut.get('moderate')}, high from {cut.get('high')})" if cut else "") + ".</p>",
        fig_histograms(d),
    ]


def _drivers(d: ReportData) -> list[str]:
    """What moves the expected change (or each response's chance) and, for a model with
    a spread of its own, what makes the change more uncertain."""
    agg = d.agg
    parts = ["<h2>What drives the predictions</h2>"]
    if agg.abs_contrib_sum is None or agg.n_contrib == 0:
        return parts + ["<p class='muted'>no explanations computed</p>"]
    parts.append(drivers_intro(d))
    if not is_change_model(agg.outputs):
        return parts + _class_drivers(d)
    for k in driver_outputs(agg.outputs):
        o = agg.outputs[k]
        title = "What moves the expected change" if k == 0 else "What makes the change more uncertain"
        parts.append(f"<h3>{title}</h3>")
        if k > 0:
            parts.append("<p>The model's second part estimates how far one person's measured change may stray from "
                         "the expected change. These fields widen (right) or narrow (left) that spread; they do not "
                         "move the expected change itself.</p>")
        ranked = drivers(agg, k)
        parts.append(fig_drivers(d, ranked, k))
        bee, legend, n_s = fig_beeswarm(d, [k])
        if bee:
            parts.append(f"<p>How each field moves the {esc(output_name(o))}: a beeswarm of a random sample of "
                         f"{n_s:,} scored people, each point one person.</p>" + bee + legend)
    parts.append(_drivers_table(d))
    return parts


def _class_drivers(d: ReportData) -> list[str]:
    """A class-margin model's drivers: one stacked figure, a beeswarm and the table."""
    agg = d.agg
    ranked = {o: dict(drivers(agg, k)) for k, o in enumerate(agg.outputs)}
    per_field = {f: {o: ranked[o][f] for o in agg.outputs} for f in agg.fields}
    order = sorted(agg.fields, key=lambda f: -sum(per_field[f].values()))
    parts = [fig_class_drivers(d, per_field, order)]
    bee, legend, n_s = fig_beeswarm(d, driver_outputs(agg.outputs))
    if bee:
        parts.append(f"<h3>How each field moves predictions</h3><p>A beeswarm of a random sample of {n_s:,} scored "
                     "people: each point is one person, placed by the field's effect on a response's chance relative "
                     "to the other responses (right = more likely).</p>" + bee + legend)
    rows = [[field_name(f)] + [f"{per_field[f][o]:.3f}" for o in agg.outputs] for f in order[:25]]
    parts.append(table(["field"] + [f"{output_name(o)}: mean size of the effect (log-odds)" for o in agg.outputs], rows))
    return parts


def _drivers_table(d: ReportData) -> str:
    """Mean size of each field's effect on each output of a change model."""
    agg = d.agg
    ks = driver_outputs(agg.outputs)
    values = {k: dict(drivers(agg, k)) for k in ks}
    order = [f for f, _ in drivers(agg, ks[0])][:25]
    headers = ["field", "expected change: mean size of the effect (%-points)"]
    if len(ks) > 1:
        headers.append(f"{SPREAD}: mean widening or narrowing of the spread (%)")
    return table(headers, [[field_name(f)] + [f"{values[k][f]:.2f}" for k in ks] for f in order])


def _drift(d: ReportData) -> list[str]:
    """Drift of every field's values and of its effect on the predictions."""
    drift = d.drift
    parts = ["<h2>Drift against the training data</h2>"]
    if drift.empty or drift["psi"].isna().all():
        return parts + ["<p class='muted'>not computed (no scored rows)</p>"]
    flags = drift[drift["flag"]]
    if len(flags):
        names = ", ".join(sorted({field_name(f) for f in flags["field"]}))
        parts.append(f"<p class='flag'>{len(flags)} drift flag(s) (PSI above {PSI_FLAG}): {esc(names)}. "
                     "The cohort differs from the data the model was trained on in these fields; "
                     "read its predictions for them with care.</p>")
    else:
        parts.append(f"<p class='ok'>No drift flag: every population stability index is at most {PSI_FLAG}.</p>")
    inp = drift[drift["kind"] == "input"].set_index("field")
    att = drift[(drift["kind"] == "attribution") & drift["psi"].notna()]
    top = att.loc[att.groupby("field")["psi"].idxmax()].set_index("field") if len(att) else att.set_index("field")
    fields = list(d.agg.fields)
    parts.append(fig_drift(d, fields, inp["psi"], top["psi"] if len(top) else pd.Series(dtype="float64")))
    rows, classes = [], []
    for f in fields:
        r = inp.loc[f]
        a = top.loc[f] if f in top.index else None
        eff = "–" if a is None else f"{a['psi']:.3f}"
        on = "" if a is None else short_output(a["output"])
        flag = bool(r["flag"]) or (a is not None and bool(a["flag"]))
        rows.append([field_name(f), f, "–" if pd.isna(r["psi"]) else f"{r['psi']:.3f}", pct(r["missing_rate"]),
                     pct(r["reference_missing_rate"]), eff, on])
        classes.append("flagged" if flag else "")
    parts.append(table(["field", "column", "PSI of the values", "missing (cohort)", "missing (training)",
                        "PSI of the field's effect", "effect on"], rows, left=2, row_classes=classes, text=(6,)))
    return parts


def _how_to_read(d: ReportData) -> str:
    """The closing note: what the numbers are and are not."""
    return (
        "<h2>How to read this</h2><div class='note'><p>Probabilities are the model's estimates for one person doing "
        "one exercise bout, from the predictors in the data contract; they are research estimates, not diagnoses. "
        "The expected share of a response is the mean of the people's probabilities: the share of the cohort "
        "expected to show it. Effects are exact TreeSHAP contributions computed by XGBoost: for every person the "
        "model's baseline plus the effects of the fields equals the prediction. The population stability index "
        "(PSI) compares this cohort's distribution of each field, and of each field's effect, with the model's "
        f"training data; above {PSI_FLAG} it is flagged. Groups of fewer than 30 people are marked as small groups "
        "with 95 % intervals; groups of fewer than 5 show their size only. This page holds aggregates only, no "
        "individual record.</p></div>"
    )


def render(d: ReportData) -> str:
    """The whole page."""
    model = f"{d.model_name} version {d.model_version}" if d.model_name else d.model_uri
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Cohort report: {esc(d.input_name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Cohort report: {esc(d.input_name)}</h1>",
        f"<p class='muted'>Exercise-induced hypoalgesia responder model <b>{esc(model)}</b> ({esc(d.model_uri)}), "
        f"data contract {esc(d.contract_version)}. Scored {esc(d.created)}; engine {esc(d.engine)}, "
        f"explanations: {esc(d.explain)}.</p>",
        model_box(d.model_metrics),
        *_counts(d),
    ]
    if d.rows_scored:
        parts += _headline(d)
        parts.append(group_section(d, "pain_condition", "Pain condition"))
        parts.append(group_section(d, "exercise_modality", "Exercise modality"))
        parts.append(group_section(d, "protocol", "Protocol (modality and intensity)"))
        parts.append(sites_section(d) if has_sites(d.agg) else outcomes_section(d, "h2"))
    else:
        parts.append("<h2>Predicted response</h2><p>No row was scored.</p>")
    parts += _drivers(d)
    parts += _drift(d)
    parts.append(_how_to_read(d))
    parts.append("</body></html>")
    return "\n".join(parts)
