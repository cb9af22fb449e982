"""`eih train`: cohort file -> tuned, calibrated, explained model in MLflow, registered
as `eih-responder` and promoted to `@champion` only if it beats the current champion.

The pure steps live in `training.steps`; this module is their edge: it reads and checks
the files, runs the steps inside one parent MLflow run (nested runs for the search
trials), shows progress, writes the report artifacts and hands the model to the registry.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.fields import CONTRACT_VERSION, RESPONSES
from data_contracts.io import read_side_table, read_table
from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from training import internal, steps, tune, varying
from training.config import TrainConfig
from training.registry import CODE_PATHS, PYFUNC_CODE, log_and_register, paired_gate
from training.report import write_report

PROTOCOL_ASSIGNMENTS = ("randomized", "observational")

__all__ = ["CODE_PATHS", "PYFUNC_CODE", "TrainResult", "TrainingDataError", "load_oracle", "load_training_frame",
           "summarize", "train"]


class TrainingDataError(ValueError):
    """The training data cannot train a model (no outcome, too few rows, a class missing)."""


@dataclass
class TrainResult:
    """What `train` reports back: the run, the registered version and the gate's decision."""

    run_id: str
    model_name: str
    model_version: str
    promoted: bool
    gate_message: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    chosen: dict
    artifacts: list[str] = field(default_factory=list)


def load_training_frame(path: str | Path, threshold_pct: float) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Validated rows with an outcome, their labels, and the number of rows dropped."""
    raw = read_table(path)
    if "ppt_post_kpa" not in raw.columns:
        raise TrainingDataError(f"{Path(path).name}: training data needs the outcome column ppt_post_kpa")
    report = validate_frame(raw)
    df = report.valid
    has_outcome = df["ppt_post_kpa"].notna().to_numpy()
    df = df.loc[has_outcome]
    dropped = report.n_rejected + int((~has_outcome).sum())
    if len(df) < 200:
        raise TrainingDataError(f"only {len(df)} valid rows with an outcome: too few to train (need at least 200)")
    y = response_codes(eih_pct(df), threshold_pct).astype("int64")
    if len(np.unique(y)) < 3:
        raise TrainingDataError("the training data do not contain all three response classes")
    return df, y, dropped


def load_oracle(path: str | Path, subject_ids: pd.Series) -> np.ndarray:
    """The oracle's probabilities (n, 3) for these subjects, in their order: the truth for
    each person at their own site (`p_site_*`) when the file has it, else `p_*`."""
    odf = read_side_table(path)
    odf = odf.set_index(odf["subject_id"].astype(str)).reindex(subject_ids.astype(str).to_numpy())
    site_cols = [f"p_site_{o}" for o in RESPONSES]
    cols = site_cols if set(site_cols) <= set(odf.columns) else [f"p_{o}" for o in RESPONSES]
    if odf[cols].isna().any().any():
        raise TrainingDataError("the oracle file does not cover every training row (join on subject_id)")
    return odf[cols].to_numpy(dtype="float64")


def _log_start(prep: steps.Prepared, cfg: TrainConfig, seed: int, data: Path, dropped: int, synthetic: bool) -> None:
    import mlflow

    mlflow.set_tags({"contract_version": CONTRACT_VERSION, "label_threshold_pct": f"{cfg.label_threshold_pct:g}",
                     "split": prep.split.kind, "data_origin": "synthetic (eih simulate)" if synthetic else "user file"})
    n_test = 0 if prep.split.kind == "repeated_cv" else len(prep.te)
    mlflow.log_params({**cfg.flat(), "seed": seed, "n_rows": len(prep.df), "n_train": len(prep.tr), "n_test": n_test,
                       "rows_dropped_by_contract": dropped, "n_features": prep.X.shape[1], "data_file": data.name})
    with warnings.catch_warnings():
        # MLflow registers two identical local-file sources (schemes "" and "file") and
        # warns that a path "can be interpreted in multiple ways"; both are the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        ds = mlflow.data.from_pandas(
            prep.df.assign(response=np.asarray(RESPONSES, dtype=object)[prep.y]).reset_index(drop=True),
            source=str(data.resolve()), targets="response", name=data.name,
        )
    mlflow.log_input(ds, context="training")


class _RunLog:
    """The step hook of `steps.run_steps`: progress on the console, metrics to MLflow."""

    def __init__(self, console, exp_id: str, n_trials: int, family_by_search: bool = True):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console, self.exp_id = console, exp_id
        # a plain line per trial when the output is not a terminal (CI logs, pipes)
        self.progress = Progress(TextColumn("tuning XGBoost"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("best CV log-loss {task.fields[best]}"), console=console,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("search", total=n_trials, best="-")
        self.best, self.status = np.inf, None
        self.family_by_search = family_by_search  # else a "choose" step decides the family

    def on_trial(self, t: tune.Trial) -> None:
        import mlflow

        with mlflow.start_run(experiment_id=self.exp_id, run_name=f"trial-{t.number}", nested=True):
            mlflow.log_params(t.params)
            mlflow.log_metrics({"cv_log_loss": t.cv_log_loss, "n_rounds": t.n_rounds, "explain_cost": t.cost})
        self.best = min(self.best, t.cv_log_loss)
        self.progress.update(self.task, advance=1, best=f"{self.best:.4f}")
        if not self.console.is_terminal:
            self.console.print(f"trial {t.number + 1}: CV log-loss {t.cv_log_loss:.4f} (best {self.best:.4f})")

    def __call__(self, step: str, result: object) -> None:
        if result is None:
            self._start(step)
            return
        if self.status is not None:
            self.status.stop()
            self.status = None
        getattr(self, f"_end_{step}", lambda _r: None)(result)

    def _start(self, step: str) -> None:
        if step == "search":
            self.progress.start()
            return
        text = {"choose": "choosing the model family by repeated cross-validation",
                "calibrate": "calibrating on out-of-fold predictions", "fit": "fitting the final model",
                "evaluate": "evaluating on the test split (bootstrap intervals)"}[step]
        self.status = self.console.status(text)
        self.status.start()

    def _end_search(self, found: steps.SearchResult) -> None:
        import mlflow

        self.progress.stop()
        chosen, best = found.chosen, found.best
        self.console.print(f"search: best {describe(chosen)} (CV log-loss {chosen.cv_log_loss:.4f}; "
                           f"best {best.cv_log_loss:.4f} at cost {best.cost:.0f} vs {chosen.cost:.0f})")
        mlflow.log_params({f"chosen_{k}": v for k, v in chosen.params.items()}
                          | {"chosen_n_rounds": chosen.n_rounds, "chosen_trial": chosen.number})
        mlflow.log_metrics({"cv_log_loss_chosen": chosen.cv_log_loss, "cv_log_loss_best": best.cv_log_loss,
                            "explain_cost_chosen": chosen.cost, "explain_cost_best": best.cost})
        if self.family_by_search:
            self._family(found)

    def _end_choose(self, result: tuple[steps.SearchResult, object]) -> None:
        self._family(result[0])

    def _family(self, found: steps.SearchResult) -> None:
        import mlflow

        choice = found.family_choice()
        scores = ", ".join(f"{k} {v:.4f}" for k, v in choice["log_loss"].items())
        self.console.print(f"model family: {choice['family']} ({choice['criterion']}: {scores})", highlight=False)
        mlflow.set_tag("model_family", choice["family"])
        mlflow.log_metrics({f"family_log_loss_{k}": v for k, v in choice["log_loss"].items()})

    def _end_calibrate(self, c: steps.Calibrated) -> None:
        import mlflow

        mlflow.log_metrics(c.metrics())
        mlflow.log_param("calibration_applied", c.applied)
        spread = f"residual spread {c.cal.sigma:.1f} %-points; " if c.cal.sigma is not None else ""
        t0 = np.atleast_1d(c.cal.temperature)[0]
        fix = (f"temperature {t0:.3f} and bias applied (log-loss {c.fitted.log_loss_before:.4f} -> "
               f"{c.fitted.log_loss_after:.4f})" if c.applied else "no further correction needed")
        if c.blend_log_loss is not None:
            w = c.params[varying.WEIGHT]
            rank = int(c.params[varying.RANK])
            self.console.print(f"blend: weight {w:.1f} on the searched trees, {1 - w:.1f} on the distilled"
                               f" varying-coefficient trees ({f'rank {rank}' if rank else 'full rank'}; out-of-fold"
                               f" log-loss {c.blend_log_loss[w]:.4f}; the searched trees alone"
                               f" {c.blend_log_loss[1.0]:.4f})", highlight=False)
        self.console.print(f"calibration: {spread}out-of-fold ECE {c.ece_before:.4f}; {fix}")

    def _end_evaluate(self, ev: steps.Evaluation) -> None:
        import mlflow

        mlflow.log_metrics(ev.metrics)


def describe(trial: tune.Trial) -> str:
    """A candidate in words: its family and shape."""
    if tune.family(trial.params) == "spline":
        return f"candidate {trial.number}: penalized splines ({trial.params['n_knots']} knots per number)"
    return f"candidate {trial.number}: gradient-boosted trees (depth {trial.params['max_depth']}, {trial.n_rounds} rounds)"


def _print_sample_size(console, prep: steps.Prepared, resampled: bool) -> None:
    from training.sample_size import minimum_sample_size

    ss = minimum_sample_size(tuple(prep.X.columns))
    n = len(prep.tr)
    console.print(ss.text(n), highlight=False)
    if n < ss.minimum:
        console.print(f"[yellow]warning:[/yellow] {n:,} training rows are fewer than the minimum {ss.minimum:,}: "
                      "expect a model with unstable effects and wide intervals", highlight=False)
    if resampled:
        console.print(f"validation: {prep.split.description}", highlight=False)
    else:
        console.print(f"split: {prep.split.description}; {len(prep.tr)} training rows in {len(prep.folds)} CV folds, "
                      f"{len(prep.te)} test rows", highlight=False)


def resolve_protocols(protocols: str | None, synthetic: bool) -> str:
    """How protocols were assigned in the training data: as given, else randomized for an `eih
    simulate` cohort (trained with its oracle file; the simulator draws each protocol at random)
    and observational for any other file. Raises ValueError for another value."""
    if protocols is None:
        return "randomized" if synthetic else "observational"
    if protocols not in PROTOCOL_ASSIGNMENTS:
        raise ValueError(f"protocols must be one of {', '.join(PROTOCOL_ASSIGNMENTS)}")
    return protocols


def train(data: str | Path, *, oracle: str | Path | None = None, cfg: TrainConfig | None = None, seed: int = 0,
          experiment: str = "eih-responder", registered_model: str = "eih-responder", console=None,
          protocols: str | None = None) -> TrainResult:
    """Train on a cohort file, log one MLflow run, register the model and run the gate.

    `protocols` (randomized or observational; default by `resolve_protocols`) says whether the
    training data's protocols were assigned independently of the person: it is a run tag and
    the model's metadata (`extra["protocols"]`), and prescription (`/recommend`) reads it."""
    import mlflow
    from rich.console import Console

    from model_runtime.settings import CHAMPION_ALIAS, configure_mlflow, get_or_create_experiment

    cfg, console, data = cfg or TrainConfig(), console or Console(), Path(data)
    given, protocols = protocols is not None, resolve_protocols(protocols, oracle is not None)
    configure_mlflow()
    exp_id = get_or_create_experiment(experiment)
    with console.status("reading and validating the cohort"):
        df, y, dropped = load_training_frame(data, cfg.label_threshold_pct)
    console.print(f"cohort: {len(df)} valid rows with an outcome ({dropped} rows dropped by the contract)")
    oracle_P = load_oracle(oracle, df["subject_id"]) if oracle is not None else None
    resampled = internal.use_resampling(len(df), cfg)
    prep = (internal.prepare_all if resampled else steps.prepare)(df, y, cfg, seed)
    _print_sample_size(console, prep, resampled)
    why = "as given" if given else "the default for an eih simulate cohort" if oracle else "the default for a user file"
    console.print(f"protocols: {protocols} ({why}; a protocol ranking is causal only for randomized)")

    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{data.stem}") as run:
        _log_start(prep, cfg, seed, data, dropped, oracle is not None)
        mlflow.set_tags({"protocols": protocols, "after_bout_fields": str(cfg.use_after_bout_fields).lower()})
        log = _RunLog(console, exp_id, cfg.n_trials, family_by_search=not resampled)
        if resampled:
            trained = internal.run_resampled(prep, cfg, seed, oracle_P, on_trial=log.on_trial, on_step=log)
        else:
            trained = steps.run_steps(prep, cfg, seed, oracle_P, on_trial=log.on_trial, on_step=log)
            internal.summarize_holdout(trained, cfg, seed)
            with console.status("learning curve: the chosen model on a quarter and a half of the training split"):
                trained.evaluation.extra["learning_curve"] = internal.holdout_learning_curve(trained, cfg, seed)
        trained.predictor.meta.extra["protocols"] = protocols
        ev = trained.evaluation
        with tempfile.TemporaryDirectory() as tmp, console.status("writing plots, model card and the model"):
            report_dir = write_report(Path(tmp) / "report", trained, cfg, name=registered_model, data_name=data.name,
                                      dropped=dropped)
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
            version = log_and_register(trained.predictor, Path(tmp), registered_model)
        promoted, message = paired_gate(registered_model, version, CHAMPION_ALIAS, prep.df.iloc[prep.te],
                                        ev.extra["summary"], internal.resummarizer(trained, cfg, seed))
        mlflow.set_tags({"gate_decision": "promoted" if promoted else "kept_champion", "gate_message": message,
                         "registered_model_version": version, "validation": prep.split.kind})
        console.print(f"[bold]registry:[/bold] {registered_model} version {version}: {message}")
        chosen = trained.search.chosen
        return TrainResult(run.info.run_id, registered_model, version, promoted, message, ev.metrics, ev.intervals,
                           chosen.params | {"n_rounds": chosen.n_rounds})


def summarize(result: TrainResult) -> str:
    """The headline metrics of a training as JSON (what `eih train` prints at the end)."""
    m = result.metrics
    keys = ["test_log_loss", "test_auroc_macro", "test_brier", "test_ece", "null_test_log_loss",
            "baseline_logreg_test_log_loss", "baseline_cpm_rule_test_log_loss", "baseline_psychosocial_rule_test_log_loss",
            "oracle_test_log_loss", "oracle_test_auroc_macro", "oracle_capture", "auroc_ratio_to_oracle",
            "best_cv_candidate_test_log_loss", "best_cv_candidate_oracle_capture", "explain_rows_per_s"]
    return json.dumps({k: round(m[k], 4) for k in keys if k in m}, indent=1)
