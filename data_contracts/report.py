"""Printing and writing validation reports (shared by `eih validate` and `eih score`)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from data_contracts.validate import PROBLEM_COLUMNS, ValidationReport


def write_problems(problems: pd.DataFrame, path: str | os.PathLike, *, append: bool = False) -> None:
    """The rejects file: one line per problem, columns subject_id,row,field,problem."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = not (append and p.exists() and p.stat().st_size > 0)
    problems[PROBLEM_COLUMNS].to_csv(p, index=False, mode="a" if append else "w", header=header)


def print_report(report: ValidationReport, console, *, title: str, max_rules: int = 30) -> None:
    from rich.table import Table

    console.print(f"[bold]{title}[/bold]")
    console.print(
        f"rows read [bold]{report.n_rows}[/bold]   valid [green]{report.n_valid}[/green]   "
        f"rejected [red]{report.n_rejected}[/red]"
    )
    if report.unknown_columns:
        console.print(
            "[yellow]unknown columns, not used:[/yellow] " + ", ".join(report.unknown_columns), highlight=False
        )
    table_rows = report.by_field_rule()
    if len(table_rows):
        table = Table("field", "problem", "rows", title="Problems by field and rule")
        for rec in table_rows.head(max_rules).itertuples(index=False):
            table.add_row(rec.field, rec.problem, str(rec.count))
        console.print(table)
        if len(table_rows) > max_rules:
            console.print(f"... and {len(table_rows) - max_rules} more kinds of problem")
