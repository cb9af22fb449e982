"""Adaptive micro-batching for the HTTP service, without an added wait.

Requests queue up while the scoring thread is busy; when it is free it takes everything
waiting (up to `max_rows` records) as one batch. A lone request is scored at once (no
batching window, so the single-record path pays nothing), and under load the batch grows
by itself with the queue: one TreeSHAP call for 16 records costs far less than 16 calls.
Nothing is ever refused for an estimated wait (BentoML's batcher answers 503 when its
latency estimate exceeds `max_latency_ms`); BentoML's request timeout still applies.

One scoring thread per worker process: XGBoost releases the GIL, so the event loop keeps
accepting (and validating) requests while a batch is scored.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger("eih.serving")


class MicroBatcher:
    """`await submit(job, n_rows)` -> the job's result from `run(jobs) -> results`."""

    def __init__(self, run: Callable[[Sequence[Any]], Sequence[Any]], *, max_rows: int = 1024,
                 name: str = "eih-score") -> None:
        self.run = run
        self.max_rows = max_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.jobs = 0
        self.max_batch_rows = 0

    async def submit(self, job: Any, n_rows: int) -> Any:
        """Queue `job` (`n_rows` records, counted against `max_rows`) and return its result once
        the batch it joins is scored; an exception from `run` is raised to every job of that batch.
        Starts the scoring task when none is running."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._worker())
        fut = loop.create_future()
        self._pending.append((job, n_rows, fut))
        self._wakeup.set()
        return await fut

    def _take(self) -> list:
        batch = []
        rows = 0
        while self._pending:
            job, n, fut = self._pending[0]
            if batch and rows + n > self.max_rows:
                break
            self._pending.popleft()
            if fut.cancelled():  # the client went away while waiting
                continue
            batch.append((job, n, fut))
            rows += n
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                if not batch:
                    continue
                jobs = [b[0] for b in batch]
                try:
                    results = await loop.run_in_executor(self._executor, self.run, jobs)
                    if len(results) != len(jobs):  # pragma: no cover - a bug in run()
                        raise RuntimeError("batch returned a different number of results")
                except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                self.jobs += len(jobs)
                self.max_batch_rows = max(self.max_batch_rows, sum(b[1] for b in batch))
                for (_, _, fut), res in zip(batch, results):
                    if not fut.done():
                        fut.set_result(res)

    def close(self) -> None:
        """Stop the scoring task and the scoring thread; jobs still queued are not scored."""
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
