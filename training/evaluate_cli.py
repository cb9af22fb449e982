"""`eih evaluate FILE [--model URI]`: external validation of a model on a cohort with outcomes,
as one MLflow run with an HTML report (training/external.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import typer


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the `eih` command line."""
    app.command("evaluate")(evaluate_cmd)


def load_outcomes(path: str | Path, threshold_pct: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Contract-valid rows with an outcome and their response codes at the model's threshold."""
    from data_contracts.io import read_table
    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame

    raw = read_table(path)
    if "ppt_post_kpa" not in raw.columns:
        raise ValueError(f"{Path(path).name}: evaluation needs the outcome column ppt_post_kpa (use eih score without it)")
    df = validate_frame(raw).valid
    df = df.loc[df["ppt_post_kpa"].notna().to_numpy()]
    y = response_codes(eih_pct(df), threshold_pct).astype("int64")
    if len(df) < 50 or len(np.unique(y)) < 3:
        raise ValueError(f"{len(df)} valid rows with an outcome: need at least 50 and all three response classes")
    return df, y


def evaluate_file(data: str | Path, model: str | None = None, *, n_boot: int = 200, seed: int = 0,
                  experiment: str = "eih-evaluate", out: Path | None = None) -> tuple[str, dict, pd.DataFrame]:
    """Validate the model at `model` (default the champion) on `data`; log one MLflow run with
    the metrics (`external_*`), the group table and the HTML report. Returns (run id, overall
    figures, group table)."""
    import mlflow

    from model_runtime.loading import load_model
    from model_runtime.settings import get_or_create_experiment
    from training import external, plots

    loaded = load_model(model)
    data = Path(data)
    df, y = load_outcomes(data, loaded.predictor.threshold_pct)
    P = loaded.predictor.predict_proba(df)
    inside = external.inside_intervals(loaded.predictor, df)
    overall = external.figures(y, P, n_boot, seed) | external.coverage_figures(inside)
    groups = external.by_group(df, y, P, n_boot, seed, inside)
    exp_id = get_or_create_experiment(experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"evaluate-{data.stem}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"model_uri": loaded.uri, "model_version": str(loaded.version), "data_file": data.name,
                         "kind": "external_validation"})
        mlflow.log_metrics({f"external_{k}": v for k, v in overall.items() if np.isfinite(v)})
        plot = Path(tmp) / "calibration_curves.png"
        plots.calibration_curves(y, P, str(plot))
        page = external.html_report(f"External validation on {data.name}", overall, groups, plot,
                                    f"{loaded.name or loaded.uri} version {loaded.version}")
        (Path(tmp) / "external_validation.html").write_text(page)
        groups.to_csv(Path(tmp) / "external_groups.csv", index=False)
        mlflow.log_artifacts(tmp, artifact_path="report")
        if out is not None:
            Path(out).write_text(page)
        return run.info.run_id, overall, groups


def evaluate_cmd(
    data: Path = typer.Argument(..., help="Cohort (.csv or .parquet) with the predictors and ppt_post_kpa."),
    model: str | None = typer.Option(None, "--model", help="Model URI (default: models:/eih-responder@champion)."),
    out: Path | None = typer.Option(None, "--out", help="Also write the HTML report here."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples for the 95 % intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """External validation: discrimination, calibration (in the large and slope, plot) and log-loss
    against the cohort's own class prior, overall, per site and per pain condition, with 95 %
    intervals, logged as an MLflow run with an HTML report."""
    from rich.console import Console

    from data_contracts.validate import ContractFileError
    from model_runtime.loading import ModelNotAvailable
    from training import external

    console = Console()
    try:
        run_id, o, groups = evaluate_file(data, model, n_boot=bootstrap, seed=seed, out=out)
    except (ContractFileError, ModelNotAvailable, ValueError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    d, hi = o["paired_log_loss_diff_vs_null"], o["paired_log_loss_diff_vs_null_ci_high"]
    console.print(f"{int(o['n'])} people: log-loss {o['log_loss']:.3f} ({o['log_loss_ci_low']:.3f}-{o['log_loss_ci_high']:.3f})"
                  f" vs the cohort's class prior {o['null_log_loss']:.3f} (difference {d:+.3f}, upper 95 % bound {hi:+.3f});"
                  f" macro AUROC {o['auroc_macro']:.3f}; calibration slope (hyperalgesia)"
                  f" {o['calibration_slope_hyperalgesia']:.2f}; in the large (hyperalgesia) {o['citl_hyperalgesia']:+.3f}",
                  highlight=False)
    if "interval80_coverage" in o:
        console.print(f"prediction intervals held {o['interval80_coverage']:.0%} (80 %) and "
                      f"{o['interval90_coverage']:.0%} (90 %) of the measured changes", highlight=False)
    for flag in external.coverage_flags(o, groups):
        console.print(f"[yellow]flag:[/yellow] {flag}", highlight=False)
    console.print(f"{len(groups)} site/condition groups in the report; MLflow run {run_id}"
                  + (f"; report {out}" if out else ""), highlight=False)
