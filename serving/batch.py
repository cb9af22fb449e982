"""Batch scoring of cohort files: every row predicted and explained, or rejected with its
reasons; on this machine or on a Dask cluster.

    score_file(path, out, ...)  ->  BatchResult

The job, in order:

1. Read the model once (`model_runtime.loading.load_model`, default @champion); refuse a model
   of another contract major version.
2. A cheap first pass over the subject_id column only (8 bytes of hash per row) finds the
   ids that occur more than once anywhere in the file; the contract rejects every copy,
   so each chunk is validated knowing them (`validate_frame(duplicate_ids=...)`). The
   pass also gives the row count for the progress bar.
3. The file is streamed in chunks of `chunk_rows`. Each chunk is validated by the
   contract (`validate_frame`, the same rules and rejects format as `eih validate`),
   its valid rows are predicted and explained by `EIHPredictor` (the artifact the HTTP
   service serves), and mergeable aggregates are computed beside it (drift bin counts
   of every input field and every attribution against the model's training reference,
   the prediction distribution, per-group counts, mean |contribution|, a small random
   sample for the beeswarm). Locally the chunks run in this process; with Dask each
   chunk is one task and the model reaches every worker once (scattered booster bytes).
4. Results come back in input order and are written sequentially to `<out>.partial`
   and `<rejects>.partial`; both are renamed only when everything is written and the
   counts add up (rows read = scored + rejected), so a crash never leaves a file that
   looks finished.
5. The batch is logged to MLflow as a run (model version, counts, prediction
   distribution, PSI drift of inputs and attributions flagged above 0.2) with the
   cohort report (`serving.cohort_report`, one self-contained HTML page) as artifact.

Nothing here logs a record value: MLflow gets counts, distributions and PSI only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.fields import BY_NAME, RESPONSES
from data_contracts.io import SUFFIXES, file_format, iter_table, read_columns
from data_contracts.validate import ContractFileError, missing_required, subject_ids, validate_frame
from features.derived import kind

log = logging.getLogger(__name__)

EXPLAIN_MODES = ("none", "top", "full")
ENGINES = ("local", "dask")
DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_TOP_K = 5
SAMPLE_ROWS = 2_000
"""Rows drawn at random (seeded, per chunk) for the beeswarm picture and, with
`--explain none`, for attribution drift and the main drivers."""
P_BINS = 20
GROUPS = ("pain_condition", "exercise_modality", "protocol")
INTENSITY_BANDS = ("<50 %", "50-79 %", ">=80 %")
PROTOCOLS = tuple(f"{m} {b}" for m in BY_NAME["exercise_modality"].categories for b in INTENSITY_BANDS)
RISK_LEVELS = ("low", "moderate", "high")
HYPER = RESPONSES.index("hyperalgesia")


class BatchError(RuntimeError):
    """The job failed (exit 1); the message is one line and quotes no record value."""


class InjectedFault(RuntimeError):
    """Raised on purpose by `ScoreOptions.fault_at_chunk` (tests)."""


# ------------------------------------------------------------------------------------
# options, aggregates, chunk results
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreOptions:
    explain: str = "top"
    top_k: int = DEFAULT_TOP_K
    sample_rate: float = 0.0
    seed: int = 0
    fault_at_chunk: int | None = None  # tests: raise InjectedFault in this chunk


@dataclass
class Aggregates:
    """Everything the drift metrics and the cohort report need, as sums that merge
    chunk by chunk (so memory stays bounded and Dask gives the same numbers)."""

    fields: tuple[str, ...]
    outputs: tuple[str, ...]
    input_counts: dict[str, np.ndarray] = field(default_factory=dict)
    input_missing: dict[str, int] = field(default_factory=dict)
    attr_counts: dict[str, np.ndarray] = field(default_factory=dict)
    abs_contrib_sum: np.ndarray | None = None  # (K, F)
    n_contrib: int = 0
    pred_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(RESPONSES), dtype="int64"))
    risk_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(RISK_LEVELS), dtype="int64"))
    p_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(RESPONSES)))
    p_hist: np.ndarray = field(default_factory=lambda: np.zeros((len(RESPONSES), P_BINS), dtype="int64"))
    group_n: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L,)
    group_pred: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L, 3)
    group_psum: dict[str, np.ndarray] = field(default_factory=dict)  # group -> (L, 3)
    problems_by_rule: Counter = field(default_factory=Counter)  # (field, rule) -> rows
    sample_contrib: list[np.ndarray] = field(default_factory=list)  # (n_s, K, F)
    sample_values: list[np.ndarray] = field(default_factory=list)  # (n_s, F), numbers only

    def merge(self, other: Aggregates) -> None:
        for name, c in other.input_counts.items():
            self.input_counts[name] = self.input_counts[name] + c if name in self.input_counts else c.copy()
        for name, c in other.input_missing.items():
            self.input_missing[name] = self.input_missing.get(name, 0) + c
        for name, c in other.attr_counts.items():
            self.attr_counts[name] = self.attr_counts[name] + c if name in self.attr_counts else c.copy()
        if other.abs_contrib_sum is not None:
            self.abs_contrib_sum = (other.abs_contrib_sum.copy() if self.abs_contrib_sum is None
                                    else self.abs_contrib_sum + other.abs_contrib_sum)
        self.n_contrib += other.n_contrib
        self.pred_counts += other.pred_counts
        self.risk_counts += other.risk_counts
        self.p_sum += other.p_sum
        self.p_hist += other.p_hist
        for g in other.group_n:
            if g in self.group_n:
                self.group_n[g] += other.group_n[g]
                self.group_pred[g] += other.group_pred[g]
                self.group_psum[g] += other.group_psum[g]
            else:
                self.group_n[g] = other.group_n[g].copy()
                self.group_pred[g] = other.group_pred[g].copy()
                self.group_psum[g] = other.group_psum[g].copy()
        self.problems_by_rule.update(other.problems_by_rule)
        self.sample_contrib += other.sample_contrib
        self.sample_values += other.sample_values


@dataclass
class ChunkResult:
    index: int
    table: pa.Table
    problems: pd.DataFrame
    n_read: int
    n_scored: int
    n_rejected: int
    unknown_columns: list[str]
    agg: Aggregates


# ------------------------------------------------------------------------------------
# the output table
# ------------------------------------------------------------------------------------
def output_schema(outputs: tuple[str, ...], fields: tuple[str, ...], explain: str, top_k: int) -> pa.Schema:
    """Columns of the scores file, in order (the same for every chunk and engine)."""
    cols = [pa.field("subject_id", pa.string(), nullable=False)]
    cols += [pa.field(f"p_{r}", pa.float64()) for r in RESPONSES]
    cols += [pa.field("predicted_response", pa.string()), pa.field("hyperalgesia_risk", pa.string())]
    if explain == "top":
        for i in range(1, min(top_k, len(fields)) + 1):
            cols += [pa.field(f"top{i}_field", pa.string()), pa.field(f"top{i}_contribution", pa.float64()),
                     pa.field(f"top{i}_toward", pa.string())]
    elif explain == "full":
        for o in outputs:
            cols += [pa.field(f"margin_{o}", pa.float64()), pa.field(f"base_{o}", pa.float64())]
            cols += [pa.field(f"contrib_{o}__{f}", pa.float64()) for f in fields]
    return pa.schema(cols)


def _labels(codes: np.ndarray, labels: tuple[str, ...] | list[str]) -> pa.Array:
    """Strings from integer codes without a Python loop (dictionary array, then cast)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype="int32")), pa.array(list(labels), pa.string())).cast(pa.string())


def build_table(ids: pd.Series, P: np.ndarray, risk: np.ndarray, ex, explain: str, top_k: int,
                schema: pa.Schema) -> pa.Table:
    """The output rows of one chunk (vectorized; `ex` is the predictor's Explanation)."""
    from serving.explain import top_fields

    cols: list[pa.Array] = [pa.array(ids.astype("str").to_numpy(dtype=object), pa.string())]
    cols += [pa.array(np.ascontiguousarray(P[:, k], dtype="float64")) for k in range(len(RESPONSES))]
    cols.append(_labels(P.argmax(axis=1), RESPONSES))
    cols.append(_labels(risk, RISK_LEVELS))
    if explain == "top":
        idx, val, tow = top_fields(ex.contributions, top_k)
        for j in range(idx.shape[1]):
            cols += [_labels(idx[:, j], ex.fields), pa.array(np.ascontiguousarray(val[:, j], dtype="float64")),
                     _labels(tow[:, j], RESPONSES)]
    elif explain == "full":
        for k in range(len(ex.outputs)):
            cols += [pa.array(np.ascontiguousarray(ex.margins[:, k], dtype="float64")),
                     pa.array(np.ascontiguousarray(ex.base[:, k], dtype="float64"))]
            cols += [pa.array(np.ascontiguousarray(ex.contributions[:, k, j], dtype="float64"))
                     for j in range(len(ex.fields))]
    return pa.Table.from_arrays(cols, schema=schema)


def risk_codes(predictor, p_hyper: np.ndarray) -> np.ndarray:
    """0/1/2 = low/moderate/high, by the model's own cut-offs (same as `risk_level`)."""
    lo, hi = predictor.meta.risk_cutoffs["moderate"], predictor.meta.risk_cutoffs["high"]
    return np.where(p_hyper >= hi, 2, np.where(p_hyper >= lo, 1, 0))


# ------------------------------------------------------------------------------------
# one chunk: validate, score, explain, aggregate (runs here or on a Dask worker)
# ------------------------------------------------------------------------------------
def _group_codes(valid: pd.DataFrame) -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    for g in ("pain_condition", "exercise_modality"):
        out[g] = (np.asarray(valid[g].cat.codes, dtype="int64"), len(BY_NAME[g].categories))
    inten = valid["exercise_intensity_pct"].to_numpy(dtype="float64")
    band = np.where(inten >= 80, 2, np.where(inten >= 50, 1, 0))
    out["protocol"] = (out["exercise_modality"][0] * len(INTENSITY_BANDS) + band, len(PROTOCOLS))
    return out


def score_chunk(predictor, frame: pd.DataFrame, index: int, row_offset: int, duplicate_ids,
                opts: ScoreOptions, schema: pa.Schema, validate_lock=None) -> ChunkResult:
    """Validate and score one chunk; the unit of work of both engines."""
    from contextlib import nullcontext

    from features.reference import bin_counts

    if opts.fault_at_chunk is not None and index == opts.fault_at_chunk:
        raise InjectedFault(f"injected fault in chunk {index}")
    with validate_lock or nullcontext():
        report = validate_frame(frame, row_offset=row_offset, duplicate_ids=duplicate_ids)
    valid = report.valid
    agg = Aggregates(predictor.fields, predictor.outputs)
    problems = report.problems
    if len(problems):
        rule = problems["problem"].str.split(";", n=1).str[0]
        per_row = pd.DataFrame({"row": problems["row"], "field": problems["field"], "rule": rule})
        agg.problems_by_rule.update(
            {(f, r): int(c) for (f, r), c in per_row.groupby(["field", "rule"], sort=True).size().items()}
        )
    n = len(valid)
    # random sample (seeded by chunk index, so both engines draw the same rows)
    rng = np.random.default_rng([opts.seed, index])
    u = rng.random(len(frame))
    sampled = (u < opts.sample_rate)[frame.index.isin(valid.index)]  # over the valid rows, in order

    if n:
        X = predictor.transform(valid)  # once: scoring, explanations, drift and the beeswarm sample
        if opts.explain == "none":
            P = predictor.proba(predictor.margins_of(X))
            ex = None
            contrib = predictor.explain_features(X.iloc[np.flatnonzero(sampled)]).contributions if sampled.any() else None
            sample_contrib = contrib
        else:
            ex = predictor.explain_features(X)
            P = predictor.proba(ex.margins)
            contrib = ex.contributions
            sample_contrib = contrib[sampled]
        risk = risk_codes(predictor, P[:, HYPER])
        table = build_table(valid["subject_id"], P, risk, ex, opts.explain, opts.top_k, schema)

        # prediction distribution
        pred = P.argmax(axis=1)
        agg.pred_counts += np.bincount(pred, minlength=len(RESPONSES))
        agg.risk_counts += np.bincount(risk, minlength=len(RISK_LEVELS))
        agg.p_sum += P.sum(axis=0)
        for k in range(len(RESPONSES)):
            agg.p_hist[k] += np.histogram(P[:, k], bins=P_BINS, range=(0.0, 1.0))[0]
        for g, (codes, levels) in _group_codes(valid).items():
            ok = codes >= 0
            c = codes[ok]
            agg.group_n[g] = np.bincount(c, minlength=levels)
            agg.group_pred[g] = np.bincount(c * len(RESPONSES) + pred[ok], minlength=levels * len(RESPONSES)).reshape(
                levels, len(RESPONSES))
            agg.group_psum[g] = np.stack([np.bincount(c, weights=P[ok, k], minlength=levels)
                                          for k in range(len(RESPONSES))], axis=1)
        # input drift against the training reference
        ref = predictor.reference
        for name in predictor.fields:
            col = X[name]
            agg.input_missing[name] = int(col.isna().sum())
            if name in ref:
                agg.input_counts[name] = bin_counts(ref[name], col.to_numpy(dtype="float64") if ref[name]["kind"] == "number" else col)
        # attribution drift and drivers (every row, or the sample with --explain none)
        if contrib is not None and len(contrib):
            aref = predictor.meta.attribution_reference
            for k, o in enumerate(predictor.outputs):
                for j, f in enumerate(predictor.fields):
                    r = aref.get(f"{o}__{f}")
                    if r is not None:
                        agg.attr_counts[f"{o}__{f}"] = bin_counts(r, contrib[:, k, j])
            agg.abs_contrib_sum = np.abs(contrib).sum(axis=0, dtype="float64")
            agg.n_contrib = len(contrib)
        if sample_contrib is not None and len(sample_contrib):
            agg.sample_contrib.append(np.asarray(sample_contrib, dtype="float32"))
            vals = np.full((len(sample_contrib), len(predictor.fields)), np.nan)
            Xs = X.iloc[np.flatnonzero(sampled)]
            for j, f in enumerate(predictor.fields):
                if kind(f) == "number":
                    vals[:, j] = Xs[f].to_numpy(dtype="float64")
            agg.sample_values.append(vals)
    else:
        table = schema.empty_table()
    return ChunkResult(index, table, problems, report.n_rows, n, report.n_rejected, report.unknown_columns, agg)


# ------------------------------------------------------------------------------------
# the first pass: row count and duplicated subject_ids, one column only
# ------------------------------------------------------------------------------------
def _iter_id_column(path: Path, chunk_rows: int) -> Iterator[pd.Series]:
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path, pre_buffer=False)  # bounded memory (see data_contracts.io)
            for b in pf.iter_batches(batch_size=chunk_rows, columns=["subject_id"]):
                yield b.to_pandas()["subject_id"]
        else:
            for frame in pd.read_csv(path, usecols=["subject_id"], dtype={"subject_id": "str"}, chunksize=chunk_rows):
                yield frame["subject_id"]
    except Exception as exc:  # noqa: BLE001 - a parser failure is a one-line reason
        raise ContractFileError(f"{path.name}: cannot be read as {fmt} ({type(exc).__name__})") from None


def _id_hashes(ids: pd.Series) -> tuple[pd.Series, np.ndarray]:
    ids = subject_ids(ids)
    ids = ids[ids.notna()]
    return ids, pd.util.hash_pandas_object(ids, index=False).to_numpy()


def scan_ids(path: str | os.PathLike, chunk_rows: int = 200_000) -> tuple[int, pd.Index]:
    """(number of data rows, subject_ids occurring more than once), reading only the
    subject_id column. Holds 8 bytes of hash per row; a second id-only pass (only when
    some hash repeats) confirms the duplicates exactly."""
    p = Path(path)
    n = 0
    parts: list[np.ndarray] = []
    for col in _iter_id_column(p, chunk_rows):
        n += len(col)
        parts.append(_id_hashes(col)[1])
    h = np.concatenate(parts) if parts else np.zeros(0, dtype="uint64")
    del parts
    h.sort()
    repeated = np.unique(h[1:][h[1:] == h[:-1]])
    del h
    if not len(repeated):
        return n, pd.Index([], dtype=object)
    cands = []
    for col in _iter_id_column(p, chunk_rows):
        ids, hh = _id_hashes(col)
        cands.append(ids[np.isin(hh, repeated)])
    c = pd.concat(cands, ignore_index=True)
    return n, pd.Index(c[c.duplicated(keep=False)].unique(), dtype=object)


# ------------------------------------------------------------------------------------
# writers: complete or absent
# ------------------------------------------------------------------------------------
def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class _TableWriter:
    """Writes the scores to `<out>.partial`; `commit` renames it to `<out>`."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.tmp = partial_path(path)
        self.fmt = file_format(path)
        self.schema = schema
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._w = pq.ParquetWriter(self.tmp, schema)
        else:
            import pyarrow.csv as pacsv

            self._w = pacsv.CSVWriter(self.tmp, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._w.write_table(table)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - cleaning up after a failure
            pass
        self.tmp.unlink(missing_ok=True)


class _RejectsWriter:
    def __init__(self, path: Path):
        from data_contracts.report import write_problems
        from data_contracts.validate import PROBLEM_COLUMNS

        self.path = path
        self.tmp = partial_path(path)
        self._write = write_problems
        write_problems(pd.DataFrame(columns=PROBLEM_COLUMNS), self.tmp)  # header, even with no problem

    def write(self, problems: pd.DataFrame) -> None:
        if len(problems):
            self._write(problems, self.tmp, append=True)

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------
# engines: both yield ChunkResults in input order
# ------------------------------------------------------------------------------------
def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, int, pd.DataFrame]]:
    offset = 0
    for i, frame in enumerate(iter_table(path, chunk_rows)):
        yield i, offset, frame
        offset += len(frame)


def _prefetch(it: Iterator, depth: int = 1) -> Iterator:
    """Read the next chunk in a background thread while this one is scored (file
    decoding releases the GIL much of the time; XGBoost always does)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(("error", exc))

    t = threading.Thread(target=run, name="eih-batch-reader", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


_VALIDATE_LOCK = threading.Lock()


def run_local(predictor, chunks: Iterator, duplicate_ids, opts: ScoreOptions, schema: pa.Schema,
              threads: int = 2) -> Iterator[ChunkResult]:
    """Chunks scored by a few threads of this process, results in input order.

    XGBoost releases the GIL, so while one chunk is in the booster the next one is
    validated; the cores are shared between the threads (nthread = cores / threads).
    Validation (pandas, GIL-bound) runs one chunk at a time."""
    from concurrent.futures import ThreadPoolExecutor

    cores = os.cpu_count() or 1
    threads = max(1, min(threads, cores))
    previous = getattr(predictor, "_nthread", -1)
    predictor.set_threads(max(1, cores // threads))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="eih-score")
    pending: deque = deque()
    completed = False
    try:
        for i, offset, frame in _prefetch(chunks):
            pending.append(pool.submit(score_chunk, predictor, frame, i, offset, duplicate_ids, opts, schema,
                                       _VALIDATE_LOCK))
            while len(pending) >= threads + 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        completed = True
    finally:
        # on a failure do not wait for a chunk still in the booster: the caller cleans up now
        pool.shutdown(wait=completed, cancel_futures=True)
        if completed:
            predictor.set_threads(previous)


_WORKER_MODELS: dict[str, object] = {}
_WORKER_LOCK = threading.Lock()


def model_payload(predictor) -> dict:
    """What a Dask worker needs to rebuild the predictor: booster bytes + meta (sent once)."""
    raw = bytes(predictor.booster.save_raw("ubj"))
    meta = predictor.meta.to_json()
    digest = hashlib.sha256(raw + meta.encode()).hexdigest()[:16]
    return {"booster": raw, "meta": meta, "digest": digest}


def worker_predictor(payload: dict, nthread: int = 1):
    """The predictor on this worker, built once per worker process from the payload."""
    with _WORKER_LOCK:
        pred = _WORKER_MODELS.get(payload["digest"])
        if pred is None:
            import xgboost as xgb

            from model_runtime.metadata import ModelMeta
            from model_runtime.predictor import EIHPredictor

            booster = xgb.Booster()
            booster.load_model(bytearray(payload["booster"]))
            pred = EIHPredictor(booster, ModelMeta.from_json(payload["meta"]))
            pred.set_threads(nthread)
            _WORKER_MODELS.clear()
            _WORKER_MODELS[payload["digest"]] = pred
        return pred


def _score_chunk_remote(payload, duplicate_ids, frame, index, offset, opts, schema):
    return score_chunk(worker_predictor(payload), frame, index, offset, duplicate_ids, opts, schema)


def run_dask(client, predictor, chunks: Iterator, duplicate_ids, opts: ScoreOptions, schema: pa.Schema,
             window: int | None = None) -> Iterator[ChunkResult]:
    """One task per chunk, at most `window` chunks in flight (bounded memory), results
    taken in input order. The model and the duplicate ids are broadcast once."""
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    window = window or 2 * n_workers + 1
    token = hashlib.sha256(os.urandom(8)).hexdigest()[:8]
    payload = client.scatter(model_payload(predictor), broadcast=True, hash=False)
    dups = client.scatter(duplicate_ids, broadcast=True, hash=False)
    pending: deque = deque()
    try:
        for i, offset, frame in chunks:
            data = client.scatter(frame, hash=False)
            pending.append(client.submit(_score_chunk_remote, payload, dups, data, i, offset, opts, schema,
                                         key=f"eih-score-{token}-{i}", pure=False))
            del data
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:
            client.cancel(list(pending))
        client.cancel([payload, dups])


# ------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    out: Path
    rejects: Path
    report: Path | None
    rows_read: int
    rows_scored: int
    rows_rejected: int
    unknown_columns: list[str]
    drift: pd.DataFrame
    problems_by_rule: pd.DataFrame
    model_uri: str
    model_name: str | None
    model_version: str | None
    run_id: str | None
    engine: str
    explain: str
    timings: dict[str, float]

    @property
    def rows_per_s(self) -> float:
        t = self.timings.get("score_s", 0.0)
        return self.rows_read / t if t > 0 else float("nan")

    @property
    def drift_flags(self) -> list[str]:
        return list(self.drift.loc[self.drift["flag"], "name"]) if len(self.drift) else []


def default_rejects_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejects.csv")


def default_report_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.report.html")


def check_paths(path: Path, out: Path, rejects: Path, report: Path | None) -> None:
    """One-line ContractFileError for anything wrong with the files, before any work."""
    file_format(path)
    if not path.exists():
        raise ContractFileError(f"{path.name}: no such file")
    if Path(out).suffix.lower() not in SUFFIXES:
        raise ContractFileError(f"{Path(out).name}: the output must be a .csv or .parquet file")
    if Path(rejects).suffix.lower() != ".csv":
        raise ContractFileError(f"{Path(rejects).name}: the rejects file is a .csv file")
    resolved = {Path(path).resolve(), Path(out).resolve(), Path(rejects).resolve()}
    if report is not None:
        resolved.add(Path(report).resolve())
    if len(resolved) != (4 if report is not None else 3):
        raise ContractFileError("the input, output, rejects and report files must be different files")
    missing = missing_required(read_columns(path))
    if missing:
        raise ContractFileError(f"{path.name}: missing required column(s): " + ", ".join(missing))


def drift_table(agg: Aggregates, predictor) -> pd.DataFrame:
    """PSI of every input field and every attribution against the training reference."""
    from features.reference import PSI_FLAG, psi_from_counts

    rows = []
    ref = predictor.reference
    n_scored = int(agg.pred_counts.sum())
    for f in predictor.fields:
        r = ref.get(f)
        counts = agg.input_counts.get(f)
        value = psi_from_counts(r, counts) if r is not None and counts is not None else None
        miss = agg.input_missing.get(f, 0) / n_scored if n_scored else None
        rows.append({"kind": "input", "name": f, "field": f, "output": "", "psi": value,
                     "missing_rate": miss, "reference_missing_rate": r.get("missing_rate") if r else None})
    aref = predictor.meta.attribution_reference
    for o in predictor.outputs:
        for f in predictor.fields:
            key = f"{o}__{f}"
            counts = agg.attr_counts.get(key)
            value = psi_from_counts(aref[key], counts) if key in aref and counts is not None else None
            rows.append({"kind": "attribution", "name": key, "field": f, "output": o, "psi": value,
                         "missing_rate": None, "reference_missing_rate": None})
    df = pd.DataFrame(rows)
    df["psi"] = df["psi"].astype("float64")
    df["flag"] = (df["psi"] > PSI_FLAG).fillna(False).astype(bool)
    return df


def problems_table(agg: Aggregates) -> pd.DataFrame:
    rows = [{"field": f, "problem": r, "count": c} for (f, r), c in agg.problems_by_rule.items()]
    df = pd.DataFrame(rows, columns=["field", "problem", "count"])
    return df.sort_values(["count", "field", "problem"], ascending=[False, True, True]).reset_index(drop=True)


def make_client(scheduler: str | None, workers: int | None):
    """A Dask client: an existing cluster by scheduler address, or a LocalCluster."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except Exception as exc:  # noqa: BLE001 - one line for the user
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__})") from None
    cluster = LocalCluster(n_workers=workers or max(1, os.cpu_count() or 1), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def score_file(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rejects: str | os.PathLike | None = None,
    report: str | os.PathLike | None | bool = True,
    explain: str = "top",
    top_k: int = DEFAULT_TOP_K,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    model: str | None = None,
    loaded=None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    experiment: str = "eih-batch",
    log_mlflow: bool = True,
    progress: Callable[[int, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    client=None,
    seed: int = 0,
    fault_at_chunk: int | None = None,
) -> BatchResult:
    """Score `path` into `out` (+ rejects, + cohort report, + an MLflow run).

    Raises ContractFileError (unreadable input, bad paths), ModelNotAvailable /
    ContractVersionError (model), BatchError (anything during the job); on any failure
    no output or rejects file is left behind (only complete files are renamed in place).
    `report=True` writes `<out stem>.report.html`; a path writes there; False/None: no
    HTML file (it is still logged to MLflow when `log_mlflow`).
    """
    from model_runtime.loading import load_model

    t_start = time.perf_counter()
    path, out = Path(path), Path(out)
    rejects = Path(rejects) if rejects else default_rejects_path(out)
    report_path = default_report_path(out) if report is True else (Path(report) if report else None)
    if explain not in EXPLAIN_MODES:
        raise ValueError(f"explain must be one of {', '.join(EXPLAIN_MODES)}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    check_paths(path, out, rejects, report_path)

    lm = loaded if loaded is not None else load_model(model)
    predictor = lm.predictor
    timings = {"load_s": time.perf_counter() - t_start}

    t = time.perf_counter()
    n_total, dup_ids = scan_ids(path, max(chunk_rows, 200_000))
    timings["scan_s"] = time.perf_counter() - t
    if on_total:
        on_total(n_total)
    opts = ScoreOptions(explain=explain, top_k=top_k, sample_rate=min(1.0, SAMPLE_ROWS / max(n_total, 1)),
                        seed=seed, fault_at_chunk=fault_at_chunk)
    schema = output_schema(predictor.outputs, predictor.fields, explain, top_k)

    run = None
    if log_mlflow:
        run = _start_run(experiment, lm, path, explain, top_k, engine, chunk_rows, scheduler, workers)

    writer = rejects_writer = None
    own_client = cluster = None
    agg = Aggregates(predictor.fields, predictor.outputs)
    n_read = n_scored = n_rejected = 0
    unknown: list[str] = []
    try:
        writer = _TableWriter(out, schema)
        rejects_writer = _RejectsWriter(rejects)
        t = time.perf_counter()
        chunks = _chunks(path, chunk_rows)
        if engine == "dask":
            if client is None:
                own_client, cluster = make_client(scheduler, workers)
            results = run_dask(client or own_client, predictor, _prefetch(chunks), dup_ids, opts, schema)
        else:
            results = run_local(predictor, chunks, dup_ids, opts, schema)
        for res in results:
            writer.write(res.table)
            rejects_writer.write(res.problems)
            agg.merge(res.agg)
            n_read += res.n_read
            n_scored += res.n_scored
            n_rejected += res.n_rejected
            if res.index == 0:
                unknown = res.unknown_columns
            if progress:
                progress(res.n_read, n_read)
        timings["score_s"] = time.perf_counter() - t
        if n_read != n_total or n_read != n_scored + n_rejected:
            raise BatchError(f"row counts do not add up (read {n_read} of {n_total}, scored {n_scored}, "
                             f"rejected {n_rejected}); nothing written")
        writer.close()
        t = time.perf_counter()
        drift = drift_table(agg, predictor)
        probs = problems_table(agg)
        html = None
        if report_path is not None or run is not None:
            html = _report_html(lm, path, agg, drift, probs, n_read, n_scored, n_rejected, explain, engine, unknown)
        if report_path is not None:
            tmp = partial_path(report_path)
            report_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(html, encoding="utf-8")
            os.replace(tmp, report_path)
        rejects_writer.commit()
        writer.commit()
        timings["report_s"] = time.perf_counter() - t
    except BaseException as exc:
        for w in (writer, rejects_writer):
            if w is not None:
                w.abort()
        if report_path is not None:
            partial_path(report_path).unlink(missing_ok=True)
        if run is not None:
            _end_run_failed(run, exc)
        if isinstance(exc, (ContractFileError, BatchError, KeyboardInterrupt, SystemExit)):
            raise
        raise BatchError(_one_line(exc)) from exc
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()

    timings["total_s"] = time.perf_counter() - t_start
    result = BatchResult(out=out, rejects=rejects, report=report_path, rows_read=n_read, rows_scored=n_scored,
                         rows_rejected=n_rejected, unknown_columns=unknown, drift=drift, problems_by_rule=probs,
                         model_uri=lm.uri, model_name=lm.name, model_version=lm.version, run_id=None,
                         engine=engine, explain=explain, timings=timings)
    if run is not None:
        result.run_id = _finish_run(run, result, agg, html)
    return result


def _one_line(exc: BaseException) -> str:
    """A failure reason without record values: our own messages in full, others by type."""
    if isinstance(exc, (InjectedFault, BatchError, ContractFileError)):
        return str(exc).splitlines()[0]
    name = type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory: use a smaller --chunk-rows"
    if isinstance(exc, OSError):
        return f"{name}: {exc.strerror or 'I/O error'}" + (f" ({Path(exc.filename).name})" if exc.filename else "")
    return f"scoring failed ({name})"


# ------------------------------------------------------------------------------------
# MLflow and the report
# ------------------------------------------------------------------------------------
def _report_html(lm, path, agg, drift, probs, n_read, n_scored, n_rejected, explain, engine, unknown) -> str:
    from serving.cohort_report import ReportData, render

    data = ReportData(
        input_name=Path(path).name, model_uri=lm.uri, model_name=lm.name, model_version=lm.version,
        model_run_id=lm.run_id, contract_version=lm.predictor.contract_version, explain=explain, engine=engine,
        rows_read=n_read, rows_scored=n_scored, rows_rejected=n_rejected, unknown_columns=list(unknown),
        problems=probs, agg=agg, drift=drift, responses=RESPONSES, risk_levels=RISK_LEVELS,
        risk_cutoffs=dict(lm.predictor.meta.risk_cutoffs),
        group_levels={"pain_condition": BY_NAME["pain_condition"].categories,
                      "exercise_modality": BY_NAME["exercise_modality"].categories, "protocol": PROTOCOLS},
        p_bins=P_BINS,
    )
    return render(data)


@dataclass
class _Run:
    client: object
    run_id: str


def _start_run(experiment, lm, path, explain, top_k, engine, chunk_rows, scheduler, workers) -> _Run:
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    from data_contracts.fields import CONTRACT_VERSION
    from model_runtime.settings import configure_mlflow, get_or_create_experiment

    configure_mlflow()
    exp_id = get_or_create_experiment(experiment)
    client = MlflowClient()
    run = client.create_run(exp_id, run_name=f"score {Path(path).stem}"[:200],
                            tags={"eih.job": "batch-score", "eih.input_format": file_format(path)})
    params = {
        "model_uri": lm.uri, "model_name": lm.name, "model_version": lm.version, "model_run_id": lm.run_id,
        "model_contract_version": lm.predictor.contract_version, "scorer_contract_version": CONTRACT_VERSION,
        "explain": explain, "top_k": top_k if explain == "top" else None, "engine": engine,
        "chunk_rows": chunk_rows, "dask_scheduler": (scheduler or "LocalCluster") if engine == "dask" else None,
        "dask_workers": workers if engine == "dask" and not scheduler else None, "input_file": Path(path).name,
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items() if v is not None],
                     tags=[RunTag("eih.model_version", str(lm.version))] if lm.version else [])
    return _Run(client, run.info.run_id)


def _end_run_failed(run: _Run, exc: BaseException) -> None:
    try:
        run.client.set_tag(run.run_id, "eih.failure", type(exc).__name__)
        run.client.set_terminated(run.run_id, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
    except Exception:  # noqa: BLE001 - never hide the real failure
        log.warning("could not close the MLflow run of the failed batch")


def _finish_run(run: _Run, result: BatchResult, agg: Aggregates, html: str) -> str:
    from mlflow.entities import Metric

    metrics = {
        "rows_read": result.rows_read, "rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected,
        "rows_per_s": result.rows_per_s, **{k: v for k, v in result.timings.items()},
    }
    n = max(result.rows_scored, 1)
    for k, r in enumerate(RESPONSES):
        metrics[f"predicted_{r}_share"] = agg.pred_counts[k] / n
        metrics[f"mean_p_{r}"] = agg.p_sum[k] / n
    for k, level in enumerate(RISK_LEVELS):
        metrics[f"hyperalgesia_risk_{level}_share"] = agg.risk_counts[k] / n
    for rec in result.drift.itertuples(index=False):
        if rec.psi == rec.psi:  # not NaN
            metrics[f"psi_{rec.kind}__{rec.name}"] = rec.psi
    metrics["drift_flags_input"] = int(result.drift.loc[result.drift["kind"] == "input", "flag"].sum())
    metrics["drift_flags_attribution"] = int(result.drift.loc[result.drift["kind"] == "attribution", "flag"].sum())
    metrics["attribution_rows"] = agg.n_contrib
    now = int(time.time() * 1000)
    run.client.log_batch(run.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "cohort_report.html").write_text(html, encoding="utf-8")
        result.drift.to_csv(d / "drift.csv", index=False)
        result.problems_by_rule.to_csv(d / "rejected_by_field_rule.csv", index=False)
        hist = pd.DataFrame(agg.p_hist.T, columns=[f"p_{r}" for r in RESPONSES])
        hist.insert(0, "bin_high", np.linspace(0, 1, P_BINS + 1)[1:])
        hist.insert(0, "bin_low", np.linspace(0, 1, P_BINS + 1)[:-1])
        hist.to_csv(d / "prediction_histogram.csv", index=False)
        summary = {
            "rows_read": result.rows_read, "rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected,
            "predicted_counts": dict(zip(RESPONSES, map(int, agg.pred_counts))),
            "hyperalgesia_risk_counts": dict(zip(RISK_LEVELS, map(int, agg.risk_counts))),
            "drift_flags": result.drift_flags, "unknown_columns": result.unknown_columns,
            "model": {"uri": result.model_uri, "name": result.model_name, "version": result.model_version},
            "explain": result.explain, "engine": result.engine, "timings": result.timings,
        }
        (d / "summary.json").write_text(json.dumps(summary, indent=1))
        run.client.log_artifacts(run.run_id, str(d), artifact_path="batch")
    run.client.set_terminated(run.run_id, status="FINISHED")
    return run.run_id
