"""Batch scoring of cohort files: every row predicted and explained, or rejected with its
reasons; on this machine or on a Dask cluster.

    score_file(path, out, ScoreOptions(...))  ->  BatchResult

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

One module per job: `options` (settings, result, error, levels), `job` (`score_file`,
the orchestration), `chunk` (one chunk: validate, score, explain), `aggregates` (the
mergeable sums, drift and rejected-rows tables), `writers` (file names and checks, the
output schema, the `.partial` writers), `scan` (the subject_id pass), `engines` (local
threads and Dask) and `tracking` (the MLflow run and the report's HTML).

Nothing here logs a record value: MLflow gets counts, distributions and PSI only.
"""

from serving.batch.aggregates import Aggregates, Tally, drift_table, problems_table
from serving.batch.chunk import ChunkResult, score_chunk
from serving.batch.engines import make_client, model_payload, run_dask, run_local, worker_predictor
from serving.batch.job import score_file
from serving.batch.options import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_TOP_K,
    ENGINES,
    EXPLAIN_MODES,
    GROUPS,
    INTENSITY_BANDS,
    P_BINS,
    PROTOCOLS,
    RISK_LEVELS,
    SAMPLE_ROWS,
    BatchError,
    BatchResult,
    ChunkOptions,
    Progress,
    ScoreOptions,
)
from serving.batch.scan import scan_ids
from serving.batch.writers import (
    build_table,
    check_paths,
    default_rejects_path,
    default_report_path,
    output_schema,
    partial_path,
)

__all__ = [
    "DEFAULT_CHUNK_ROWS", "DEFAULT_TOP_K", "ENGINES", "EXPLAIN_MODES", "GROUPS", "INTENSITY_BANDS", "P_BINS",
    "PROTOCOLS", "RISK_LEVELS", "SAMPLE_ROWS", "Aggregates", "BatchError", "BatchResult", "ChunkOptions",
    "ChunkResult", "Progress", "ScoreOptions", "Tally", "build_table", "check_paths", "default_rejects_path",
    "default_report_path", "drift_table", "make_client", "model_payload", "output_schema", "partial_path",
    "problems_table", "run_dask", "run_local", "scan_ids", "score_chunk", "score_file",
    "worker_predictor",
]
