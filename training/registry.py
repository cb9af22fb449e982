"""The registry edge of training: log a predictor as the one MLflow model artifact
(models from code, `model_runtime/pyfunc_model.py`), register it, and the gate that
moves the `@champion` alias only when the new version beats, with a paired interval that
excludes harm, both the best baseline and the current champion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import BY_NAME, CONTRACT_VERSION, PREDICTORS, RESPONSES
from model_runtime.predictor import EIHPredictor

ROOT = Path(__file__).resolve().parent.parent
PYFUNC_CODE = ROOT / "model_runtime" / "pyfunc_model.py"
CODE_PATHS = [str(ROOT / p) for p in ("data_contracts", "features", "model_runtime")]
"""What a registered model ships as code: the contract, the features and the runtime."""


def signature():
    """The pyfunc signature: contract predictors in, three probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    cols = [ColSpec("string", "subject_id", required=False)]
    for name in PREDICTORS:
        f = BY_NAME[name]
        cols.append(ColSpec("double" if f.kind == "number" else "string", name, required=f.required))
    outputs = Schema([ColSpec("double", f"p_{o}") for o in RESPONSES])
    return ModelSignature(inputs=Schema(cols), outputs=outputs)


def input_example() -> pd.DataFrame:
    """The contract's example record as a one-row frame of the signature's types."""
    rec = {k: v for k, v in EXAMPLE_RECORD.items() if k == "subject_id" or k in PREDICTORS}
    df = pd.DataFrame([rec])
    for name in PREDICTORS:
        df[name] = df[name].astype("float64" if BY_NAME[name].kind == "number" else object)
    return df


def pip_requirements() -> list[str]:
    """The installed versions of what the model needs to load and predict."""
    from importlib.metadata import version

    pkgs = ["mlflow", "xgboost", "pandas", "numpy", "scikit-learn", "scipy", "pyarrow", "pandera", "pydantic"]
    return [f"{p}=={version(p)}" for p in pkgs]


def log_and_register(predictor: EIHPredictor, workdir: Path, registered_model: str) -> str:
    """Log the predictor as the run's model `model`, register it and return the new version."""
    import mlflow

    pred_dir = predictor.save(workdir / "predictor")
    t = predictor.threshold_pct
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(PYFUNC_CODE), artifacts={"predictor": str(pred_dir)}, code_paths=CODE_PATHS,
        signature=signature(), input_example=input_example(), pip_requirements=pip_requirements(),
        metadata={"contract_version": CONTRACT_VERSION, "label_threshold_pct": t},
    )
    mv = mlflow.register_model(info.model_uri, registered_model,
                               tags={"contract_version": CONTRACT_VERSION, "label_threshold_pct": f"{t:g}"})
    return str(mv.version)


def champion_proba(name: str, alias: str, rows: pd.DataFrame) -> tuple[str, np.ndarray] | None:
    """(version, probabilities of `rows`) of the model at `alias`, or None when there is none or
    it cannot score these rows (another contract or threshold)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from model_runtime.loading import ModelNotAvailable, load_model

    try:
        current = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    try:
        champ = load_model(f"models:/{name}/{current.version}").predictor
        return str(current.version), champ.predict_proba(rows)
    except (ModelNotAvailable, ValueError, KeyError):
        return None


GATE_RULE = ("promoted only if the upper 95 % bound of the paired log-loss difference (new - comparator, same people)"
             " is below 0 against the best baseline and against the current champion")


def _verdict(label: str, paired: tuple[float, float, float]) -> tuple[bool, str]:
    d, lo, hi = paired
    ok = hi < 0
    word = "beats" if ok else "does not beat"
    return ok, f"{word} {label} (paired log-loss difference {d:+.4f}, 95 % CI {lo:+.4f} to {hi:+.4f})"


def paired_gate(name: str, version: str, alias: str, rows: pd.DataFrame, summary, resummarize) -> tuple[bool, str]:
    """Move `alias` to `version` only if the paired interval excludes harm against the best
    baseline and the current champion (`GATE_RULE`). `summary` is training.internal.Summary of
    the new version; `resummarize(P)` recomputes it with the champion's probabilities `P` of
    `rows` (read under the registry's gate lock, so a champion moved meanwhile is the one compared)."""
    from training.gate_lock import gate_lock

    with gate_lock(name):
        return _decide_paired(name, version, alias, rows, summary, resummarize)


def _decide_paired(name, version, alias, rows, summary, resummarize) -> tuple[bool, str]:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    champion = champion_proba(name, alias, rows)
    if champion is not None:
        summary = resummarize(champion[1])
    checks = []
    new_ll = summary.point["log_loss"]
    mlflow.log_metric("gate_new_test_log_loss", new_ll)
    if champion is not None:
        d, lo, hi = summary.paired("champion")
        mlflow.log_metrics({"gate_champion_test_log_loss": summary.point["champion_log_loss"],
                            "paired_log_loss_diff_vs_champion": d, "paired_log_loss_diff_vs_champion_ci_low": lo,
                            "paired_log_loss_diff_vs_champion_ci_high": hi})
        checks.append(_verdict(f"champion version {champion[0]}", summary.paired("champion")))
    best = summary.best_baseline
    checks.append(_verdict(f"the best baseline ({best})", summary.paired(best)))
    reasons = "; ".join(text for _, text in checks)
    lead = "" if champion is not None else "no current champion; "
    if all(ok for ok, _ in checks):
        client.set_registered_model_alias(name, alias, version)
        return True, f"{lead}version {version} {reasons}: promoted to @{alias}"
    stays = f"@{alias} stays on version {champion[0]}" if champion is not None else f"no version is @{alias}"
    return False, f"{lead}version {version} {reasons}: registered, not promoted ({stays}; rule: {GATE_RULE})"
