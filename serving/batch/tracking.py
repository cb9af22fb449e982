"""The job's record: the MLflow run (started before scoring, finished with metrics and
artifacts, or marked FAILED/KILLED) and the cohort report's HTML. MLflow gets settings,
counts, distributions and PSI only, never a record value."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, RESPONSES
from data_contracts.io import file_format
from serving.batch.aggregates import Aggregates, Tally
from serving.batch.options import P_BINS, PROTOCOLS, RISK_LEVELS, BatchResult, ScoreOptions

log = logging.getLogger(__name__)


def report_html(lm, path: Path, options: ScoreOptions, tally: Tally, agg: Aggregates, drift: pd.DataFrame,
                problems: pd.DataFrame) -> str:
    """The cohort report of the job (`serving.cohort_report`), one self-contained page."""
    from serving.cohort_report import ReportData, render

    data = ReportData(
        input_name=Path(path).name, model_uri=lm.uri, model_name=lm.name, model_version=lm.version,
        model_run_id=lm.run_id, contract_version=lm.predictor.contract_version, explain=options.explain,
        engine=options.engine, rows_read=tally.read, rows_scored=tally.scored, rows_rejected=tally.rejected,
        unknown_columns=list(tally.unknown_columns), problems=problems, agg=agg, drift=drift, responses=RESPONSES,
        risk_levels=RISK_LEVELS, risk_cutoffs=dict(lm.predictor.meta.risk_cutoffs),
        group_levels={"pain_condition": BY_NAME["pain_condition"].categories,
                      "exercise_modality": BY_NAME["exercise_modality"].categories, "protocol": PROTOCOLS},
        p_bins=P_BINS, threshold_pct=lm.predictor.threshold_pct,
        model_metrics=dict(lm.predictor.meta.training_metrics), reference=lm.predictor.reference,
    )
    return render(data)


@dataclass
class TrackedRun:
    """An open MLflow run of a batch job."""

    client: object
    run_id: str


def start_run(options: ScoreOptions, lm, path: Path) -> TrackedRun:
    """A run in `options.experiment` with the job's settings and model as params."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    from data_contracts.fields import CONTRACT_VERSION
    from model_runtime.settings import configure_mlflow, get_or_create_experiment

    configure_mlflow()
    exp_id = get_or_create_experiment(options.experiment)
    client = MlflowClient()
    run = client.create_run(exp_id, run_name=f"score {Path(path).stem}"[:200],
                            tags={"eih.job": "batch-score", "eih.input_format": file_format(path)})
    dask = options.engine == "dask"
    params = {
        "model_uri": lm.uri, "model_name": lm.name, "model_version": lm.version, "model_run_id": lm.run_id,
        "model_contract_version": lm.predictor.contract_version, "scorer_contract_version": CONTRACT_VERSION,
        "explain": options.explain, "top_k": options.top_k if options.explain == "top" else None,
        "engine": options.engine, "chunk_rows": options.chunk_rows,
        "dask_scheduler": (options.scheduler or "LocalCluster") if dask else None,
        "dask_workers": options.workers if dask and not options.scheduler else None, "input_file": Path(path).name,
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items() if v is not None],
                     tags=[RunTag("eih.model_version", str(lm.version))] if lm.version else [])
    return TrackedRun(client, run.info.run_id)


def end_run_failed(run: TrackedRun, exc: BaseException) -> None:
    """Mark the run FAILED (KILLED on Ctrl-C or SIGTERM) with the exception's type."""
    try:
        run.client.set_tag(run.run_id, "eih.failure", type(exc).__name__)
        run.client.set_terminated(run.run_id, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
    except Exception:  # noqa: BLE001 - never hide the real failure
        log.warning("could not close the MLflow run of the failed batch")


def _metrics(result: BatchResult, agg: Aggregates) -> dict[str, float]:
    """Counts, timings, the prediction distribution and every PSI of the job."""
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
    return metrics


def _write_artifacts(d: Path, result: BatchResult, agg: Aggregates, html: str) -> None:
    """The report, drift, rejected-rows and histogram tables and summary.json in `d`."""
    (d / "cohort_report.html").write_text(html, encoding="utf-8")
    result.drift.to_csv(d / "drift.csv", index=False)
    result.problems_by_rule.to_csv(d / "rejected_by_field_rule.csv", index=False)
    hist = pd.DataFrame(agg.p_hist.T, columns=[f"p_{r}" for r in RESPONSES])
    hist.insert(0, "bin_high", np.linspace(0, 1, P_BINS + 1)[1:])
    hist.insert(0, "bin_low", np.linspace(0, 1, P_BINS + 1)[:-1])
    hist.to_csv(d / "prediction_histogram.csv", index=False)
    summary = {
        "rows_read": result.rows_read, "rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected,
        "predicted_counts": dict(zip(RESPONSES, map(int, agg.pred_counts), strict=True)),
        "hyperalgesia_risk_counts": dict(zip(RISK_LEVELS, map(int, agg.risk_counts), strict=True)),
        "drift_flags": result.drift_flags, "unknown_columns": result.unknown_columns,
        "model": {"uri": result.model_uri, "name": result.model_name, "version": result.model_version},
        "explain": result.explain, "engine": result.engine, "timings": result.timings,
    }
    (d / "summary.json").write_text(json.dumps(summary, indent=1))


def finish_run(run: TrackedRun, result: BatchResult, agg: Aggregates, html: str) -> str:
    """Log the metrics and artifacts of a completed job and close the run; its id."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    run.client.log_batch(run.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in _metrics(result, agg).items()])
    with tempfile.TemporaryDirectory() as d:
        _write_artifacts(Path(d), result, agg, html)
        run.client.log_artifacts(run.run_id, d, artifact_path="batch")
    run.client.set_terminated(run.run_id, status="FINISHED")
    return run.run_id
