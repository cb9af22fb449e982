"""Printing and writing validation reports (shared by `eih validate` and `eih score`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_contracts.io import column_hints
from data_contracts.validate import PROBLEM_COLUMNS, ValidationReport


def write_problems(problems: pd.DataFrame, path: str | os.PathLike, *, append: bool = False) -> None:
    """The rejects file: one line per problem, columns subject_id,row,field,problem."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = not (append and p.exists() and p.stat().st_size > 0)
    problems[PROBLEM_COLUMNS].to_csv(p, index=False, mode="a" if append else "w", header=header)


def split_problem(text: str) -> tuple[str, str, str]:
    """(what is wrong, rule, likely unit slip) of a problem text `what; rule: ...[; hint]`;
    missing parts are empty strings."""
    what, *rest = str(text).split("; ")
    rule = ""
    hints = []
    for part in rest:
        if not rule and part.startswith("rule: "):
            rule = part[len("rule: "):]
        else:
            hints.append(part)
    return what, rule, "; ".join(hints)


def problem_table(problems: pd.DataFrame) -> pd.DataFrame:
    """Problem counts by field and full problem text, split into columns field, problem,
    rule, hint, rows (the number of rows with that problem), most frequent first.

    Unlike `ValidationReport.by_field_rule`, rows whose value looks like a unit slip
    count apart from the other rows out of range, so each line has one hint."""
    columns = ["field", "problem", "rule", "hint", "rows"]
    if not len(problems):
        return pd.DataFrame(columns=columns)
    counts = problems.groupby(["field", "problem"], sort=True).size().rename("rows").reset_index()
    parts = [split_problem(t) for t in counts["problem"]]
    out = pd.DataFrame(
        {
            "field": counts["field"],
            "problem": [p[0] for p in parts],
            "rule": [p[1] for p in parts],
            "hint": [p[2] for p in parts],
            "rows": counts["rows"],
        }
    )
    return out.sort_values(["rows", "field"], ascending=[False, True], kind="stable").reset_index(drop=True)


def unknown_columns_text(unknown: Sequence[str], columns: Sequence[str] | None = None) -> str:
    """`a (looks like a_b), c`: unknown columns, each with the contract names it looks
    like among those absent from `columns` (the file's columns; None: no hints)."""
    hints = column_hints(list(columns)) if columns is not None else {}
    return ", ".join(f"{c} (looks like {' or '.join(hints[c])})" if c in hints else str(c) for c in unknown)


def print_report(
    report: ValidationReport,
    console,
    *,
    title: str,
    max_rules: int = 30,
    columns: Sequence[str] | None = None,
    details: str | None = None,
) -> None:
    """The console report: counts, unknown columns, and one table line per field and
    problem with its rule, likely unit slip and number of rows. Never a value.

    `columns`: the file's columns, to say which contract name an unknown column looks
    like. `details`: where the per-row problems are (printed under the table)."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(title)}[/bold]")
    console.print(
        f"rows read [bold]{report.n_rows}[/bold]   valid [green]{report.n_valid}[/green]   "
        f"rejected [red]{report.n_rejected}[/red]"
    )
    if report.unknown_columns:
        console.print(
            "[yellow]unknown columns, not used:[/yellow] " + escape(unknown_columns_text(report.unknown_columns, columns)),
            highlight=False,
        )
    table_rows = problem_table(report.problems)
    if not len(table_rows):
        return
    shown = table_rows.head(max_rules)
    with_hints = bool(shown["hint"].astype(bool).any())
    table = Table(title="Problems by field and rule (rows: how many rows have the problem)")
    for name in ("field", "problem", "rule") + (("likely unit slip",) if with_hints else ()):
        table.add_column(name)
    table.add_column("rows", justify="right")
    for rec in shown.itertuples(index=False):
        # the field is in the first column: its rule reads "a number from ..." after it
        rule = rec.rule.removeprefix(f"{rec.field} is ")
        cells = (rec.field, rec.problem, rule) + ((rec.hint,) if with_hints else ())
        table.add_row(*(escape(str(v)) for v in cells), f"{rec.rows:,}")
    console.print(table, highlight=False)
    if len(table_rows) > max_rules:
        console.print(f"... and {len(table_rows) - max_rules} more kinds of problem")
    if details:
        console.print(details, highlight=False)
