"""`eih simulate` and `eih calibrate-report`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
    app.command("calibrate-report")(calibrate_report_cmd)


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _suffix_ok(path: Path, option: str) -> None:
    from data_contracts.io import SUFFIXES

    if path.suffix.lower() not in SUFFIXES:
        _fail(f"{option} {path.name}: unknown suffix '{path.suffix or '(none)'}' (use .csv or .parquet)")


def default_oracle_path(out: Path) -> Path:
    """`<out stem>.oracle.parquet` next to the cohort file."""
    return out.with_name(f"{out.stem}.oracle.parquet")


def simulate_cmd(
    n: int = typer.Option(..., "--n", help="Number of people (rows) to simulate, one randomized exercise bout each; at least 1."),
    seed: int = typer.Option(..., "--seed", help="Random seed: the same --n, --seed and --sites always give the same files, byte for byte."),
    out: Path = typer.Option(..., "--out", help="Cohort file to write; .csv or .parquet (the suffix decides the format)."),
    oracle_out: Path | None = typer.Option(
        None, "--oracle-out",
        help="Where to write the oracle (subject_id,p_hypoalgesia,p_no_change,p_hyperalgesia; .csv or .parquet). "
        "Default: <out stem>.oracle.parquet beside the cohort.",
    ),
    sites: int = typer.Option(
        1, "--sites",
        help="Number of recruiting sites (1 = one pooled site). Sites differ in case mix and in which optional "
        "measures they record, never in how exercise acts; use several for external validation.",
    ),
) -> None:
    """Simulate a contract-valid cohort and its exact oracle.

    Each row is one person doing one exercise bout whose protocol (modality, intensity, duration) is assigned at random, as in a crossover trial. The cohort holds subject_id, site, every predictor and ppt_post_kpa; the oracle holds the true class probabilities at the default 10 % threshold, computed exactly from the recorded predictors (never a predictor column).

    Assumptions, parameters and sources: simulation/README.md.
    """
    if n < 1:
        _fail("--n must be at least 1")
    if sites < 1:
        _fail("--sites must be at least 1")
    if sites > n:
        _fail("--sites cannot exceed --n")
    _suffix_ok(out, "--out")
    oracle_path = oracle_out if oracle_out is not None else default_oracle_path(out)
    _suffix_ok(oracle_path, "--oracle-out")
    if oracle_path.resolve() == out.resolve():
        _fail("--oracle-out must differ from --out")

    from rich.console import Console

    from data_contracts.io import write_table
    from simulation import simulate

    try:
        cohort, oracle = simulate(n, seed, sites)
        write_table(cohort, out)
        write_table(oracle, oracle_path)
    except (OSError, ValueError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    shares = oracle.iloc[:, 1:].mean()
    Console().print(
        f"wrote {len(cohort)} rows ({sites} site{'s' if sites != 1 else ''}) to {out}; oracle to {oracle_path}. "
        f"Expected shares: hypoalgesia {shares.iloc[0]:.2f}, no change {shares.iloc[1]:.2f}, "
        f"hyperalgesia {shares.iloc[2]:.2f}",
        highlight=False,
    )


def calibrate_report_cmd(
    file: Path = typer.Argument(..., help="Simulated cohort (.csv or .parquet) with ppt_post_kpa, e.g. from `eih simulate`."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Compare a simulated cohort with the 13 published calibration targets.

    Prints, for every target of shared/domain.md, the published value, the tolerance, the simulated value, how it was computed (the cohort's rows, or a virtual crossover that re-runs the cohort's own people under a fixed protocol) and pass or fail; then the oracle's macro AUROC (one-vs-rest) and the share of eih_pct variance explained by everything and by the person alone.

    Exit code 0 when every target passes, 1 when any fails, 2 when FILE cannot be used.
    """
    from data_contracts.io import read_table
    from data_contracts.validate import ContractFileError
    from simulation.calibration import calibration_report

    try:
        report = calibration_report(read_table(file))
    except (ContractFileError, ValueError) as exc:
        _fail(str(exc).splitlines()[0])
    if as_json:
        typer.echo(json.dumps(_finite(report), indent=2))
    else:
        print_calibration(report, title=f"Calibration of {file.name} against published figures")
    raise typer.Exit(0 if report["all_passed"] else 1)


def _finite(obj):
    """NaN and infinities -> null, so the JSON is valid everywhere."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def print_calibration(report: dict, title: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table("#", "target", "published", "tolerance", "simulated", "method", "result", title=title)
    for r in report["targets"]:
        table.add_row(
            r["id"], r["target"], r["published"], r["tolerance"], r["simulated"], r["method"],
            "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]",
        )
    console.print(table)
    pa = report["r2_person_alone"]
    console.print(
        f"n = {report['n_rows']}   oracle macro AUROC (one-vs-rest) [bold]{report['oracle_auroc_macro']:.3f}[/bold]   "
        f"R² everything [bold]{report['r2_everything']:.3f}[/bold]   "
        f"R² person alone (protocol fixed): max within condition "
        f"[bold]{max(pa['within_condition'].values(), default=float('nan')):.3f}[/bold], whole cohort "
        + ", ".join(f"{k} {v:.3f}" for k, v in pa["pooled"].items()),
        highlight=False,
    )
    shares = report["class_shares"]
    console.print("class shares: " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()), highlight=False)
    n_fail = sum(not r["passed"] for r in report["targets"])
    console.print("[green]all targets pass[/green]" if n_fail == 0 else f"[red]{n_fail} target(s) fail[/red]")
