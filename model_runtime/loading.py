"""Load a registered model by URI (default `models:/eih-responder@champion`).

One loader for training's gate, the HTTP service, the batch scorer and notebooks, so they
can never disagree. An alias is resolved to a version once, and that version is loaded
(`models:/NAME/VERSION`): when the alias moves while a model loads, the version served
and the version reported are still the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_runtime.predictor import EIHPredictor


class ModelNotAvailable(RuntimeError):
    """No usable model at the URI (missing, unreadable, or another contract major)."""


@dataclass
class LoadedModel:
    """A predictor and what the registry says about it."""

    predictor: EIHPredictor
    uri: str
    name: str | None
    version: str | None
    run_id: str | None


@dataclass(frozen=True)
class Resolved:
    """A model URI pinned to what will be loaded."""

    name: str | None
    version: str | None
    run_id: str | None
    load_uri: str


def resolve(uri: str) -> Resolved:
    """Pin a models:/name@alias or models:/name/version URI to one version (other URIs,
    such as runs:/ or a path, load as they are)."""
    from mlflow import MlflowClient

    rest = uri[len("models:/"):] if uri.startswith("models:/") else ""
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = MlflowClient().get_model_version_by_alias(name, alias)
    elif "/" in rest:
        name, version = rest.split("/", 1)
        mv = MlflowClient().get_model_version(name, version)
    else:
        return Resolved(None, None, None, uri)
    return Resolved(mv.name, str(mv.version), mv.run_id, f"models:/{mv.name}/{mv.version}")


def load_model(uri: str | None = None) -> LoadedModel:
    """Load the model at `uri` (default: the champion) or raise ModelNotAvailable with one
    line that says where it looked and what to run."""
    import mlflow

    from model_runtime.settings import champion_uri, configure_mlflow, store_source

    store = configure_mlflow()
    uri = uri or champion_uri()
    try:
        pinned = resolve(uri)
        pyfunc = mlflow.pyfunc.load_model(pinned.load_uri)
    except Exception as exc:  # noqa: BLE001 - turn registry/IO errors into one clear reason
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelNotAvailable(
            f"no usable model at {uri} in the store {store} ({store_source()}): {type(exc).__name__}: {first}. "
            "Train one with `eih train --data FILE` (or `eih quickstart`), or point MLFLOW_TRACKING_URI at the store "
            "that holds it"
        ) from None
    predictor = pyfunc.unwrap_python_model().predictor
    return LoadedModel(predictor=predictor, uri=uri, name=pinned.name, version=pinned.version, run_id=pinned.run_id)
