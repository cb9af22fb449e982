"""`eih recommend`: the protocols that give each person of a cohort file the best odds."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `eih recommend` to the command-line app."""
    app.command("recommend")(recommend)


def parse_top(value: str) -> int | None:
    """`--top`: a whole number of at least 1, or `all` (None)."""
    if value.strip().lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise typer.BadParameter("a whole number of at least 1, or all") from None
    if n < 1:
        raise typer.BadParameter("a whole number of at least 1, or all")
    return n


def parse_modalities(value: str | None) -> tuple[str, ...] | None:
    """`--modalities`: a comma-separated list of contract modalities (None: all)."""
    from serving.recommend import MODALITIES

    if value is None:
        return None
    mods = tuple(m.strip() for m in value.split(",") if m.strip())
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods:
        raise typer.BadParameter(f"a comma-separated list of {', '.join(MODALITIES)}")
    return mods


def recommend(
    file: Path = typer.Argument(..., help="Cohort file (.csv or .parquet), one row per person (data contract 1.0 "
                                          "columns; the protocol columns may be empty or absent: a row that gives "
                                          "them gives the current protocol, which is not used for the ranking)."),
    out: Path = typer.Option(..., "--out", help="Recommendations file (.csv or .parquet): one row per person and rank "
                                                "(subject_id, rank, exercise_modality, exercise_intensity_pct, "
                                                "exercise_duration_min, p_hypoalgesia, p_no_change, p_hyperalgesia, "
                                                "benefit, ranking_benefit, expected_change_pct, change_sd_pct, "
                                                "change_lo80_pct ... change_hi90_pct, warnings), in input order. Written as "
                                                "OUT.partial and "
                                                "renamed only when complete."),
    top: str = typer.Option("3", "--top", help="Protocols per person: a number, or all (every grid protocol within "
                                               "the constraints, best first, to audit the ranking)."),
    modalities: str | None = typer.Option(None, "--modalities", help="Allowed modalities, comma-separated (default: "
                                                                     "all): aerobic, isometric, dynamic_resistance, "
                                                                     "hiit, mind_body."),
    max_intensity: float | None = typer.Option(None, "--max-intensity", min=0, max=100,
                                               help="Highest intensity (%) a recommended protocol may have."),
    max_duration: float | None = typer.Option(None, "--max-duration", min=0, max=120,
                                              help="Longest bout (minutes) a recommended protocol may have."),
    max_hyperalgesia: float | None = typer.Option(None, "--max-hyperalgesia", min=0, max=1,
                                                  help="Ceiling on the predicted P(hyperalgesia) of a recommended "
                                                       "protocol (0-1)."),
    rejects: Path | None = typer.Option(None, "--rejects", help="Rejected-rows file (CSV, the format of `eih validate "
                                                                "--rejects`). Default: OUT's name with .rejects.csv."),
    model: str | None = typer.Option(None, "--model", help="MLflow model URI (default models:/eih-responder@champion)."),
    chunk_rows: int = typer.Option(5000, "--chunk-rows", min=1, help="People per chunk (each scored over the whole "
                                                                     "grid): memory is bounded by one chunk."),
    experiment: str = typer.Option("eih-recommend", "--experiment", help="MLflow experiment of the run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Rank a grid of exercise protocols for every person of FILE by expected benefit,
    P(hypoalgesia) - P(hyperalgesia), within the constraints. The ranking reads the benefit
    pooled toward the person's pain condition (ranking_benefit: the personal part shrunk by
    the factor the model estimated in training, so noise in the trees does not pick the
    protocol); benefit is the model's own for this person.

    The grid: every allowed modality x intensity in 5-point steps x duration in 5-minute
    steps over each modality's sensible range (312 protocols; serving/README.md lists the
    ranges). Rows are checked by data contract 1.0 as in `eih score`: every input row ends
    in OUT or in the rejects file, and rows read = recommended for + rejected. A person for
    whom no protocol meets the constraints gets one row with an empty rank. The job is one
    MLflow run (experiment eih-recommend).

    The ranking is causal only if protocols were assigned independently of the person in
    the model's training data (`eih train --protocols randomized`); the summary says which.
    A model that reads a field measured after the bout (lactate) is refused.

    Exit code 0 when the job completed (even with rejected rows), 1 when it failed midway
    (no output is left behind), 2 when it could not start.
    """
    from rich.console import Console

    from serving.recommend import Constraints
    from serving.recommend_batch import RecommendOptions

    try:
        constraints = Constraints(parse_modalities(modalities), max_intensity, max_duration, max_hyperalgesia)
        options = RecommendOptions(top=parse_top(top), constraints=constraints, model=model, chunk_rows=chunk_rows,
                                   experiment=experiment)
    except (typer.BadParameter, ValueError) as exc:
        _fail(2, str(exc))
    console = Console()
    result = _run(console, file, out, rejects, options, progress)
    _summary(console, result)


def _fail(code: int, message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _run(console, file: Path, out: Path, rejects: Path | None, options, progress: bool):
    """The job under a progress bar; one line and exit 2 when it cannot start, 1 when it fails."""
    from data_contracts.validate import ContractFileError
    from model_runtime.loading import ModelNotAvailable, load_model
    from model_runtime.metadata import ContractVersionError
    from serving.batch import BatchError
    from serving.recommend import PrescriptionRefused
    from serving.recommend_batch import check_files, recommend_file

    try:
        check_files(file, out, rejects or out.with_name(f"{out.stem}.rejects.csv"))
        with console.status("loading the model"):
            loaded = load_model(options.model)
    except (ContractFileError, ModelNotAvailable, ContractVersionError) as exc:
        _fail(2, str(exc).splitlines()[0])
    bar = _Bar(console, enabled=progress)
    try:
        with bar:
            return recommend_file(file, out, options, rejects=rejects, loaded=loaded, progress=bar)
    except (ContractFileError, PrescriptionRefused) as exc:
        _fail(2, str(exc).splitlines()[0])
    except BatchError as exc:
        _fail(1, f"{exc}; no output written")
    except KeyboardInterrupt:
        _fail(130, "interrupted; no output written")


class _Bar:
    """A rich progress bar over the people of the file (rows done of the total, time left)."""

    def __init__(self, console, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
                                 disable=not enabled, refresh_per_second=4)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("checking subject_ids", total=None)
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start(self, total: int) -> None:
        """The row count is known: recommending starts."""
        self.progress.reset(self.task, total=total, description="recommending")

    def advance(self, n: int, done: int) -> None:
        """`n` more rows done (`done` in all)."""
        self.progress.update(self.task, advance=n)


def _summary(console, result) -> None:
    from rich.table import Table

    from serving.recommend import causal_note

    console.print(
        f"rows read [bold]{result.rows_read:,}[/bold] = recommended for [green]{result.rows_scored:,}[/green] + "
        f"rejected [red]{result.rows_rejected:,}[/red]; {result.grid_size} protocols per person, "
        f"{result.pairs_per_s:,.0f} person-protocol pairs/s while scoring, {result.timings.get('total_s', 0):.1f} s "
        f"in all", highlight=False)
    if result.people_without_protocol:
        console.print(f"[yellow]no protocol meets the constraints for {result.people_without_protocol:,} "
                      "people[/yellow] (their row has an empty rank)", highlight=False)
    if result.rank1_modality:
        n = sum(result.rank1_modality.values())
        console.print("rank 1: " + ", ".join(f"{m} {c / n:.0%}" for m, c in sorted(
            result.rank1_modality.items(), key=lambda kv: -kv[1])), highlight=False)
    if result.unknown_columns:
        console.print("[yellow]unknown columns, not used:[/yellow] " + ", ".join(result.unknown_columns),
                      highlight=False)
    if result.problems_by_rule:
        table = Table("field", "problem", "rows", title="Rejected rows by field and rule")
        for (f, r), c in sorted(result.problems_by_rule.items(), key=lambda kv: -kv[1])[:20]:
            table.add_row(f, r, f"{c:,}")
        console.print(table)
    console.print(causal_note(result.protocols), highlight=False)
    console.print(f"recommendations: {result.out}", highlight=False)
    console.print(f"rejects:         {result.rejects}", highlight=False)
    if result.run_id:
        console.print(f"MLflow run {result.run_id} (eih ui to browse)", highlight=False)
