"""Where things live: the MLflow store, the experiment and the registered model's names,
and the privacy settings of every process. One place, so every command agrees.

The store, first match wins:
1. `MLFLOW_TRACKING_URI` (a team server, or any store MLflow knows);
2. `EIH_STORE_DIR`: a local SQLite store in that folder;
3. `EIH_HOME`: a local SQLite store in `$EIH_HOME/mlruns`;
4. the project's own `mlruns/` beside the package (a checkout: the folder holding
   pyproject.toml), so every command finds the same store from any working directory;
5. `~/.eih/mlruns` when the package is not in a checkout (an installed wheel, a Bento).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "eih-responder"
DEFAULT_REGISTERED_MODEL = "eih-responder"
CHAMPION_ALIAS = "champion"


def project_root() -> Path | None:
    """The checkout the package runs from (the folder with pyproject.toml), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def store_dir() -> Path:
    """The local store's folder (see the module docstring for the rule)."""
    if os.environ.get("EIH_STORE_DIR"):
        return Path(os.environ["EIH_STORE_DIR"]).resolve()
    if os.environ.get("EIH_HOME"):
        return (Path(os.environ["EIH_HOME"]) / "mlruns").resolve()
    root = project_root()
    return root / "mlruns" if root is not None else Path.home() / ".eih" / "mlruns"


STORE_RULE_ENV = "EIH_STORE_RULE"
"""Set by `configure_mlflow` to "<rule>|<uri>": mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI,
so without it this process and its children would credit the store to that variable."""


def store_source() -> str:
    """Which rule chose the store, in words (for `eih info` and error messages)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    rule, _, pinned = os.environ.get(STORE_RULE_ENV, "").partition("|")
    if uri and rule and pinned == uri:
        return rule
    if uri:
        return "MLFLOW_TRACKING_URI"
    if os.environ.get("EIH_STORE_DIR"):
        return "EIH_STORE_DIR"
    if os.environ.get("EIH_HOME"):
        return "EIH_HOME"
    return "the project's own store" if project_root() is not None else "the user's default store (~/.eih)"


def tracking_uri() -> str:
    """The MLflow tracking URI every command uses."""
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
    """models:/NAME@champion."""
    return f"models:/{name}@{CHAMPION_ALIAS}"


def configure_mlflow() -> str:
    """Point mlflow at the project's store (creating the local folder) and return the URI."""
    import mlflow

    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    pin_store_rule(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def pin_store_rule(uri: str | None = None) -> str:
    """Record which rule chose `uri` (default: the store) before MLFLOW_TRACKING_URI is set to
    it, for this process and its children; returns the rule."""
    uri = uri or tracking_uri()
    rule = store_source()
    os.environ[STORE_RULE_ENV] = f"{rule}|{uri}"
    return rule


def local_store_missing(uri: str | None = None) -> Path | None:
    """The database file of a local SQLite store that does not exist yet (None otherwise), so
    read-only commands can say so instead of creating an empty store."""
    db = _sqlite_path(uri or tracking_uri())
    return db if db is not None and not db.exists() else None


def package_version() -> str:
    """The installed version of the eih-service package ("unknown" when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eih-service")
    except PackageNotFoundError:
        return "unknown"


def get_or_create_experiment(name: str) -> str:
    """Experiment id for `name`, created with the project's artifact root when new."""
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    try:
        return mlflow.create_experiment(name, artifact_location=root) if root else mlflow.create_experiment(name)
    except MlflowException:
        # two trainings starting together on one team server: the other one created it first
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


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
