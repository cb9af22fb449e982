"""The engines that run `score_chunk` over the input's chunks: `run_local` (a few threads
of this process) and `run_dask` (one task per chunk on a Dask cluster, the model sent
to each worker once). Both yield ChunkResults in input order. Also the chunk reader, its
read-ahead thread and the Dask client."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from data_contracts.io import iter_table
from serving.batch.chunk import ChunkResult, score_chunk
from serving.batch.options import BatchError, ChunkOptions


# ------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------
def read_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """(chunk index, data rows before it, rows) over the input file."""
    offset = 0
    for i, frame in enumerate(iter_table(path, chunk_rows)):
        yield i, offset, frame
        offset += len(frame)


def prefetch(it: Iterator, depth: int = 1) -> Iterator:
    """Read the next chunk in a background thread while this one is scored (file
    decoding releases the GIL much of the time; XGBoost always does)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run():
        """The reader thread: items, then "end", or the reader's exception."""
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


# ------------------------------------------------------------------------------------
# local
# ------------------------------------------------------------------------------------
_VALIDATE_LOCK = threading.Lock()


def run_local(predictor, chunks: Iterator, duplicate_ids, opts: ChunkOptions, schema: pa.Schema,
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
        for i, offset, frame in prefetch(chunks):
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


# ------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------
_WORKER_MODELS: dict[str, object] = {}
_WORKER_LOCK = threading.Lock()


def model_payload(predictor) -> dict:
    """What a Dask worker needs to rebuild the predictor: its payload and a digest (sent once)."""
    payload = predictor.to_payload()
    digest = hashlib.sha256(b"".join(payload["outputs"]) + payload["meta"].encode()).hexdigest()[:16]
    return {**payload, "digest": digest}


def worker_predictor(payload: dict, nthread: int = 1):
    """The predictor on this worker, built once per worker process from the payload."""
    with _WORKER_LOCK:
        pred = _WORKER_MODELS.get(payload["digest"])
        if pred is None:
            from model_runtime.predictor import EIHPredictor

            pred = EIHPredictor.from_payload(payload)
            pred.set_threads(nthread)
            _WORKER_MODELS.clear()
            _WORKER_MODELS[payload["digest"]] = pred
        return pred


def _score_chunk_remote(payload, duplicate_ids, frame, index, offset, opts, schema):
    """The Dask task: one chunk scored by this worker's predictor."""
    return score_chunk(worker_predictor(payload), frame, index, offset, duplicate_ids, opts, schema)


def run_dask(client, predictor, chunks: Iterator, duplicate_ids, opts: ChunkOptions, schema: pa.Schema,
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


def make_client(scheduler: str | None, workers: int | None):
    """(client, cluster or None): an existing cluster by scheduler address, or a
    LocalCluster of `workers` single-threaded processes (default one per core)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except Exception as exc:  # noqa: BLE001 - one line for the user
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__})") from None
    cluster = LocalCluster(n_workers=workers or max(1, os.cpu_count() or 1), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster
