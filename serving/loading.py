"""Load the registered model by URI (default `models:/eih-responder@champion`).

One loader for the HTTP service, the batch scorer and notebooks, so they can never
disagree. Returns the predictor and what the registry says about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.predictor import EIHPredictor


class ModelNotAvailable(RuntimeError):
    pass


@dataclass
class LoadedModel:
    predictor: EIHPredictor
    uri: str
    name: str | None
    version: str | None
    run_id: str | None


def resolve(uri: str) -> tuple[str | None, str | None, str | None]:
    """(name, version, run_id) of a models:/name@alias or models:/name/version URI."""
    from mlflow import MlflowClient

    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri[len("models:/") :]
    client = MlflowClient()
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    elif "/" in rest:
        name, version = rest.split("/", 1)
        mv = client.get_model_version(name, version)
    else:
        return None, None, None
    return mv.name, str(mv.version), mv.run_id


def load_model(uri: str | None = None) -> LoadedModel:
    import mlflow

    from eih.settings import champion_uri, configure_mlflow

    configure_mlflow()
    uri = uri or champion_uri()
    try:
        name, version, run_id = resolve(uri)
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # noqa: BLE001 - turn registry/IO errors into one clear reason
        raise ModelNotAvailable(f"no usable model at {uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    predictor = pyfunc.unwrap_python_model().predictor
    return LoadedModel(predictor=predictor, uri=uri, name=name, version=version, run_id=run_id)
