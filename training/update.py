"""`eih update --data local.csv [--model models:/eih-responder@champion]`: update a model for a
new site (training/update_steps.py), choose the step by repeated cross-validation on the site's
people, register the updated version with its lineage (parent version, data file, step) in
its tags and card, and pass it through the same paired gate as training."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer


def register(app: typer.Typer) -> None:
    """Add `update` to the `eih` command line."""
    app.command("update")(update_cmd)


@dataclass
class UpdateResult:
    """The run, the registered version (None when no step beat the parent), the step and the gate."""

    run_id: str
    version: str | None
    step: str
    log_loss: dict[str, float]
    promoted: bool
    message: str


def _card(parent: str, data: str, n: int, step: str, ll: dict[str, float], s, message: str) -> str:
    from training.update_steps import PRIOR_PEOPLE, PROVEN_PRIOR_PEOPLE

    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in ll.items())
    return (f"# Model card: site update\n\n## Lineage\nParent: {parent}. Site data: {data} ({n} people with an outcome)."
            f" Step chosen: **{step}** (Steyerberg's updating ladder, chosen by repeated cross-validation on the site's"
            f" people; a proven calibration step is pooled with the parent's, weights n : {PROVEN_PRIOR_PEOPLE},"
            f" the unproven shrunk recalibration n : {PRIOR_PEOPLE}).\n\n| step | out-of-fold log-loss |\n|---|---|\n"
            f"{rows}\n\n## Validation\nOut-of-fold log-loss"
            f" {s.point['log_loss']:.3f} (95 % CI {s.intervals['log_loss'][0]:.3f} to {s.intervals['log_loss'][1]:.3f});"
            f" paired difference vs the site's class prior {s.point['paired_log_loss_diff_vs_null']:+.3f}.\n\n"
            f"## Gate\n{message}\n\nThe conformal intervals and risk cut-offs are the parent's; revalidate them on the"
            " site's data before relying on them.\n")


def update(data: str | Path, model: str | None = None, *, seed: int = 0, repeats: int = 5, folds: int = 5,
           n_boot: int = 200, registered_model: str = "eih-responder", experiment: str = "eih-update",
           console=None) -> UpdateResult:
    """Update the model at `model` (default the champion) on `data`; one MLflow run."""
    import mlflow
    from rich.console import Console

    from model_runtime.loading import load_model
    from model_runtime.settings import CHAMPION_ALIAS, get_or_create_experiment
    from training import internal, update_steps
    from training.evaluate_cli import load_outcomes
    from training.registry import log_and_register, paired_gate

    console, data = console or Console(), Path(data)
    loaded = load_model(model)
    parent = loaded.predictor
    df, y = load_outcomes(data, parent.threshold_pct)
    if parent.link != "normal_spread":
        raise ValueError("eih update needs a distributional model (link normal_spread)")
    oof = update_steps.out_of_fold(parent, df, y, repeats, folds, seed)
    step, ll = update_steps.choose(oof, y)
    console.print("out-of-fold log-loss by step: " + ", ".join(f"{k} {v:.4f}" for k, v in ll.items())
                  + f"; chosen: {step}", highlight=False)
    base = {"null": np.stack([np.tile(np.bincount(y, minlength=3) / len(y), (len(y), 1))] * repeats)}
    s = internal.summarize(y, oof[update_steps.registered(step)], base, n_boot, seed)
    parent_ref = f"{loaded.name}/{loaded.version}" if loaded.name else loaded.uri
    with mlflow.start_run(experiment_id=get_or_create_experiment(experiment), run_name=f"update-{data.stem}") as run:
        tags = {"parent_model": parent_ref, "parent_version": str(loaded.version), "update_step": step,
                "data_file": data.name, "kind": "site_update"}
        mlflow.set_tags(tags)
        mlflow.log_metrics({f"oof_log_loss_{k}": v for k, v in ll.items()} | {"n_rows": len(df)})
        if step == "none":
            msg = "no updating step beats the parent on this site's people: nothing registered"
            mlflow.set_tag("gate_message", msg)
            console.print(msg)
            return UpdateResult(run.info.run_id, None, step, ll, False, msg)
        child = update_steps.fit_update(step, parent, df, y)
        child.meta.extra["lineage"] = {"parent": parent_ref, "data_file": data.name, "step": step, "n_rows": len(df)}
        with tempfile.TemporaryDirectory() as tmp:
            version = log_and_register(child, Path(tmp), registered_model)
            from mlflow import MlflowClient

            for k, v in tags.items():
                MlflowClient().set_model_version_tag(registered_model, version, k, v)

            def again(champion_P):
                return internal.summarize(y, oof[update_steps.registered(step)], base, n_boot, seed,
                                          champion_P=champion_P)

            s.best_baseline = "null"
            promoted, message = paired_gate(registered_model, version, CHAMPION_ALIAS, df, s, again)
            (Path(tmp) / "model_card.md").write_text(_card(parent_ref, data.name, len(df), step, ll, s, message))
            mlflow.log_artifact(str(Path(tmp) / "model_card.md"), artifact_path="report")
        mlflow.set_tags({"gate_decision": "promoted" if promoted else "kept_champion", "gate_message": message,
                         "registered_model_version": version})
        console.print(f"[bold]registry:[/bold] {registered_model} version {version} ({step}): {message}", highlight=False)
        return UpdateResult(run.info.run_id, version, step, ll, promoted, message)


def update_cmd(
    data: Path = typer.Option(..., "--data", help="The new site's cohort (.csv or .parquet) with ppt_post_kpa."),
    model: str | None = typer.Option(None, "--model", help="Parent model URI (default models:/eih-responder@champion)."),
    registered_model: str = typer.Option("eih-responder", "--registered-model", help="Where to register the update."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cross-validation and the bootstrap."),
    repeats: int = typer.Option(5, "--repeats", help="Repeats of the 5-fold cross-validation that chooses the step."),
) -> None:
    """Update a model for a new site: recalibration in the large, recalibration of margin and
    spread, or (from 500 people) a refit with the old margin as offset, chosen by repeated
    cross-validation on the site's people. A proven recalibration is pooled with the parent's
    (weights n : 200); when none is proven, the recalibration is pooled n : 1,600 if it does not do
    worse. Registers the new version with its lineage and passes it through the gate."""
    from rich.console import Console

    from data_contracts.validate import ContractFileError
    from model_runtime.loading import ModelNotAvailable

    try:
        update(data, model, seed=seed, repeats=repeats, registered_model=registered_model, console=Console())
    except (ContractFileError, ModelNotAvailable, ValueError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
