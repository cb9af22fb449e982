"""`eih info`: where the MLflow store is and why, what is registered in it, and which
versions of the package and its main libraries run. Reads only: a local store that does
not exist yet is reported, not created."""

from __future__ import annotations

import sys

import typer

RULE = "MLFLOW_TRACKING_URI > EIH_STORE_DIR > EIH_HOME > the project's own mlruns/ > ~/.eih"


def register(app: typer.Typer) -> None:
    """Add `eih info` to the command line."""
    app.command("info", short_help="Where the store is, what is registered in it.")(info)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from model_runtime.settings import package_version

    parts = [f"eih-service {package_version()}", f"Python {sys.version.split()[0]}"]
    for dist in ("mlflow", "bentoml", "xgboost"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} not installed")
    return ", ".join(parts)


def _model_lines(name: str) -> tuple[list[str], int]:
    """The registered model's lines and the exit code (1 when the store could not be read)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from model_runtime import champion
    from model_runtime.settings import configure_mlflow

    configure_mlflow()
    client = MlflowClient()
    try:
        found = sorted(client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))
    except MlflowException as exc:
        return [f"the store could not be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"], 1
    except Exception as exc:  # noqa: BLE001 - an unreachable server: one line, not a traceback
        return [f"the store could not be read: {type(exc).__name__}"], 1
    if not found:
        return [f"{name} is not registered in this store: train one with `eih train --data FILE` "
                "(or `eih quickstart`)"], 0
    current = champion.holder(client, name)
    lines = [f"{name}: version(s) {', '.join(str(mv.version) for mv in found)}"]
    if current is None:
        lines.append("@champion is not set: eih models promote VERSION")
    else:
        lines.append(f"@champion = version {current}  (eih models list: each version's metrics and gate)")
    return lines, 0


def info(name: str = typer.Option("eih-responder", "--name", help="Registered model name.")) -> None:
    """Where the MLflow store is and which rule chose it, the registered model's versions
    and which one is @champion, and the versions of the package, Python, MLflow, BentoML
    and XGBoost. Exit code 1 when the store could not be read."""
    from model_runtime.settings import local_store_missing, store_source, tracking_uri

    rule = store_source()
    uri = tracking_uri()
    typer.echo(f"versions:   {_versions()}")
    typer.echo(f"store:      {uri}")
    typer.echo(f"chosen by:  {rule}  (first that applies: {RULE})")
    missing = local_store_missing(uri)
    if missing is not None:
        typer.echo(f"model:      none: the store does not exist yet ({missing}); `eih quickstart` or "
                   "`eih train --data FILE` creates it")
        return
    lines, code = _model_lines(name)
    for i, line in enumerate(lines):
        typer.echo(("model:      " if i == 0 else "            ") + line)
    raise typer.Exit(code)
