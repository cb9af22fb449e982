"""A small MLflow registry without training, for the registry commands' tests: each version
has a training run with `test_log_loss`, a `gate_decision` tag and a model card artifact.
Built through an explicit MlflowClient, so the process's MLflow settings stay untouched."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

NAME = "eih-responder"


def isolated_store(monkeypatch):
    """For a fixture (`yield from isolated_store(monkeypatch)`): yields `use(store)`, which
    points this process's MLflow at `store.uri` for one test; afterwards the variables and
    MLflow's module state are as before (configure_mlflow exports both URIs and the store
    rule, so a test that runs a command in-process would leak them)."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from model_runtime.settings import STORE_RULE_ENV

    saved = tracking_utils._tracking_uri, registry_utils._registry_uri

    def use(store):
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.setenv(var, store.uri)
        monkeypatch.setenv(STORE_RULE_ENV, "")
        return store

    yield use
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved


def card_text(version: int) -> str:
    return f"# Model card: eih-responder, training run of version {version}\n\nTest log-loss 0.9{version}.\n"


def make_registry(folder: Path, versions: int = 3, champion: str | None = None, gate: dict | None = None,
                  name: str = NAME) -> SimpleNamespace:
    """`versions` versions of `name` in a new SQLite store in `folder`; `champion` gets the alias
    (set directly, as training's gate does); `gate` maps version -> gate_decision."""
    from mlflow import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("eih-responder", artifact_location=(folder / "artifacts").as_uri())
    client.create_registered_model(name)
    runs = {}
    for v in range(1, versions + 1):
        run = client.create_run(exp, run_name=f"train-v{v}")
        rid = run.info.run_id
        client.log_metric(rid, "test_log_loss", 0.9 + v / 100)
        client.set_tag(rid, "gate_decision", (gate or {}).get(str(v), "promoted"))
        client.log_text(rid, card_text(v), "report/model_card.md")
        client.set_terminated(rid)
        mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=rid)
        runs[str(mv.version)] = rid
    if champion is not None:
        client.set_registered_model_alias(name, "champion", champion)
    return SimpleNamespace(uri=uri, client=client, runs=runs, name=name)
