"""`eih recommend`'s job: the best protocols of every person of a cohort file.

    recommend_file(path, out, RecommendOptions(...))  ->  RecommendResult

Rows are read in chunks and checked by the contract as `eih score` checks them (the same
rejects file and counts: rows read = people recommended for + rejected). A row may leave
the protocol fields empty (or the columns out): the rest of the row is checked with a
placeholder protocol that is never scored; a row with only some protocol fields is
rejected for the missing ones. Each chunk's people are scored over the whole grid in one
`inplace_predict` per booster (`serving.recommend.GridScorer`) and ranked within the
constraints, vectorized.

Output, in input order: one row per person and rank (`subject_id, rank,
exercise_modality, exercise_intensity_pct, exercise_duration_min, p_hypoalgesia,
p_no_change, p_hyperalgesia, benefit, ranking_benefit, the expected change, its spread and
intervals (see serving.batch.writers.change_columns), warnings`); `top=None` lists every grid protocol
within the constraints, best first, so anyone can audit the ranking. A person for whom
no protocol meets the constraints gets one row with an empty rank and protocol. Files
are written as `NAME.partial` and renamed when complete; the job is one MLflow run
(settings, counts, the share of each modality at rank 1, how protocols were assigned in
the model's training data), never a record value.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.fields import RESPONSES
from serving.batch.writers import change_arrays, change_columns
from serving.recommend import HYPER, PRIOR_MODALITIES, PROTOCOL_FIELDS, TIE_DECIMALS, Constraints, GridScorer, benefit

PLACEHOLDER = {"exercise_modality": "aerobic", "exercise_intensity_pct": 60.0, "exercise_duration_min": 20.0}
DEFAULT_CHUNK_PEOPLE = 5_000
PRIOR_NOTE = "effect rests on priors (almost no acute EIH data)"
OUTPUT_SCHEMA = pa.schema([
    pa.field("subject_id", pa.string(), nullable=False), pa.field("rank", pa.int32()),
    pa.field("exercise_modality", pa.string()), pa.field("exercise_intensity_pct", pa.float64()),
    pa.field("exercise_duration_min", pa.float64()),
    *[pa.field(f"p_{r}", pa.float64()) for r in RESPONSES],
    pa.field("benefit", pa.float64()), pa.field("ranking_benefit", pa.float64()), pa.field("warnings", pa.string()),
])


def output_schema(predictor) -> pa.Schema:
    """`OUTPUT_SCHEMA` plus, for a model of the change, its expected change, spread and
    prediction intervals at each recommended protocol (`serving.batch.writers.change_columns`)."""
    extra = [pa.field(c, pa.float64()) for c in change_columns(predictor)]
    return pa.schema(list(OUTPUT_SCHEMA)[:-1] + extra + [OUTPUT_SCHEMA.field("warnings")])


@dataclass(frozen=True)
class RecommendOptions:
    """How `recommend_file` works; every field has the `eih recommend` default."""

    top: int | None = 3
    constraints: Constraints = field(default_factory=Constraints)
    model: str | None = None
    chunk_rows: int = DEFAULT_CHUNK_PEOPLE
    experiment: str = "eih-recommend"
    log_mlflow: bool = True

    def __post_init__(self) -> None:
        if self.top is not None and self.top < 1:
            raise ValueError("top must be at least 1 (or all)")
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")


@dataclass
class RecommendResult:
    """What a finished job wrote and counted."""

    out: Path
    rejects: Path
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    people_without_protocol: int = 0
    output_rows: int = 0
    grid_size: int = 0
    rank1_modality: dict[str, int] = field(default_factory=dict)
    rank1_benefit_sum: float = 0.0
    unknown_columns: list[str] = field(default_factory=list)
    problems_by_rule: dict[tuple[str, str], int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    protocols: str = "unknown"
    model_uri: str = ""
    model_version: str | None = None
    run_id: str | None = None

    @property
    def pairs_per_s(self) -> float:
        """Person-protocol pairs scored per second of the scoring phase."""
        t = self.timings.get("score_s", 0.0)
        return self.rows_scored * self.grid_size / t if t > 0 else float("nan")


def check_files(path: Path, out: Path, rejects: Path) -> None:
    """One-line ContractFileError for anything wrong with the files, before any work (the
    protocol columns may be absent)."""
    from data_contracts.io import SUFFIXES, file_format, missing_columns_message, read_header
    from data_contracts.validate import ContractFileError

    file_format(path)
    if not path.exists():
        raise ContractFileError(f"{path.name}: no such file")
    if out.suffix.lower() not in SUFFIXES:
        raise ContractFileError(f"{out.name}: the output must be a .csv or .parquet file")
    if rejects.suffix.lower() != ".csv":
        raise ContractFileError(f"{rejects.name}: the rejects file is a .csv file")
    if len({path.resolve(), out.resolve(), rejects.resolve()}) != 3:
        raise ContractFileError("the input, output and rejects files must be different files")
    header = read_header(path)
    message = missing_columns_message(list(header.columns) + list(PROTOCOL_FIELDS))
    if message:
        raise ContractFileError(f"{header.name}: {message}")


def with_placeholder(frame: pd.DataFrame) -> pd.DataFrame:
    """The chunk with a placeholder protocol where a row gives none (absent columns too)."""
    frame = frame.copy()
    for f in PROTOCOL_FIELDS:
        if f not in frame.columns:
            frame[f] = np.nan
    empty = np.ones(len(frame), dtype=bool)
    for f in PROTOCOL_FIELDS:
        col = frame[f]
        blank = col.isna().to_numpy()
        if col.dtype == object:
            blank |= col.astype("string").str.strip().fillna("").eq("").to_numpy()
        empty &= blank
    for f, v in PLACEHOLDER.items():
        if isinstance(v, str) or frame[f].dtype == object:
            frame[f] = frame[f].astype(object)
        frame.loc[empty, f] = v
    return frame


def ranked(P: np.ndarray, allowed: np.ndarray, top: int | None,
           score: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized ranking by `score` (default the benefit; as `serving.recommend.rank`): (person
    index, rank from 1, grid index) of every output row, people in order and ranks ascending;
    a person with nothing allowed gets rank 0 and grid index -1."""
    n, G = allowed.shape
    b = np.where(allowed, np.round(benefit(P) if score is None else score, TIE_DECIMALS), -np.inf)
    grid_order = np.broadcast_to(np.arange(G), (n, G))
    order = np.lexsort((grid_order, np.round(P[..., HYPER], TIE_DECIMALS), -b), axis=-1)
    k = allowed.sum(axis=1)
    keep = k if top is None else np.minimum(k, top)
    width = int(keep.max()) if n else 0
    ranks = np.arange(width)[None, :]
    take = ranks < keep[:, None]
    person = np.broadcast_to(np.arange(n)[:, None], (n, width))[take]
    g = order[:, :width][take]
    r = np.broadcast_to(ranks + 1, (n, width))[take]
    none = np.flatnonzero(keep == 0)
    if len(none):
        person = np.concatenate([person, none])
        r = np.concatenate([r, np.zeros(len(none), dtype=r.dtype)])
        g = np.concatenate([g, np.full(len(none), -1)])
        by = np.lexsort((r, person))
        person, r, g = person[by], r[by], g[by]
    return person, r, g


def protocol_warnings(gs: GridScorer) -> np.ndarray:
    """Per grid protocol, its warnings as text: a modality resting on priors, a value outside
    the range the model saw in training."""
    p = gs.predictor
    rows = np.full((len(gs.grid), len(p.fields)), np.nan)
    rows[:, gs.cols] = gs.values
    ranges = p.range_warnings_matrix(rows)
    out = []
    for g in range(len(gs.grid)):
        w = ([PRIOR_NOTE] if gs.grid.modality[g] in PRIOR_MODALITIES else []) + list(ranges[g])
        out.append("; ".join(w))
    return np.asarray(out + [""], dtype=object)  # index -1: no protocol


def chunk_table(gs: GridScorer, ids: pd.Series, X: np.ndarray, P: np.ndarray, margins: np.ndarray,
                options: RecommendOptions, proto_warn: np.ndarray) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The output rows of one chunk (`P`, `margins`: the grid's, from `GridScorer.score_margins`),
    with each row's person index and grid index (-1: none)."""
    allowed = options.constraints.mask(gs.grid, P[..., HYPER])
    score = gs.ranking_score(X, P)
    person, r, g = ranked(P, allowed, options.top, score)
    has = g >= 0
    gi = np.where(has, g, 0)
    probs = np.where(has[:, None], P[person, gi], np.nan)
    ranking = np.where(has, score[person, gi], np.nan)
    person_warn = np.asarray(["; ".join(w) for w in gs.predictor.range_warnings_matrix(_no_protocol(X, gs.cols))],
                             dtype=object)
    warn = [_join(a, b) for a, b in zip(person_warn[person], proto_warn[g], strict=True)]
    grid = gs.grid
    cols = [
        pa.array(ids.astype("str").to_numpy(dtype=object)[person], pa.string()),
        pa.array(r.astype("int32"), pa.int32(), mask=~has),
        pa.array(np.where(has, grid.modality[gi], None), pa.string()),
        pa.array(np.where(has, grid.intensity[gi], np.nan), pa.float64(), from_pandas=True),
        pa.array(np.where(has, grid.duration[gi], np.nan), pa.float64(), from_pandas=True),
        *[pa.array(probs[:, k], pa.float64(), from_pandas=True) for k in range(len(RESPONSES))],
        pa.array(probs[:, 0] - probs[:, HYPER], pa.float64(), from_pandas=True),
        pa.array(ranking, pa.float64(), from_pandas=True),
        *[pa.array(np.where(has, v, np.nan), pa.float64(), from_pandas=True)
          for v in change_arrays(gs.predictor, margins[person, gi], np.asarray(gs.predictor.condition_names(X))[person])],
        pa.array(warn, pa.string()),
    ]
    return pa.Table.from_arrays(cols, schema=output_schema(gs.predictor)), r, g



def _no_protocol(X: np.ndarray, cols: list[int]) -> np.ndarray:
    out = X.copy()
    out[:, cols] = np.nan
    return out


def _join(a: str, b: str) -> str:
    return "; ".join(s for s in (a, b) if s)


def score_chunk(gs: GridScorer, frame: pd.DataFrame, row_offset: int, duplicate_ids, options: RecommendOptions,
                proto_warn: np.ndarray, result: RecommendResult) -> tuple[pa.Table, pd.DataFrame]:
    """Validate one chunk, recommend for its valid rows, count into `result`; (table, problems)."""
    from data_contracts.validate import validate_frame

    report = validate_frame(with_placeholder(frame), row_offset=row_offset, duplicate_ids=duplicate_ids)
    valid = report.valid
    result.rows_read += report.n_rows
    result.rows_rejected += report.n_rejected
    if not result.unknown_columns:
        result.unknown_columns = list(report.unknown_columns)
    if len(report.problems):
        rule = report.problems["problem"].str.split(";", n=1).str[0]
        for key, c in pd.DataFrame({"f": report.problems["field"], "r": rule}).groupby(["f", "r"]).size().items():
            result.problems_by_rule[key] = result.problems_by_rule.get(key, 0) + int(c)
    if not len(valid):
        return output_schema(gs.predictor).empty_table(), report.problems
    p = gs.predictor
    X = p.frame_matrix(p.transform(valid))
    t = time.perf_counter()
    P, margins = gs.score_margins(X)
    result.timings["score_s"] = result.timings.get("score_s", 0.0) + time.perf_counter() - t
    table, r, g = chunk_table(gs, valid["subject_id"], X, P, margins, options, proto_warn)
    result.rows_scored += len(valid)
    result.output_rows += table.num_rows
    result.people_without_protocol += int((r == 0).sum())
    first = r == 1
    for m, c in zip(*np.unique(gs.grid.modality[g[first]], return_counts=True), strict=True):
        result.rank1_modality[str(m)] = result.rank1_modality.get(str(m), 0) + int(c)
    b = table.column("benefit").to_numpy(zero_copy_only=False)
    result.rank1_benefit_sum += float(np.nansum(b[first]))
    return table, report.problems


def _start_run(options: RecommendOptions, lm, path: Path, gs: GridScorer, protocols: str):
    """An MLflow run in `options.experiment` with the job's settings (no record value)."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    from model_runtime.settings import configure_mlflow, get_or_create_experiment

    configure_mlflow()
    client = MlflowClient()
    run = client.create_run(get_or_create_experiment(options.experiment), run_name=f"recommend {path.stem}"[:200],
                            tags={"eih.job": "recommend"})
    c = options.constraints
    params = {"model_uri": lm.uri, "model_name": lm.name, "model_version": lm.version, "input_file": path.name,
              "top": "all" if options.top is None else options.top, "grid_protocols": len(gs.grid),
              "modalities": ",".join(c.modalities) if c.modalities else "all", "max_intensity": c.max_intensity,
              "max_duration": c.max_duration, "max_hyperalgesia": c.max_hyperalgesia, "chunk_rows": options.chunk_rows}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items() if v is not None],
                     tags=[RunTag("protocols", protocols), RunTag("causal", str(protocols == "randomized").lower())])
    return client, run.info.run_id


def _finish_run(client, run_id: str, result: RecommendResult) -> None:
    from mlflow.entities import Metric

    n = max(result.rows_scored - result.people_without_protocol, 1)
    metrics = {"rows_read": result.rows_read, "rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected,
               "people_without_protocol": result.people_without_protocol, "output_rows": result.output_rows,
               "pairs_per_s": result.pairs_per_s, "mean_rank1_benefit": result.rank1_benefit_sum / n,
               **{f"rank1_share_{m}": c / n for m, c in result.rank1_modality.items()}, **result.timings}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v])
    client.set_terminated(run_id, status="FINISHED")


def recommend_file(path: str | os.PathLike, out: str | os.PathLike, options: RecommendOptions | None = None, *,
                   rejects: str | os.PathLike | None = None, loaded=None, progress=None) -> RecommendResult:
    """Recommend protocols for every valid row of `path` into `out` (+ rejects, + an MLflow run).

    Raises ContractFileError (files), ModelNotAvailable (model), PrescriptionRefused (a model
    that cannot choose a protocol), BatchError (anything during the job; nothing is left behind)."""
    from data_contracts.io import iter_table, read_header
    from model_runtime.loading import load_model
    from serving.batch import BatchError, default_rejects_path, scan_ids
    from serving.batch.writers import RejectsWriter, TableWriter
    from serving.recommend import protocols_of

    t0 = time.perf_counter()
    options = options or RecommendOptions()
    path, out = Path(path), Path(out)
    rejects = Path(rejects) if rejects else default_rejects_path(out)
    check_files(path, out, rejects)
    lm = loaded if loaded is not None else load_model(options.model)
    gs = GridScorer(lm.predictor)
    result = RecommendResult(out, rejects, grid_size=len(gs.grid), protocols=protocols_of(lm.predictor.meta),
                             model_uri=lm.uri, model_version=lm.version)
    n_total, dup_ids = scan_ids(path)
    if progress is not None:
        progress.start(n_total)
    proto_warn = protocol_warnings(gs)
    run = _start_run(options, lm, path, gs, result.protocols) if options.log_mlflow else None
    table_w, rejects_w = TableWriter(out, output_schema(gs.predictor)), RejectsWriter(rejects)
    try:
        offset = 0
        columns = read_header(path).columns  # every column: the protocol ones may be absent
        for frame in iter_table(path, options.chunk_rows, columns=columns):
            table, problems = score_chunk(gs, frame, offset, dup_ids, options, proto_warn, result)
            table_w.write(table)
            rejects_w.write(problems)
            offset += len(frame)
            if progress is not None:
                progress.advance(len(frame), offset)
        if result.rows_read != n_total or result.rows_read != result.rows_scored + result.rows_rejected:
            raise BatchError("row counts do not add up; nothing written")
        rejects_w.commit()
        table_w.commit()
    except BaseException as exc:
        table_w.abort()
        rejects_w.abort()
        if run is not None:
            run[0].set_terminated(run[1], status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, (BatchError, KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "ContractFileError":
            raise
        raise BatchError(f"recommending failed ({type(exc).__name__})") from exc
    result.timings["total_s"] = time.perf_counter() - t0
    if run is not None:
        _finish_run(*run, result)
        result.run_id = run[1]
    return result
