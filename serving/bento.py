"""The Bento: the HTTP service's code, its pinned packages and one registered model version in
one deployable unit, and the service's view of the model bundled inside it.

Build (`eih build [--model URI]`, serving/build_cli.py): the URI (default
`models:/eih-responder@champion`) is resolved to one registered version, that MLflow model is
copied into BentoML's model store with `bentoml.mlflow.import_model` (labelled with the
registered name, version and run; a copy already there is reused), loaded and run once on the
contract's example record, and `bentofile.yaml` is built with it into a Bento.

Serve (`bentoml serve TAG`, or the Bento's container): a service started from a Bento that
holds a model loads that model from BentoML's model store and reports its registered name and
version, exactly as `eih serve` reports the same version; it never contacts the MLflow store.
`EIH_MODEL_URI`, when set, still wins. A Bento built without a model (plain `bentoml build`)
loads `@champion` from MLFLOW_TRACKING_URI at start, as `eih serve` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runtime.loading import LoadedModel, ModelNotAvailable

BENTOFILE = "bentofile.yaml"
BENTO_MODEL = "eih-responder"
"""The name of the bundled model in BentoML's model store (and in a Bento's bento.yaml)."""
LABEL_NAME, LABEL_VERSION, LABEL_RUN = "registered_model", "registered_version", "mlflow_run_id"


@dataclass(frozen=True)
class BundledModel:
    """A registered model version in BentoML's model store, ready to go into a Bento."""

    tag: str
    name: str
    version: str
    run_id: str | None
    reused: bool

    @property
    def registry_uri(self) -> str:
        """The registry URI of the bundled version (models:/NAME/VERSION)."""
        return f"models:/{self.name}/{self.version}"


def import_version(uri: str) -> BundledModel:
    """Copy the registered version behind `uri` (models:/NAME@ALIAS or models:/NAME/VERSION) from
    the MLflow store into BentoML's model store, or reuse the copy of that version and run that
    is already there. Raises ModelNotAvailable when the store does not have it."""
    import bentoml

    from model_runtime.loading import resolve
    from model_runtime.settings import configure_mlflow

    if not uri.startswith("models:/"):
        raise ValueError(f"a Bento bundles a registered model version: give models:/NAME@ALIAS or "
                         f"models:/NAME/VERSION, not {uri}")
    store = configure_mlflow()
    try:
        pinned = resolve(uri)
    except Exception as exc:  # noqa: BLE001 - one line that says where it looked
        raise ModelNotAvailable(f"no registered model at {uri} in the store {store}: {type(exc).__name__}") from None
    labels = {LABEL_NAME: pinned.name, LABEL_VERSION: pinned.version, LABEL_RUN: pinned.run_id or ""}
    for stored in bentoml.models.list():
        if stored.tag.name == BENTO_MODEL and {k: stored.info.labels.get(k) for k in labels} == labels:
            return _bundled(stored, reused=True)
    stored = bentoml.mlflow.import_model(BENTO_MODEL, pinned.load_uri, labels=labels,
                                         metadata={"source": pinned.load_uri})
    return _bundled(stored, reused=False)


def _bundled(stored: Any, reused: bool) -> BundledModel:
    labels = stored.info.labels
    return BundledModel(tag=str(stored.tag), name=labels[LABEL_NAME], version=labels[LABEL_VERSION],
                        run_id=labels.get(LABEL_RUN) or None, reused=reused)


def load_bundled(tag: str) -> LoadedModel:
    """Load a bundled model from BentoML's model store (in a Bento: the Bento's own models),
    under its registered name and version."""
    import bentoml

    stored = bentoml.models.get(tag)
    info = _bundled(stored, reused=True)
    pyfunc = bentoml.mlflow.load_model(stored)
    return LoadedModel(predictor=pyfunc.unwrap_python_model().predictor, uri=f"{info.registry_uri} (bundled as {tag})",
                       name=info.name, version=info.version, run_id=info.run_id)


def check_bundled(tag: str) -> LoadedModel:
    """Load the bundled model and score the contract's example record once, so a Bento is
    never built around a model this code cannot serve."""
    from data_contracts.examples import EXAMPLE_RECORD
    from serving.gate import normalise_record
    from serving.scoring import Job, Scorer

    loaded = load_bundled(tag)
    Scorer(loaded).run([Job("predict", [normalise_record(EXAMPLE_RECORD)])])
    return loaded


def bundled_model_tag(service: Any) -> str | None:
    """The tag of the model `eih build` put into the Bento `service` was started from (None
    when the service does not run from a Bento, or from one built without a model).

    BentoML records the Bento on the service object (`service.bento`) when it loads one."""
    bento = getattr(service, "bento", None)
    if bento is None:
        return None
    tags = [str(m.tag) for m in bento.info.all_models if m.tag.name == BENTO_MODEL]
    return tags[0] if tags else None


def build_bento(model: BundledModel | None, root: Path, version: str | None = None):
    """Build `root/bentofile.yaml` into a Bento in BentoML's store (BENTOML_HOME), with `model`
    inside when given; returns the bentoml Bento."""
    import contextlib
    import tempfile

    import bentoml
    import yaml

    opts = yaml.safe_load((root / BENTOFILE).read_text())
    if model is not None:
        opts["models"] = [*opts.get("models", []), model.tag]
        opts["labels"] = {**opts.get("labels", {}), LABEL_NAME: model.name, LABEL_VERSION: model.version}
    # BentoML reads the description file relative to the working directory: build from the checkout
    with tempfile.TemporaryDirectory(prefix="eih-bentofile-") as tmp, contextlib.chdir(root):
        bentofile = Path(tmp) / BENTOFILE
        bentofile.write_text(yaml.safe_dump(opts, sort_keys=False))
        return bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(root), version=version)
