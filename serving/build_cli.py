"""`eih build`: a Bento of the HTTP service with one registered model version inside
(serving/bento.py does the work; bentofile.yaml says what goes in)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `build` to the `eih` command line."""
    app.command("build")(build)


def build(
    model: str | None = typer.Option(None, "--model", help="Registered model version to bundle: models:/NAME@ALIAS or "
                                                           "models:/NAME/VERSION (default: models:/eih-responder@champion)."),
    version: str | None = typer.Option(None, "--version", help="Version label of the Bento (default: generated)."),
) -> None:
    """Build a Bento for containers and clusters: the service's code (serving, model_runtime,
    features, data_contracts), its pinned Python packages and the chosen registered model
    version, copied in so the Bento serves without the MLflow store.

    The model is resolved in the project's MLflow store (MLFLOW_TRACKING_URI, or
    ./mlruns/mlflow.db), copied into BentoML's model store and run once on the contract's
    example record before the build. Bentos and models go to BentoML's store (BENTOML_HOME,
    default ~/bentoml). Prints the Bento's tag on stdout (the progress goes to stderr), so
    `tag=$(eih build)` works; then `bentoml serve $tag` serves it on port 3000 and
    `bentoml containerize $tag` (needs Docker) makes the image.
    """
    from model_runtime.loading import ModelNotAvailable
    from model_runtime.settings import champion_uri, project_root
    from serving.bento import BENTOFILE, build_bento, check_bundled, import_version

    root = project_root()
    if root is None or not (root / BENTOFILE).is_file():
        _fail(f"eih build runs from a checkout of the project (it needs {BENTOFILE} beside pyproject.toml)")
    uri = model or champion_uri()
    try:
        bundled = import_version(uri)
        typer.echo(f"model: {bundled.registry_uri} (run {bundled.run_id}) "
                   f"{'already in' if bundled.reused else 'copied into'} BentoML's model store as {bundled.tag}", err=True)
        check_bundled(bundled.tag)
    except (ModelNotAvailable, ValueError) as exc:
        _fail(str(exc))
    bento = build_bento(bundled, root, version=version)
    typer.echo(f"built Bento {bento.tag} at {bento.path}\n"
               f"  serve it:         bentoml serve {bento.tag} --host 127.0.0.1 --port 3000\n"
               f"  container image:  bentoml containerize {bento.tag}   (needs Docker)", err=True)
    typer.echo(str(bento.tag))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
