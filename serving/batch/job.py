"""The batch job, `score_file`: check the files, load the model, scan the subject_ids,
run an engine over the chunks, write every result in input order, then commit the
outputs and the MLflow run only when the counts add up. On any failure nothing that
looks finished is left behind and the run is marked failed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from data_contracts.validate import ContractFileError
from serving.batch.aggregates import Aggregates, Tally, drift_table, problems_table
from serving.batch.chunk import ChunkResult
from serving.batch.engines import make_client, prefetch, read_chunks, run_dask, run_local
from serving.batch.options import SAMPLE_ROWS, BatchError, BatchResult, ChunkOptions, Progress, ScoreOptions
from serving.batch.scan import scan_ids
from serving.batch.tracking import TrackedRun, end_run_failed, finish_run, report_html, start_run
from serving.batch.writers import (
    RejectsWriter,
    TableWriter,
    change_columns,
    check_paths,
    default_rejects_path,
    default_report_path,
    output_schema,
    partial_path,
    write_report,
)


@dataclass(frozen=True)
class _Files:
    """The input and the three outputs of a job, defaults applied."""

    input: Path
    out: Path
    rejects: Path
    report: Path | None

    @classmethod
    def resolve(cls, path, out, rejects, report) -> _Files:
        """Paths from `score_file`'s arguments (`report=True`: the default name)."""
        out = Path(out)
        report_path = default_report_path(out) if report is True else (Path(report) if report else None)
        return cls(Path(path), out, Path(rejects) if rejects else default_rejects_path(out), report_path)


class _Outputs:
    """The job's output files while it runs: `commit` moves them all to their final
    names, `abort` deletes whatever was written."""

    def __init__(self, files: _Files):
        self.files = files
        self.table: TableWriter | None = None
        self.rejects: RejectsWriter | None = None

    def open(self, schema: pa.Schema) -> None:
        """Start the scores and rejects files (as `.partial`)."""
        self.table = TableWriter(self.files.out, schema)
        self.rejects = RejectsWriter(self.files.rejects)

    def write(self, res: ChunkResult) -> None:
        """Append one chunk's scored rows and rejects."""
        self.table.write(res.table)
        self.rejects.write(res.problems)

    def commit(self, html: str | None) -> None:
        """Write the report, then move the rejects and scores files in place."""
        if self.files.report is not None:
            write_report(self.files.report, html)
        self.rejects.commit()
        self.table.commit()

    def abort(self) -> None:
        """Delete every partial file."""
        for w in (self.table, self.rejects):
            if w is not None:
                w.abort()
        if self.files.report is not None:
            partial_path(self.files.report).unlink(missing_ok=True)


def _results(files: _Files, options: ScoreOptions, predictor, duplicate_ids, chunk_opts: ChunkOptions,
             schema: pa.Schema, client, cleanup: ExitStack) -> Iterator[ChunkResult]:
    """The chosen engine's results, in input order. A Dask client made here is closed
    by `cleanup`, after the job's outputs are committed or cleaned up."""
    chunks = read_chunks(files.input, options.chunk_rows)
    if options.engine != "dask":
        return run_local(predictor, chunks, duplicate_ids, chunk_opts, schema)
    if client is None:
        client, cluster = make_client(options.scheduler, options.workers)
        if cluster is not None:
            cleanup.callback(cluster.close)
        cleanup.callback(client.close)
    return run_dask(client, predictor, prefetch(chunks), duplicate_ids, chunk_opts, schema)


def _collect(results: Iterator[ChunkResult], outputs: _Outputs, agg: Aggregates,
             progress: Progress | None) -> Tally:
    """Write each chunk's rows and rejects as it arrives and add up its aggregates."""
    tally = Tally()
    for res in results:
        outputs.write(res)
        agg.merge(res.agg)
        tally.read += res.n_read
        tally.scored += res.n_scored
        tally.rejected += res.n_rejected
        if res.index == 0:
            tally.unknown_columns = res.unknown_columns
        if progress is not None:
            progress.advance(res.n_read, tally.read)
    return tally


def _check_counts(tally: Tally, n_total: int) -> None:
    """A BatchError unless every row of the file was read and is scored or rejected."""
    if tally.read != n_total or tally.read != tally.scored + tally.rejected:
        raise BatchError(f"row counts do not add up (read {tally.read} of {n_total}, scored {tally.scored}, "
                         f"rejected {tally.rejected}); nothing written")


def _one_line(exc: BaseException) -> str:
    """A failure reason without record values: our own messages in full, others by type."""
    if isinstance(exc, (BatchError, ContractFileError)):
        return str(exc).splitlines()[0]
    name = type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory: use a smaller --chunk-rows"
    if isinstance(exc, OSError):
        return f"{name}: {exc.strerror or 'I/O error'}" + (f" ({Path(exc.filename).name})" if exc.filename else "")
    return f"scoring failed ({name})"


def _fail(exc: BaseException, outputs: _Outputs, run: TrackedRun | None) -> BaseException:
    """Clean up after `exc`; the exception to raise (ours as they are, others as a
    one-line BatchError)."""
    outputs.abort()
    if run is not None:
        end_run_failed(run, exc)
    if isinstance(exc, (ContractFileError, BatchError, KeyboardInterrupt, SystemExit)):
        return exc
    return BatchError(_one_line(exc))


def _result(files: _Files, options: ScoreOptions, lm, tally: Tally, drift: pd.DataFrame, problems: pd.DataFrame,
            timings: dict[str, float]) -> BatchResult:
    """The answer of a completed job (its run id is added once the run is finished)."""
    return BatchResult(out=files.out, rejects=files.rejects, report=files.report, rows_read=tally.read,
                       rows_scored=tally.scored, rows_rejected=tally.rejected, unknown_columns=tally.unknown_columns,
                       drift=drift, problems_by_rule=problems, model_uri=lm.uri, model_name=lm.name,
                       model_version=lm.version, run_id=None, engine=options.engine, explain=options.explain,
                       timings=timings)


def score_file(path: str | os.PathLike, out: str | os.PathLike, options: ScoreOptions | None = None, *,
               rejects: str | os.PathLike | None = None, report: str | os.PathLike | None | bool = True,
               loaded=None, client=None, progress: Progress | None = None) -> BatchResult:
    """Score `path` into `out` (+ rejects, + cohort report, + an MLflow run).

    `options` holds the settings (`ScoreOptions()`: the `eih score` defaults). `rejects`
    defaults to `<out stem>.rejects.csv`; `report=True` writes `<out stem>.report.html`,
    a path writes there, False/None: no HTML file (it is still logged to MLflow when
    `options.log_mlflow`). `loaded` is a model already loaded (else `options.model` is
    loaded), `client` an existing Dask client for the dask engine, `progress` receives
    the row count and each chunk's progress.

    Raises ContractFileError (unreadable input, bad paths), ModelNotAvailable /
    ContractVersionError (model), BatchError (anything during the job); on any failure
    no output or rejects file is left behind (only complete files are renamed in place).
    """
    from model_runtime.loading import load_model

    t_start = time.perf_counter()
    options = options if options is not None else ScoreOptions()
    files = _Files.resolve(path, out, rejects, report)
    check_paths(files.input, files.out, files.rejects, files.report)
    lm = loaded if loaded is not None else load_model(options.model)
    predictor = lm.predictor
    timings = {"load_s": time.perf_counter() - t_start}

    t = time.perf_counter()
    n_total, dup_ids = scan_ids(files.input, max(options.chunk_rows, 200_000))
    timings["scan_s"] = time.perf_counter() - t
    if progress is not None:
        progress.start(n_total)
    chunk_opts = ChunkOptions(explain=options.explain, top_k=options.top_k,
                              sample_rate=min(1.0, SAMPLE_ROWS / max(n_total, 1)), seed=options.seed)
    schema = output_schema(predictor.outputs, predictor.fields, options.explain, options.top_k, change_columns(predictor))
    run = start_run(options, lm, files.input) if options.log_mlflow else None

    outputs = _Outputs(files)
    agg = Aggregates(predictor.fields, predictor.outputs)
    with ExitStack() as cleanup:
        try:
            outputs.open(schema)
            t = time.perf_counter()
            results = _results(files, options, predictor, dup_ids, chunk_opts, schema, client, cleanup)
            tally = _collect(results, outputs, agg, progress)
            timings["score_s"] = time.perf_counter() - t
            _check_counts(tally, n_total)
            outputs.table.close()
            t = time.perf_counter()
            drift, problems = drift_table(agg, predictor), problems_table(agg)
            html = None
            if files.report is not None or run is not None:
                html = report_html(lm, files.input, options, tally, agg, drift, problems)
            outputs.commit(html)
            timings["report_s"] = time.perf_counter() - t
        except BaseException as exc:
            failure = _fail(exc, outputs, run)
            if failure is exc:
                raise
            raise failure from exc

    timings["total_s"] = time.perf_counter() - t_start
    result = _result(files, options, lm, tally, drift, problems, timings)
    if run is not None:
        result.run_id = finish_run(run, result, agg, html)
    return result
