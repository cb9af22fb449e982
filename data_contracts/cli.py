"""`eih validate` (the contract's field-level report for a cohort file) and `eih template`
(a blank cohort file with its data dictionary)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("template")(template)


def validate(
    file: Path = typer.Argument(
        ..., help="Cohort file to check: .csv (comma, semicolon or tab separated) or .parquet, one row per person and bout."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Write one line per problem to this CSV (columns subject_id,row,field,problem; row is the 1-based data row)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Check FILE against data contract 1.0 and report every problem by row and field.

    Exit code 0 when every row is valid, 1 when any row is rejected, 2 when the file
    cannot be read at all (not CSV/Parquet, empty, a required column missing: the
    message names headers that look like it). Column names that differ from the
    contract only in case or surrounding spaces are accepted with a notice, as are
    semicolon files with decimal commas. The table gives each problem's rule and likely
    unit slip; --rejects and --json give every problem by row. No value is ever shown.
    """
    from rich.console import Console
    from rich.markup import escape

    from data_contracts.io import column_hints, read_columns, read_table
    from data_contracts.report import print_report, write_problems
    from data_contracts.validate import ContractFileError, validate_frame

    err = Console(stderr=True)
    notices: list[str] = []
    try:
        report = validate_frame(read_table(file, notify=notices.append))
        columns = read_columns(file)
    except ContractFileError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}))
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for line in notices:
        err.print(f"[yellow]notice:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    if rejects is not None:
        write_problems(report.problems, rejects)
    if as_json:
        out = report.to_dict()
        out["notices"] = notices
        hints = column_hints(columns)
        out["unknown_column_hints"] = {c: hints[c] for c in report.unknown_columns if c in hints}
        typer.echo(json.dumps(out, indent=2))
    else:
        details = None if rejects is not None else "every problem with its row and subject_id: --rejects FILE.csv or --json"
        print_report(report, Console(), title=f"Contract 1.0 check of {file.name}", columns=columns, details=details)
        if rejects is not None:
            Console().print(f"problems written to {escape(str(rejects))} (one line per problem, with its row and subject_id)",
                            highlight=False, soft_wrap=True)
    raise typer.Exit(1 if report.n_rejected else 0)


def template(
    out: Path = typer.Option(..., "--out", help="The blank template to write (.csv); the data dictionary goes beside it as <name>.dictionary.csv."),
    force: bool = typer.Option(False, "--force", help="Overwrite the template and dictionary if they exist."),
) -> None:
    """Write a blank cohort template and its data dictionary.

    The template holds the header of data contract 1.0 (every field, in contract order)
    and no rows; fill one row per person and exercise bout, then `eih validate` it. The
    dictionary (OUT with suffix .dictionary.csv) has one row per field: label, role,
    kind, unit, required or optional, allowed range or categories, the rule and the unit
    slips the checks recognise. Exit code 0 when written, 2 when not (wrong suffix, a
    file already there without --force).
    """
    from rich.console import Console
    from rich.markup import escape

    from data_contracts.template import write_template
    from data_contracts.validate import ContractFileError

    try:
        template_path, dictionary_path = write_template(out, overwrite=force)
    except ContractFileError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    Console().print(f"template written to {escape(str(template_path))}\n"
                    f"data dictionary written to {escape(str(dictionary_path))}", highlight=False, soft_wrap=True)
