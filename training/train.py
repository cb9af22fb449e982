"""`eih train`: cohort file -> tuned, calibrated, explained model in MLflow, registered
as `eih-responder` and promoted to `@champion` only if it beats the current champion.

Pure steps (split, search, calibration, metrics) live in their own modules; this
module orders them and records everything in one parent MLflow run.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import BY_NAME, CONTRACT_VERSION, PREDICTORS, RESPONSES
from data_contracts.io import read_table
from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import ContractFileError, validate_frame
from features.pipeline import ContractFeatures
from features.reference import build_reference, numeric_reference
from training import baselines, metrics, plots, tune
from training.config import TrainConfig
from training.model_card import model_card
from training.split import cv_folds, holdout_split

ROOT = Path(__file__).resolve().parent.parent
PYFUNC_CODE = ROOT / "model_runtime" / "pyfunc_model.py"
CODE_PATHS = [str(ROOT / p) for p in ("data_contracts", "features", "model_runtime")]


class TrainingDataError(ValueError):
    pass


@dataclass
class TrainResult:
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


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    cols = [ColSpec("string", "subject_id", required=False)]
    for name in PREDICTORS:
        f = BY_NAME[name]
        cols.append(ColSpec("double" if f.kind == "number" else "string", name, required=f.required))
    outputs = Schema([ColSpec("double", f"p_{o}") for o in RESPONSES])
    return ModelSignature(inputs=Schema(cols), outputs=outputs)


def _input_example() -> pd.DataFrame:
    rec = {k: v for k, v in EXAMPLE_RECORD.items() if k == "subject_id" or k in PREDICTORS}
    df = pd.DataFrame([rec])
    for name in PREDICTORS:
        if BY_NAME[name].kind == "number":
            df[name] = df[name].astype("float64")
        else:
            df[name] = df[name].astype(object)
    return df


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["mlflow", "xgboost", "pandas", "numpy", "scikit-learn", "scipy", "pyarrow", "pandera", "pydantic"]
    return [f"{p}=={version(p)}" for p in pkgs]


def _explain_rows_per_s(predictor, df: pd.DataFrame, repeats: int = 3) -> float:
    sample = df.iloc[: min(len(df), 2000)]
    predictor.explain(sample.iloc[:10])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.explain(sample)
        times.append(time.perf_counter() - t0)
    return float(len(sample) / np.median(times))


def _subgroups(y, P, df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for col in ("sex", "pain_condition"):
        for level in BY_NAME[col].categories:
            m = (df[col] == level).to_numpy()
            n = int(m.sum())
            if n < 30:
                rows.append({"group": col, "level": level, "n": n})
                continue
            pm = metrics.point_metrics(y[m], P[m])
            rows.append(
                {"group": col, "level": level, "n": n, "log_loss": pm["log_loss"], "auroc_macro": pm["auroc_macro"],
                 "brier": pm["brier"], "ece": pm["ece"], "balanced_accuracy": pm["balanced_accuracy"],
                 "observed_hyperalgesia": float(np.mean(y[m] == 2)), "predicted_hyperalgesia": float(P[m, 2].mean())}
            )
    return pd.DataFrame(rows)


def train(
    data: str | Path,
    *,
    oracle: str | Path | None = None,
    cfg: TrainConfig | None = None,
    seed: int = 0,
    experiment: str = "eih-responder",
    registered_model: str = "eih-responder",
    console=None,
) -> TrainResult:
    import mlflow
    from mlflow import MlflowClient
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from model_runtime.settings import CHAMPION_ALIAS, configure_mlflow, get_or_create_experiment
    from model_runtime.links import ORDINAL_OUTPUT
    from model_runtime.metadata import ModelMeta
    from model_runtime.predictor import EIHPredictor

    cfg = cfg or TrainConfig()
    console = console or Console()
    configure_mlflow()
    exp_id = get_or_create_experiment(experiment)
    data = Path(data)

    with console.status("reading and validating the cohort"):
        df, y, dropped = load_training_frame(data, cfg.label_threshold_pct)
    console.print(f"cohort: {len(df)} valid rows with an outcome ({dropped} rows dropped by the contract)")

    oracle_P = None
    if oracle is not None:
        odf = read_table_any(oracle)
        odf = odf.set_index("subject_id").reindex(df["subject_id"].astype(str).to_numpy())
        cols = [f"p_{o}" for o in RESPONSES]
        if odf[cols].isna().any().any():
            raise TrainingDataError("the oracle file does not cover every training row (join on subject_id)")
        oracle_P = odf[cols].to_numpy(dtype="float64")

    split = holdout_split(df, y, cfg.test_fraction, seed)
    tr, te = split.train_idx, split.test_idx
    feats = ContractFeatures(derived=cfg.derived_features).fit(df)
    X = feats.transform(df)
    Xtr, Xte, ytr, yte = X.iloc[tr], X.iloc[te], y[tr], y[te]
    # what the booster learns: the measured eih_pct (ordinal) or the class code (multiclass)
    target = eih_pct(df).to_numpy(dtype="float64") if cfg.ordinal else y.astype("float64")
    ttr = target[tr]
    link, n_out = tune.link(cfg), tune.n_outputs(cfg)
    outputs = [ORDINAL_OUTPUT] if n_out == 1 else list(RESPONSES)
    dtr, dte = df.iloc[tr], df.iloc[te]
    folds = cv_folds(dtr, ytr, cfg.cv_folds, seed)
    console.print(f"split: {split.description}; {len(tr)} training rows in {len(folds)} CV folds, {len(te)} test rows")

    client = MlflowClient()
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{data.stem}") as run:
        mlflow.set_tags(
            {
                "contract_version": CONTRACT_VERSION,
                "label_threshold_pct": f"{cfg.label_threshold_pct:g}",
                "split": split.kind,
                "data_origin": "synthetic (eih simulate)" if oracle is not None else "user file",
            }
        )
        mlflow.log_params({**cfg.flat(), "seed": seed, "n_rows": len(df), "n_train": len(tr), "n_test": len(te),
                           "rows_dropped_by_contract": dropped, "n_features": X.shape[1], "data_file": data.name})
        with warnings.catch_warnings():
            # MLflow registers two identical local-file sources (schemes "" and "file") and
            # warns that a path "can be interpreted in multiple ways"; both are the same class
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            ds = mlflow.data.from_pandas(
                df.assign(response=np.asarray(RESPONSES, dtype=object)[y]).reset_index(drop=True),
                source=str(data.resolve()), targets="response", name=data.name,
            )
        mlflow.log_input(ds, context="training")

        # ---- search -----------------------------------------------------------------
        with Progress(TextColumn("tuning XGBoost"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("best CV log-loss {task.fields[best]}"), console=console, transient=False) as prog:
            task = prog.add_task("search", total=cfg.n_trials, best="-")
            best_so_far = [np.inf]

            def on_trial(t: tune.Trial) -> None:
                with mlflow.start_run(experiment_id=exp_id, run_name=f"trial-{t.number}", nested=True):
                    mlflow.log_params(t.params)
                    mlflow.log_metrics({"cv_log_loss": t.cv_log_loss, "n_rounds": t.n_rounds, "explain_cost": t.cost})
                best_so_far[0] = min(best_so_far[0], t.cv_log_loss)
                prog.update(task, advance=1, best=f"{best_so_far[0]:.4f}")

            trials = tune.search(Xtr, ttr, folds, cfg, seed, on_trial=on_trial)
        chosen = tune.choose(trials, cfg.cost_tolerance)
        best = min(trials, key=lambda t: t.cv_log_loss)
        console.print(
            f"chosen: trial {chosen.number} (depth {chosen.params['max_depth']}, {chosen.n_rounds} rounds, "
            f"CV log-loss {chosen.cv_log_loss:.4f}; best {best.cv_log_loss:.4f} at cost {best.cost:.0f} vs {chosen.cost:.0f})"
        )
        mlflow.log_params({f"chosen_{k}": v for k, v in chosen.params.items()} | {"chosen_n_rounds": chosen.n_rounds,
                                                                                   "chosen_trial": chosen.number})
        mlflow.log_metrics({"cv_log_loss_chosen": chosen.cv_log_loss, "cv_log_loss_best": best.cv_log_loss,
                            "explain_cost_chosen": chosen.cost, "explain_cost_best": best.cost})

        # ---- calibration on out-of-fold margins ------------------------------------------
        def calibrate(trial: tune.Trial) -> tuple[dict, np.ndarray, tune.Calibration, tune.Calibration, bool]:
            p = {**tune.base_params(cfg, seed), **trial.params}
            oof = tune.oof_margins(Xtr, ttr, folds, p, trial.n_rounds, n_out)
            fitted = tune.fit_calibration(oof, ytr, link, cfg.label_threshold_pct, target=ttr)
            apply = (fitted.log_loss_before - fitted.log_loss_after) >= cfg.calibration_min_gain
            return p, oof, fitted, (fitted if apply else fitted.identity()), apply

        with console.status("calibrating on out-of-fold predictions"):
            params, oof, fitted, cal, apply = calibrate(chosen)
            ece_before = metrics.ece(ytr, fitted.identity().proba(oof, link, cfg.label_threshold_pct))
            ece_after = metrics.ece(ytr, cal.proba(oof, link, cfg.label_threshold_pct))
        cal_metrics = {"oof_log_loss_uncalibrated": fitted.log_loss_before, "oof_log_loss_calibrated": cal.log_loss_after,
                       "oof_ece_uncalibrated": ece_before, "oof_ece_calibrated": ece_after,
                       "calibration_temperature": cal.temperature}
        if cal.sigma is not None:
            cal_metrics["residual_sigma_pct"] = cal.sigma
        mlflow.log_metrics(cal_metrics)
        mlflow.log_param("calibration_applied", bool(apply))
        spread = f"residual spread {cal.sigma:.1f} %-points; " if cal.sigma is not None else ""
        console.print(
            f"calibration: {spread}out-of-fold ECE {ece_before:.4f}; "
            + (f"temperature {cal.temperature:.3f} and bias applied (log-loss {fitted.log_loss_before:.4f} -> "
               f"{fitted.log_loss_after:.4f})" if apply else "no further correction needed")
        )

        # ---- final model ------------------------------------------------------------
        with console.status("fitting the final model"):
            booster = tune.fit_final(Xtr, ttr, params, chosen.n_rounds)
            meta = ModelMeta(
                contract_version=CONTRACT_VERSION,
                label_threshold_pct=cfg.label_threshold_pct,
                features=tuple(X.columns),
                link=link,
                outputs=tuple(outputs),
                calibration=cal.to_runtime(apply),
                risk_cutoffs={"moderate": cfg.risk_moderate, "high": cfg.risk_high},
                reference=build_reference(Xtr),
                class_prior=tuple(float(v) for v in np.bincount(ytr, minlength=3) / len(ytr)),
                model_shape={"max_depth": chosen.params["max_depth"], "n_rounds": chosen.n_rounds,
                             "n_outputs": n_out, "explain_cost_proxy": chosen.cost},
                trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                seed=seed,
            )
            predictor = EIHPredictor(booster, meta)
            P, ex = predictor.predict_and_explain(dte)
            # attribution reference (for drift of explanations in batch scoring)
            ref_ex = predictor.explain(dtr.iloc[: min(len(dtr), 5000)])
            meta.attribution_reference = {
                f"{o}__{f}": numeric_reference(ref_ex.contributions[:, k, j], n_bins=10)
                for k, o in enumerate(predictor.outputs) for j, f in enumerate(predictor.fields)
            }
            explain_rps = _explain_rows_per_s(predictor, dte)
            meta.model_shape["explain_rows_per_s_measured"] = explain_rps

        # ---- evaluation -------------------------------------------------------------
        with console.status("evaluating on the test split (bootstrap intervals)"):
            pm = metrics.point_metrics(yte, P)
            ci = metrics.bootstrap_intervals(yte, P, n_boot=cfg.bootstrap, seed=seed)
            base = baselines.fit_baselines(dtr, ytr, dte, seed, cfg.derived_features)
            logged = {f"test_{k}": v for k, v in pm.items()}
            for k, (lo, hi) in ci.items():
                logged[f"test_{k}_ci_low"], logged[f"test_{k}_ci_high"] = lo, hi
            for name, Q in base.items():
                logged[f"{name}_test_log_loss" if name == "null" else f"baseline_{name}_test_log_loss"] = metrics.log_loss(yte, Q)
                if name != "null":
                    logged[f"baseline_{name}_test_auroc_macro"] = metrics.auroc_macro(yte, Q)
            if oracle_P is not None:
                oP = oracle_P[te]
                logged["oracle_test_log_loss"] = metrics.log_loss(yte, oP)
                logged["oracle_test_auroc_macro"] = metrics.auroc_macro(yte, oP)
                logged["oracle_test_brier"] = metrics.brier(yte, oP)
                logged["oracle_test_ece"] = metrics.ece(yte, oP)
                logged["oracle_capture"] = metrics.oracle_capture(
                    logged["null_test_log_loss"], logged["test_log_loss"], logged["oracle_test_log_loss"]
                )
                logged["auroc_ratio_to_oracle"] = logged["test_auroc_macro"] / logged["oracle_test_auroc_macro"]
                logged["baseline_logreg_oracle_capture"] = metrics.oracle_capture(
                    logged["null_test_log_loss"], logged["baseline_logreg_test_log_loss"], logged["oracle_test_log_loss"]
                )
            if best.number != chosen.number:
                # what the cheaper-to-explain choice costs: the best CV candidate, fitted the same way
                bp, _, _, bcal, _ = calibrate(best)
                braw = tune.fit_final(Xtr, ttr, bp, best.n_rounds).predict(tune.dmatrix(Xte), output_margin=True)
                bP = bcal.proba(braw.reshape(len(te), n_out), link, cfg.label_threshold_pct)
                logged["best_cv_candidate_test_log_loss"] = metrics.log_loss(yte, bP)
                if oracle_P is not None:
                    logged["best_cv_candidate_oracle_capture"] = metrics.oracle_capture(
                        logged["null_test_log_loss"], logged["best_cv_candidate_test_log_loss"],
                        logged["oracle_test_log_loss"])
            logged["explain_rows_per_s"] = explain_rps
            subgroups = _subgroups(yte, P, dte)
            for r in subgroups.dropna().itertuples(index=False):
                logged[f"test_log_loss__{r.group}_{r.level}"] = r.log_loss
                logged[f"test_auroc_macro__{r.group}_{r.level}"] = r.auroc_macro
            mlflow.log_metrics(logged)
        meta.training_metrics = {k: v for k, v in logged.items() if not k.startswith("test_log_loss__") and "auroc_macro__" not in k}

        # ---- artifacts ----------------------------------------------------------------
        with tempfile.TemporaryDirectory() as tmp, console.status("writing plots, model card and the model"):
            tmp = Path(tmp)
            art = tmp / "report"
            art.mkdir()
            n_plot = min(len(dte), 2000)
            Xte_plot = Xte.iloc[:n_plot]
            for k, o in enumerate(predictor.outputs):
                if o == "no_change":
                    continue
                title = ("Contributions to the expected change of the pain threshold (%-points; right = toward "
                         "hypoalgesia), exact TreeSHAP" if o == ORDINAL_OUTPUT
                         else f"Contributions to the {o} margin (log-odds), exact TreeSHAP")
                plots.shap_summary(ex.contributions[:n_plot], ex.base[:n_plot], Xte_plot, k, title,
                                   str(art / f"shap_summary_{o}.png"))
            extra = {"logistic regression": base["logreg"]}
            if oracle_P is not None:
                extra["oracle (truth)"] = oracle_P[te]
            plots.calibration_curves(yte, P, str(art / "calibration_curves.png"), extra=extra)
            cm = plots.confusion(yte, P, str(art / "confusion_matrix.png"))
            subgroups.to_csv(art / "subgroup_metrics.csv", index=False)
            pd.DataFrame([t.__dict__ | t.params for t in trials]).drop(columns=["params"]).to_csv(art / "search_trials.csv", index=False)
            card = model_card(
                name=registered_model, cfg=cfg, metrics=logged, intervals=ci, subgroups=subgroups, meta=meta,
                split=split.description, n_rows=len(df), dropped=dropped, data_name=data.name,
                synthetic=oracle is not None, confusion=cm,
            )
            (art / "model_card.md").write_text(card)
            mlflow.log_artifacts(str(art), artifact_path="report")

            pred_dir = predictor.save(tmp / "predictor")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE),
                artifacts={"predictor": str(pred_dir)},
                code_paths=CODE_PATHS,
                signature=_signature(),
                input_example=_input_example(),
                pip_requirements=_pip_requirements(),
                metadata={"contract_version": CONTRACT_VERSION, "label_threshold_pct": cfg.label_threshold_pct},
            )
        mv = mlflow.register_model(info.model_uri, registered_model, tags={"contract_version": CONTRACT_VERSION,
                                                                             "label_threshold_pct": f"{cfg.label_threshold_pct:g}"})
        version = str(mv.version)

        # ---- champion gate ----------------------------------------------------------------
        promoted, gate = _gate(client, registered_model, version, predictor, dte, yte, logged["test_log_loss"], CHAMPION_ALIAS)
        mlflow.set_tag("gate_decision", "promoted" if promoted else "kept_champion")
        mlflow.set_tag("gate_message", gate)
        mlflow.set_tag("registered_model_version", version)
        console.print(f"[bold]registry:[/bold] {registered_model} version {version}: {gate}")
        return TrainResult(run.info.run_id, registered_model, version, promoted, gate, logged, ci,
                           chosen.params | {"n_rounds": chosen.n_rounds})


def read_table_any(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        return pd.read_parquet(p)
    if p.suffix.lower() == ".csv":
        return pd.read_csv(p, dtype={"subject_id": "str"})
    raise ContractFileError(f"{p.name}: not a CSV or Parquet file")


def _gate(client, name, version, predictor, dte, yte, new_ll, alias) -> tuple[bool, str]:
    """Move `alias` to the new version only if it beats the current champion on this test split."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    if current is None:
        client.set_registered_model_alias(name, alias, version)
        import mlflow

        mlflow.log_metric("gate_new_test_log_loss", new_ll)
        return True, f"no current champion: version {version} promoted to @{alias} (test log-loss {new_ll:.4f})"
    import mlflow

    from model_runtime.loading import ModelNotAvailable, load_model

    try:
        champ = load_model(f"models:/{name}@{alias}").predictor
        champ_ll = metrics.log_loss(yte, champ.predict_proba(dte))
    except (ModelNotAvailable, ValueError) as exc:
        client.set_registered_model_alias(name, alias, version)
        return True, f"current champion version {current.version} cannot score this data ({exc}); version {version} promoted"
    mlflow.log_metrics({"gate_champion_test_log_loss": champ_ll, "gate_new_test_log_loss": new_ll})
    if new_ll < champ_ll:
        client.set_registered_model_alias(name, alias, version)
        return True, (f"version {version} beats champion version {current.version} on this test split "
                      f"(log-loss {new_ll:.4f} < {champ_ll:.4f}): promoted to @{alias}")
    return False, (f"version {version} does not beat champion version {current.version} on this test split "
                   f"(log-loss {new_ll:.4f} >= {champ_ll:.4f}): @{alias} stays on version {current.version}")


def summarize(result: TrainResult) -> str:
    m = result.metrics
    keys = ["test_log_loss", "test_auroc_macro", "test_brier", "test_ece", "null_test_log_loss",
            "baseline_logreg_test_log_loss", "baseline_cpm_rule_test_log_loss", "baseline_psychosocial_rule_test_log_loss",
            "oracle_test_log_loss", "oracle_test_auroc_macro", "oracle_capture", "auroc_ratio_to_oracle",
            "best_cv_candidate_test_log_loss", "best_cv_candidate_oracle_capture", "explain_rows_per_s"]
    return json.dumps({k: round(m[k], 4) for k in keys if k in m}, indent=1)
