"""The vocabulary of a batch job: the settings a caller chooses (`ScoreOptions`), the
few of them every chunk needs (`ChunkOptions`, sent to each Dask task), the answer
(`BatchResult`), the one error of a job that started (`BatchError`), the progress
callback protocol and the fixed levels the outputs and aggregates are counted in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from data_contracts.fields import BY_NAME, RESPONSES

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


@dataclass(frozen=True)
class ScoreOptions:
    """How `score_file` scores a file; every field has the `eih score` default.

    `model` is an MLflow model URI (None: the registered @champion), used only when no
    loaded model is passed in. `scheduler` and `workers` apply to the Dask engine only
    (an existing cluster's address, or the size of a LocalCluster). `seed` fixes the
    random sample behind the beeswarm and, with explain "none", the attribution drift.
    Invalid values raise ValueError when the options are built, before any work.
    """

    explain: str = "top"
    top_k: int = DEFAULT_TOP_K
    engine: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    model: str | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    experiment: str = "eih-batch"
    log_mlflow: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.explain not in EXPLAIN_MODES:
            raise ValueError(f"explain must be one of {', '.join(EXPLAIN_MODES)}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")


@dataclass(frozen=True)
class ChunkOptions:
    """What scoring one chunk needs besides the model and the rows: small and picklable,
    because the Dask engine sends it with every task."""

    explain: str
    top_k: int
    sample_rate: float
    seed: int


class Progress(Protocol):
    """Receives the job's progress: `start` once the row count is known, then `advance`
    after each chunk is written (rows in that chunk, rows written so far)."""

    def start(self, total: int) -> None:
        """The number of data rows in the file, known after the subject_id pass."""

    def advance(self, n: int, done: int) -> None:
        """`n` more rows written, `done` in all."""


@dataclass
class BatchResult:
    """What a finished job wrote and found: files, counts, drift, model, timings."""

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
        """Rows read per second of the scoring phase (NaN before it was timed)."""
        t = self.timings.get("score_s", 0.0)
        return self.rows_read / t if t > 0 else float("nan")

    @property
    def drift_flags(self) -> list[str]:
        """Names of the inputs and attributions whose PSI is above the flag level."""
        return list(self.drift.loc[self.drift["flag"], "name"]) if len(self.drift) else []
