"""`eih simulate` and `eih calibrate-report`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
    app.command("calibrate-report")(calibrate_report_cmd)
    app.command("oracle")(oracle_cmd)


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
        help="Number of recruiting sites (1 = one pooled reference site, laboratory conditions). With 2 or more, "
        "sites differ in case mix, in which optional measures they record, in algometer and examiner (scale and "
        "noise of a PPT reading), in the minutes between bout and re-test (EIH fades) and in their mean response; "
        "the site is in the cohort's 'site' column. Use several for external validation.",
    ),
    world: int = typer.Option(
        0, "--world",
        help="Simulated world: the values of the parameters the literature leaves open (the mean effects of HIIT "
        "and mind-body exercise, the sex effect) drawn from wide priors; 0 = the central world. The oracle is "
        "exact within its world.",
    ),
    retest: Path | None = typer.Option(
        None, "--retest",
        help="Also write a second bout of the same protocol for the same people on another day (same format and "
        "subject_id values; new baseline PPT, lactate and ppt_post_kpa) to this file (.csv or .parquet), for "
        "test-retest reliability (calibrate-report --retest).",
    ),
) -> None:
    """Simulate a contract-valid cohort and its exact oracle.

    Each row is one person doing one exercise bout whose protocol (modality, intensity, duration) is assigned at random, as in a crossover trial. The cohort holds subject_id, site, every predictor and ppt_post_kpa; the oracle holds the true class probabilities at the default 10 % threshold, computed exactly from the recorded predictors (never a predictor column): p_* for a person at a new site (site effects integrated), p_site_* at the row's own site.

    Assumptions, parameters and sources: simulation/README.md and docs/science.md.
    """
    if n < 1:
        _fail("--n must be at least 1")
    if sites < 1:
        _fail("--sites must be at least 1")
    if sites > n:
        _fail("--sites cannot exceed --n")
    if world < 0:
        _fail("--world must be at least 0")
    _suffix_ok(out, "--out")
    oracle_path = oracle_out if oracle_out is not None else default_oracle_path(out)
    _suffix_ok(oracle_path, "--oracle-out")
    if oracle_path.resolve() == out.resolve():
        _fail("--oracle-out must differ from --out")
    if retest is not None:
        _suffix_ok(retest, "--retest")
        if retest.resolve() in (out.resolve(), oracle_path.resolve()):
            _fail("--retest must differ from --out and --oracle-out")

    from rich.console import Console

    from data_contracts.io import write_table
    from simulation import simulate

    try:
        frames = simulate(n, seed, sites, world=world, retest=retest is not None)
        cohort, oracle = frames[0], frames[1]
        write_table(cohort, out)
        write_table(oracle, oracle_path)
        if retest is not None:
            write_table(frames[2], retest)
    except (OSError, ValueError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    shares = oracle.iloc[:, 1:].mean()
    Console().print(
        f"wrote {len(cohort)} rows ({sites} site{'s' if sites != 1 else ''}, world {world}) to {out}; oracle to "
        f"{oracle_path}{f'; retest to {retest}' if retest is not None else ''}. "
        f"Expected shares: hypoalgesia {shares.iloc[0]:.2f}, no change {shares.iloc[1]:.2f}, "
        f"hyperalgesia {shares.iloc[2]:.2f}",
        highlight=False,
    )


def calibrate_report_cmd(
    file: Path = typer.Argument(..., help="Simulated cohort (.csv or .parquet) with ppt_post_kpa, e.g. from `eih simulate`."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    retest: Path | None = typer.Option(
        None, "--retest",
        help="The same people on another day (from `eih simulate --retest`): adds test-retest ICC, responder "
        "kappa, SEM and the smallest detectable change.",
    ),
    world: int = typer.Option(0, "--world", help="The world the cohort was simulated in (eih simulate --world); 0 = central."),
) -> None:
    """Compare a simulated cohort with the published calibration targets.

    Prints, for every target of docs/science.md (the science notes and sources of this project), the published value, the tolerance, the simulated value, how it was computed (the cohort's rows, or a virtual crossover that re-runs the cohort's own people under a fixed protocol) and pass or fail; then the oracle's macro AUROC (one-vs-rest) and the share of eih_pct variance explained by everything and by the person alone. Targets 1-13 describe laboratory conditions (the reference site of a one-site cohort); 14-18 add test-retest reliability, the aerobic thresholds in % HRmax, the CPM link in chronic pain, the spread between sites and across 20 worlds. A row that needs data not given (a retest file, two or more sites) reads n/a.

    Exit code 0 when every applicable target passes, 1 when any fails, 2 when a file cannot be used.
    """
    from data_contracts.io import read_table
    from data_contracts.validate import ContractFileError
    from simulation.calibration import calibration_report

    if world < 0:
        _fail("--world must be at least 0")
    try:
        second = read_table(retest) if retest is not None else None
        report = calibration_report(read_table(file), retest=second, world=world)
    except (ContractFileError, ValueError) as exc:
        _fail(str(exc).splitlines()[0])
    if as_json:
        typer.echo(json.dumps(_finite(report), indent=2))
    else:
        print_calibration(report, title=f"Calibration of {file.name} against published figures")
    raise typer.Exit(0 if report["all_passed"] else 1)


def oracle_cmd(
    file: Path = typer.Argument(..., help="Contract records (.csv or .parquet): one row per person and protocol, e.g. "
                                          "a recommendation joined to the person's record."),
    out: Path = typer.Option(..., "--out", help="Where to write subject_id, p_hypoalgesia, p_no_change, "
                                                "p_hyperalgesia (.csv or .parquet), in input order."),
    site: str = typer.Option("reference", "--site", help="reference: the truth at the simulator's reference site "
                                                         "(laboratory conditions; a one-site cohort's p_site_*); "
                                                         "new: for a person at a new site, site effects integrated "
                                                         "(the oracle file's p_*)."),
    world: int = typer.Option(0, "--world", help="Simulated world (0 = central, the world of `eih simulate`)."),
    before_bout: bool = typer.Option(False, "--before-bout/--all-fields", help="--before-bout: ignore the fields "
                                     "measured after the bout (lactate), as a prescription must: use it to score a "
                                     "protocol other than the one the values were measured with. Default: every "
                                     "recorded predictor, as in the oracle file of `eih simulate`."),
) -> None:
    """The simulator's exact probabilities of hypoalgesia, no change and hyperalgesia for
    any contract records (a research tool).

    For each valid row: the truth of the simulator (the world of `eih simulate`, 0 =
    central) given the predictors the row records, at the default 10 % threshold, exactly
    (no resampling). It measures how far a model, or a recommended protocol, is from the
    truth: for a recommendation, its regret is the oracle benefit P(hypoalgesia) -
    P(hyperalgesia) of the best protocol minus that of the recommended one (README,
    "Choosing a protocol"). It is the truth of the simulated world only, never of real
    patients. Rows that break the contract are counted and left out.

    Exit code 0 when written, 2 when the file cannot be used.
    """
    from rich.console import Console

    from data_contracts.fields import AFTER_BOUT, RESPONSES
    from data_contracts.io import read_table, write_table
    from data_contracts.validate import ContractFileError, validate_frame
    from simulation.oracle import oracle_probabilities
    from simulation.sites import REFERENCE

    if site not in ("reference", "new"):
        _fail("--site must be reference or new")
    if world < 0:
        _fail("--world must be at least 0")
    _suffix_ok(out, "--out")
    try:
        report = validate_frame(read_table(file))
    except (ContractFileError, OSError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    valid = report.valid
    if before_bout:
        valid = valid.drop(columns=[c for c in AFTER_BOUT if c in valid.columns])
    import pandas as pd

    P = oracle_probabilities(valid, world=world, site=REFERENCE if site == "reference" else None)
    frame = pd.DataFrame({"subject_id": valid["subject_id"].astype(str).to_numpy()})
    for k, r in enumerate(RESPONSES):
        frame[f"p_{r}"] = P[:, k]
    try:
        write_table(frame, out)
    except (OSError, ValueError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    Console(stderr=True).print(
        f"wrote the oracle of {len(frame)} rows to {out} ({site} site, world {world}"
        f"{', before-bout fields only' if before_bout else ''}); {report.n_rejected} rows break the contract and are "
        "left out", highlight=False)


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
            "n/a" if r["passed"] is None else "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]",
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
    by_t = Table("label threshold (± % PPT change)", *shares, title="class shares by label threshold "
                 "(eih train --label-threshold-pct; one re-test's smallest detectable change is about 30 %)")
    for t, row in report.get("class_shares_by_threshold", {}).items():
        by_t.add_row(f"{t} %", *(f"{row[k]:.3f}" for k in shares))
    console.print(by_t)
    console.print(f"oracle macro AUROC for a person at a new site (the oracle file's p_* columns): "
                  f"{report['oracle_auroc_macro_new_site']:.3f}; world {report['world']}", highlight=False)
    n_fail = sum(r["passed"] is False for r in report["targets"])
    n_na = sum(r["passed"] is None for r in report["targets"])
    na = f" ({n_na} not applicable)" if n_na else ""
    console.print(f"[green]all targets pass[/green]{na}" if n_fail == 0 else f"[red]{n_fail} target(s) fail[/red]{na}")
