"""Sections of the cohort report about groups of people: expected shares per pain
condition, exercise modality and protocol; the section per recruiting site (people,
expected shares, drift of the site's inputs); predictions against measured outcomes; and
the introduction of the drivers."""

from __future__ import annotations

from serving.report_figures import fig_groups
from serving.report_html import esc, pct, points, share_cell, table
from serving.report_tables import (
    MIN_SHOWN,
    OFF_BY,
    SITE_DRIFT_MIN_N,
    SMALL_GROUP,
    GroupRow,
    SiteDrift,
    group_rows,
    has_sites,
    outcome_rows,
    site_rows,
)
from serving.report_words import field_name, is_change_model, response


def _share_cells(d, r: GroupRow) -> list[str]:
    """A group's expected shares (with 95 % intervals when small) and mean expected change."""
    if r.hidden:
        return ["–"] * len(d.responses) + (["–"] if is_change_model(d.agg.outputs) else [])
    cells = [share_cell(r.shares[k], r.lo[k], r.hi[k]) for k in range(len(d.responses))]
    if is_change_model(d.agg.outputs):
        cells.append(points(r.change))
    return cells


def _note(r: GroupRow) -> str:
    """The flag of a small group."""
    if r.hidden:
        return f"fewer than {MIN_SHOWN} people: not shown"
    return "small group: 95 % intervals" if r.small else ""


def _share_headers(d, first: str) -> list[str]:
    """Headers of a table of expected shares."""
    heads = [first, "people"] + [f"expected {response(r)}" for r in d.responses]
    if is_change_model(d.agg.outputs):
        heads.append("expected change (%-points)")
    return heads


def _small_note(rows: list[GroupRow]) -> str:
    """A sentence on the small groups of a table, if any."""
    small = [r for r in rows if r.small]
    if not small:
        return ""
    return (f"<p class='muted'>{len(small)} group(s) of fewer than {SMALL_GROUP} people, marked <i>small group</i>: "
            "their expected shares carry 95 % intervals (Student t from the spread of the group's probabilities) and "
            "may differ from the whole cohort by chance alone.</p>")


def group_section(d, group: str, title: str) -> str:
    """Expected shares by one grouping: figure, table and small-group note."""
    rows = group_rows(d, group)
    if not rows:
        return f"<h3>By {esc(title.lower())}</h3><p class='muted'>no scored rows</p>"
    body = [[r.name, f"{r.n:,}", *_share_cells(d, r), _note(r)] for r in rows]
    return (f"<h3>By {esc(title.lower())}</h3>" + fig_groups(d, rows, f"Expected response by {title.lower()}")
            + table(_share_headers(d, title) + ["note"], body, row_classes=["small" if r.small else "" for r in rows],
                    text=(len(body[0]) - 1,))
            + _small_note(rows))


def _drift_cell(s: SiteDrift | None) -> str:
    """A site's drift against the training data, in a few words."""
    if s is None:
        return "–"
    if not s.judged:
        return f"not judged (fewer than {SITE_DRIFT_MIN_N} people)"
    worst = f"largest PSI {s.max_psi:.2f} ({field_name(s.max_field)})"
    if s.flagged:
        return f"{len(s.flagged)} field(s) flagged: {', '.join(field_name(f) for f in s.flagged)}; {worst}"
    return f"no flag; {worst}"


def sites_section(d) -> str:
    """The section per recruiting site (shown when the cohort names more than one site)."""
    rows = site_rows(d)
    groups = [g for g, _ in rows]
    total = sum(g.n for g in groups)
    body = [[g.name, f"{g.n:,}", *_share_cells(d, g), _drift_cell(s), _note(g)] for g, s in rows]
    return (
        f"<h2>By site</h2><p>{len(rows)} site rows, {total:,} people in all (= the {d.rows_scored:,} scored).</p>"
        + fig_groups(d, groups, "Expected response by site")
        + table(_share_headers(d, "site") + ["inputs against the training data", "note"], body,
                text=(len(body[0]) - 2, len(body[0]) - 1),
                row_classes=["flagged" if s is not None and s.flagged else ("small" if g.small else "") for g, s in rows])
        + _small_note(groups) + outcomes_section(d, "h3")
    )


def _outcome_cells(r, k: int) -> str:
    """Observed share (Wilson 95 % interval) against the expected share, for response k."""
    return f"{share_cell(r.observed[k], r.lo[k], r.hi[k])} vs {pct(r.expected[k])}"


def outcomes_section(d, level: str) -> str:
    """Predictions against measured outcomes (whole cohort, then per site), when the file
    has the pain threshold after the bout."""
    change = is_change_model(d.agg.outputs)
    rows = outcome_rows(d, change)
    if not rows:
        return ""
    test_ll = d.model_metrics.get("test_log_loss") if d.model_metrics else None
    heads = ["site" if has_sites(d.agg) else "", "people with a measured outcome"]
    heads += [f"{response(r)}: observed (95 % interval) vs expected" for r in d.responses]
    heads += ["measured mean change (95 % interval)"] + (["expected mean change"] if change else [])
    heads += ["log-loss" + (f" (model's test: {float(test_ll):.3f})" if test_ll is not None else ""), "signal"]
    body, classes = [], []
    for r in rows:
        off = [response(d.responses[k]) for k in r.off]
        ch = f"{points(r.change_observed)} ({points(r.change_lo)} to {points(r.change_hi)})"
        signal = ("predictions off for " + ", ".join(off)) if off else "consistent"
        if r.n < SMALL_GROUP:
            signal += " (small group)"
        body.append([r.name, f"{r.n:,}", *[_outcome_cells(r, k) for k in range(len(d.responses))], ch,
                     *([points(r.change_expected)] if change else []), f"{r.log_loss:.3f}", signal])
        classes.append("flagged" if off else "")
    intro = ("<p>For the people whose pressure pain threshold after the bout is in the file: their measured "
             "response beside the model's expected share for the same people. <i>Predictions off</i> means the expected share "
             f"lies outside the 95 % interval (Wilson) of the observed one and at least {100 * OFF_BY:.0f} %-points "
             "from it.</p>")
    title = "Predictions against measured outcomes"
    if has_sites(d.agg):
        title += " by site"
    return f"<{level}>{esc(title)}</{level}>{intro}" + table(heads, body, left=1, row_classes=classes,
                                                           text=(len(heads) - 1,))


def drivers_intro(d) -> str:
    """Where the effects come from (every row, or the sample of a run without explanations)."""
    agg = d.agg
    basis = (f"all {agg.n_contrib:,} scored people" if d.explain != "none"
             else f"a random sample of {agg.n_contrib:,} scored people (the batch ran without explanations)")
    what = ("the expected change of the pain threshold" + (" and its uncertainty" if len(agg.outputs) > 1 else "")
            if is_change_model(agg.outputs) else "the chance of each response")
    return (f"<p>The effect of every field on {what}: exact TreeSHAP contributions, their size averaged over "
            f"{esc(basis)}.</p>")
