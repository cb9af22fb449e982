"""Where things live by default. One place, so every command agrees.

The MLflow store defaults to a local SQLite database with artifacts under `mlruns/`
(relative to the working directory). `MLFLOW_TRACKING_URI` points the same code at a
team server instead.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "eih-responder"
DEFAULT_REGISTERED_MODEL = "eih-responder"
CHAMPION_ALIAS = "champion"


def store_dir() -> Path:
    return Path(os.environ.get("EIH_STORE_DIR", "mlruns")).resolve()


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{store_dir() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str | None = None) -> str | None:
    """Artifact location for new experiments on a local SQLite store: `artifacts/` next
    to the database (None on a server, which decides for itself)."""
    db = _sqlite_path(uri or tracking_uri())
    return (db.parent / "artifacts").resolve().as_uri() if db is not None else None


def champion_uri(name: str = DEFAULT_REGISTERED_MODEL) -> str:
    return f"models:/{name}@{CHAMPION_ALIAS}"


def configure_mlflow() -> str:
    """Point mlflow at the project's store (creating the local folder) and return the URI."""
    import mlflow

    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def get_or_create_experiment(name: str) -> str:
    """Experiment id for `name`, created with the project's artifact root when new."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    return mlflow.create_experiment(name, artifact_location=root) if root else mlflow.create_experiment(name)


PRIVACY_ENV = {
    # health data: no usage telemetry from MLflow or BentoML, ever
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    # no per-file download bars in logs
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply_privacy_env() -> None:
    """Set the privacy defaults (telemetry off) for this process and its children."""
    for key, value in PRIVACY_ENV.items():
        os.environ.setdefault(key, value)
