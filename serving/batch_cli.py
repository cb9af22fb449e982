"""`eih score`: batch scoring of a cohort file, on this machine or on a Dask cluster."""

from __future__ import annotations

import enum
import signal
from pathlib import Path
from typing import NamedTuple

import typer


class Explain(str, enum.Enum):
    none = "none"
    top = "top"
    full = "full"


class Engine(str, enum.Enum):
    local = "local"
    dask = "dask"


def register(app: typer.Typer) -> None:
    """Add `eih score` to the command-line app."""
    app.command("score")(score)


def score(
    file: Path = typer.Argument(..., help="Cohort file to score: .csv or .parquet, one row per person and exercise bout "
                                          "(data contract 1.0 columns; ppt_post_kpa, if present, is ignored)."),
    out: Path = typer.Option(..., "--out", help="Scores file to write: .csv or .parquet (by suffix). One row per "
                                                "scored input row, in input order. Written as OUT.partial and renamed "
                                                "only when complete."),
    rejects: Path | None = typer.Option(None, "--rejects", help="Rejected-rows file (CSV: subject_id,row,field,problem, "
                                                                "the same format as `eih validate --rejects`). Default: "
                                                                "OUT's name with .rejects.csv. Always written, header "
                                                                "only when nothing was rejected."),
    explain: Explain = typer.Option(Explain.top, "--explain", help="none: probabilities only (fastest); top: the "
                                                                   "--top-k fields with the largest effect per row "
                                                                   "(topN_field, topN_contribution, topN_toward); "
                                                                   "full: margin_<o>, base_<o> and contrib_<o>__<field> "
                                                                   "for every model output, contract predictor and "
                                                                   "derived feature "
                                                                   "(base + contributions = margin)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Fields per row with --explain top."),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local: this process (XGBoost uses every core); "
                                                                 "dask: one task per chunk on a Dask cluster "
                                                                 "(identical results)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="With --engine dask: address of an existing Dask "
                                                                   "scheduler (e.g. tcp://10.0.0.5:8786, from "
                                                                   "dask-jobqueue or Kubernetes). Default: a "
                                                                   "LocalCluster on this machine."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="With --engine dask and no --scheduler: "
                                                                      "LocalCluster worker processes (default: one "
                                                                      "per core, one thread each)."),
    model: str | None = typer.Option(None, "--model", help="MLflow model URI (default models:/eih-responder@champion; "
                                                           "e.g. models:/eih-responder/3)."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", min=1, help="Rows per chunk: memory is bounded by a few "
                                                                       "chunks whatever the file size; with Dask, "
                                                                       "one task per chunk."),
    report: Path | None = typer.Option(None, "--report", help="Cohort report (self-contained HTML). Default: OUT's "
                                                              "name with .report.html. Also logged to MLflow."),
    experiment: str = typer.Option("eih-batch", "--experiment", help="MLflow experiment of the batch run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar (rows/s, time left)."),
) -> None:
    """Predict and explain every row of FILE with the registered model, or reject it
    with its reasons: every input row ends in OUT or in the rejects file, and the
    summary's rows read = scored + rejected.

    Rows are validated by data contract 1.0 (as `eih validate`), scored in chunks with
    bounded memory and written in input order with subject_id, p_hypoalgesia,
    p_no_change, p_hyperalgesia, predicted_response and hyperalgesia_risk, plus the
    explanation columns of --explain. The batch is logged to MLflow (model version,
    counts, prediction distribution, drift of each input field and attribution against
    the training reference, PSI flagged above 0.2) with a cohort report.

    Exit code 0 when the job completed (even with rejected rows), 1 when it failed
    midway (no output is left behind), 2 when it could not start: unreadable input,
    bad paths, no model at the URI, or a model of another contract major version.
    """
    from rich.console import Console

    from serving import batch

    if scheduler and engine != Engine.dask:
        _fail(2, "--scheduler needs --engine dask")
    if workers and (engine != Engine.dask or scheduler):
        _fail(2, "--workers sets the size of a LocalCluster: use it with --engine dask and no --scheduler")
    options = batch.ScoreOptions(explain=explain.value, top_k=top_k, engine=engine.value, scheduler=scheduler,
                                 workers=workers, model=model, chunk_rows=chunk_rows, experiment=experiment)
    console = Console()
    out_path = Path(out)
    files = _Files(file, out_path, rejects or batch.default_rejects_path(out_path),
                   report or batch.default_report_path(out_path))
    loaded = _load_model(console, files, model)
    result = _run(console, files, options, loaded, progress)
    _summary(console, result, loaded)
    _outcome_hint(console, file)


class _Files(NamedTuple):
    """The input and the output files of the command, defaults applied."""

    input: Path
    out: Path
    rejects: Path
    report: Path


def _fail(code: int, message: str) -> None:
    """One line on stderr and the exit code (2: could not start, 1: failed midway)."""
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _load_model(console, files: _Files, model: str | None):
    """The model, after the files are checked; anything that stops the job from
    starting exits 2 with one line."""
    from data_contracts.validate import ContractFileError
    from model_runtime.loading import ModelNotAvailable, load_model
    from model_runtime.metadata import ContractVersionError
    from serving import batch

    try:
        batch.check_paths(files.input, files.out, files.rejects, files.report)
        with console.status("loading the model"):
            return load_model(model)
    except (ContractFileError, ModelNotAvailable, ContractVersionError) as exc:
        _fail(2, str(exc).splitlines()[0])


def _run(console, files: _Files, options, loaded, progress: bool):
    """The job under a progress bar; SIGTERM is handled like Ctrl-C while it runs."""
    from data_contracts.validate import ContractFileError
    from serving import batch

    bar = _Bar(console, enabled=progress)
    previous = _term_as_interrupt()
    try:
        with bar:
            return batch.score_file(files.input, files.out, options, rejects=files.rejects, report=files.report,
                                    loaded=loaded, progress=bar)
    except ContractFileError as exc:
        _fail(2, str(exc).splitlines()[0])
    except batch.BatchError as exc:
        _fail(1, f"{exc}; no output written")
    except KeyboardInterrupt:
        _fail(130, "interrupted; no output written")
    finally:
        _restore_term(previous)


class _Bar:
    """A rich progress bar: rows done of the total, rows/s and time left."""

    def __init__(self, console, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=console, transient=False, disable=not enabled, refresh_per_second=4,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("checking subject_ids", total=None, rate="-")
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start(self, total: int) -> None:
        """The subject_id pass is done: scoring starts, `total` rows."""
        self.progress.reset(self.task, total=total, rate="-", description="scoring")

    def advance(self, n: int, done: int) -> None:
        """One more chunk written (`n` rows, `done` in all)."""
        self.progress.update(self.task, advance=n)
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:,.0f}" if speed else "-")


def _term_as_interrupt():
    """SIGTERM (e.g. a batch system's kill) cleans up like Ctrl-C: no partial output left."""
    def handler(signum, frame):
        """Turn SIGTERM into the KeyboardInterrupt the job cleans up after."""
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        return signal.getsignal(signal.SIGTERM)


def _restore_term(previous) -> None:
    try:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    except ValueError:  # not the main thread
        pass


def _outcome_hint(console, file: Path) -> None:
    from data_contracts.io import read_columns

    if "ppt_post_kpa" in read_columns(file):
        console.print("this file has outcomes (ppt_post_kpa), not used by scoring: `eih evaluate FILE` validates the "
                      "model on them", highlight=False)


def _summary(console, result, loaded) -> None:
    from rich.table import Table

    adds = result.rows_read == result.rows_scored + result.rows_rejected
    console.print(
        f"rows read [bold]{result.rows_read:,}[/bold] = scored [green]{result.rows_scored:,}[/green] + rejected "
        f"[red]{result.rows_rejected:,}[/red]" + ("" if adds else "  [red](does not add up)[/red]")
    )
    t = result.timings
    console.print(f"model {loaded.name or loaded.uri} version {loaded.version or '?'}; {result.engine} engine, "
                  f"explain {result.explain}; {result.rows_per_s:,.0f} rows/s while scoring, "
                  f"{t.get('total_s', 0):.1f} s in all", highlight=False)
    if result.unknown_columns:
        console.print("[yellow]unknown columns, not used:[/yellow] " + ", ".join(result.unknown_columns), highlight=False)
    if len(result.problems_by_rule):
        table = Table("field", "problem", "rows", title="Rejected rows by field and rule")
        for rec in result.problems_by_rule.head(20).itertuples(index=False):
            table.add_row(rec.field, rec.problem, f"{rec.count:,}")
        console.print(table)
        if len(result.problems_by_rule) > 20:
            console.print(f"... and {len(result.problems_by_rule) - 20} more kinds of problem")
    flags = result.drift_flags
    if flags:
        console.print(f"[yellow]drift (PSI > 0.2) in {len(flags)} input/attribution distribution(s):[/yellow] "
                      + ", ".join(flags[:12]) + (" ..." if len(flags) > 12 else ""), highlight=False)
    else:
        console.print("no drift flag (every PSI <= 0.2)")
    console.print(f"scores:  {result.out}", highlight=False)
    console.print(f"rejects: {result.rejects}", highlight=False)
    if result.report is not None:
        console.print(f"report:  {result.report}", highlight=False)
    if result.run_id:
        console.print(f"MLflow run {result.run_id} (eih ui to browse)", highlight=False)
