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


def artifact_root() -> str:
    """Artifact location for experiments created by this project on the local store."""
    return (store_dir() / "artifacts").as_uri()


def champion_uri(name: str = DEFAULT_REGISTERED_MODEL) -> str:
    return f"models:/{name}@{CHAMPION_ALIAS}"


def configure_mlflow() -> str:
    """Point mlflow at the project's store (creating the local folder) and return the URI."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///") and "MLFLOW_TRACKING_URI" not in os.environ:
        store_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def get_or_create_experiment(name: str) -> str:
    """Experiment id for `name`, created with the project's artifact root when new."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    kwargs = {}
    if "MLFLOW_TRACKING_URI" not in os.environ:
        kwargs["artifact_location"] = artifact_root()
    return mlflow.create_experiment(name, **kwargs)
