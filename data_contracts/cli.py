"""`eih validate`: the contract's field-level report for a cohort file."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    file: Path = typer.Argument(..., help="Cohort file to check: .csv or .parquet, one row per person and bout."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Write one line per problem to this CSV (columns subject_id,row,field,problem; row is the 1-based data row)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Check FILE against data contract 1.0 and report every problem by row and field.

    Exit code 0 when every row is valid, 1 when any row is rejected, 2 when the file
    cannot be read at all (not CSV/Parquet, empty, a required column missing).
    Messages name the field, the rule and a likely unit slip; they never quote values.
    """
    from rich.console import Console

    from data_contracts.io import read_table
    from data_contracts.report import print_report, write_problems
    from data_contracts.validate import ContractFileError, validate_frame

    err = Console(stderr=True)
    try:
        report = validate_frame(read_table(file))
    except ContractFileError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}))
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if rejects is not None:
        write_problems(report.problems, rejects)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, Console(), title=f"Contract 1.0 check of {file.name}")
        if rejects is not None:
            Console().print(f"problems written to {rejects}")
    raise typer.Exit(1 if report.n_rejected else 0)
