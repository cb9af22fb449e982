"""`eih train`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `train` to the `eih` command line."""
    app.command("train")(train_cmd)


def train_cmd(
    data: Path = typer.Option(..., "--data", help="Training cohort (.csv or .parquet) with predictors and ppt_post_kpa."),
    oracle: Path | None = typer.Option(None, "--oracle", help="Oracle file from `eih simulate` (subject_id,p_*): adds the truth's metrics and oracle_capture."),
    config: Path | None = typer.Option(None, "--config", help="TOML or JSON overriding training settings (see training/config.py: n_trials, cv_folds, label_threshold_pct, cost_tolerance, derived_features (default [\"exercise_dose_vs_threshold\"]; [] for the contract fields only), ...)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the search and the bootstrap (same data + seed = same metrics)."),
    experiment: str = typer.Option("eih-responder", "--experiment", help="MLflow experiment name."),
    registered_model: str = typer.Option("eih-responder", "--registered-model", help="MLflow registered model name."),
    n_trials: int | None = typer.Option(None, "--n-trials", help="Override the number of search trials."),
    threshold: float | None = typer.Option(
        None, "--label-threshold-pct", "--threshold",
        help="Label threshold in % of the PPT change (default 10). One re-test's smallest detectable change is about "
        "28-58 %, so 30 labels only changes beyond measurement error."),
    model: str | None = typer.Option(None, "--model", help="distributional (default: the expected change of eih_pct and "
                                     "each person's spread, probabilities through that normal distribution), ordinal (one "
                                     "spread for everyone) or multiclass (one softmax margin per class)."),
    family: str = typer.Option("auto", "--family", help="auto (default: gradient-boosted trees and penalized splines, the "
                               "one with the lower cross-validated log-loss wins; below 5,000 rows by repeated CV), "
                               "xgboost or spline (only that family)."),
    protocols: str | None = typer.Option(None, "--protocols", help="randomized or observational: whether each person's "
                                         "protocol in the data was assigned independently of the person (randomized or "
                                         "crossover trials). Only a model trained on randomized protocols gives a causal "
                                         "protocol ranking (eih recommend, POST /recommend). Default: randomized with "
                                         "--oracle (an eih simulate cohort), observational otherwise."),
) -> None:
    """Tune, calibrate, evaluate and register a responder model (gradient-boosted trees or
    penalized splines, chosen by validation).

    Writes one MLflow run (nested runs for the search) to the project store
    (sqlite:///mlruns/mlflow.db unless MLFLOW_TRACKING_URI is set), registers the model
    and moves the @champion alias only if the new version beats the current champion on
    the new test split.
    """
    from rich.console import Console

    from data_contracts.validate import ContractFileError
    from training.config import load_config
    from training.train import TrainingDataError, summarize, train

    console = Console()
    try:
        if family not in ("auto", "xgboost", "spline"):
            raise ValueError("--family must be auto, xgboost or spline")
        cfg = load_config(config, n_trials=n_trials, label_threshold_pct=threshold, model=model,
                          families=None if family == "auto" else [family])
        result = train(data, oracle=oracle, cfg=cfg, seed=seed, experiment=experiment,
                       registered_model=registered_model, console=console, protocols=protocols)
    except (ContractFileError, TrainingDataError, ValueError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(summarize(result))
    console.print(f"MLflow run {result.run_id}; model {result.model_name} version {result.model_version}")
