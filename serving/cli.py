"""`eih serve`: the BentoML HTTP service on the champion model (or --model URI)."""

from __future__ import annotations

import os
import shutil
import sys

import typer

SERVICE = "serving.service:EIHService"


def register(app: typer.Typer) -> None:
    """Add `serve` to the `eih` command line."""
    app.command("serve", short_help="Serve the champion over HTTP (BentoML).")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface; "
                                                         "then set EIH_API_TOKEN)."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port."),
    model: str | None = typer.Option(None, "--model", help="Model URI to serve (default: the champion, "
                                                           "models:/eih-responder@champion)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes, each with its own copy of the model."),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", min=1024, help="Largest request body accepted; larger ones get 413 (default: "
                                                 "EIH_MAX_BODY_BYTES, else 1 MiB)."
    ),
    follow_alias: float | None = typer.Option(
        None, "--follow-alias", min=1, metavar="SECONDS", help="Look up the alias (@champion) every SECONDS and serve "
        "the new version when it moves, swapped in whole once loaded (default: off; restart to serve a new champion)."),
    wait_for_model: bool = typer.Option(False, "--wait-for-model", help="Start even when the model is not in the "
                                        "store yet; /readyz answers 503 until it is (default: exit 2 with the reason)."),
) -> None:
    """Serve POST /predict, POST /explain and GET /metadata over HTTP (BentoML).

    The model is loaded once per worker at start-up; /readyz answers 503 (and the log says
    why) until a usable model is loaded. Set EIH_API_TOKEN to require
    `Authorization: Bearer <token>` on every route but the health probes. The MLflow store
    is the project's (`eih info` shows which and why). Stop with Ctrl-C.

    Exit code 2 without starting when the port is in use or the model is not in the store.
    """
    from model_runtime.settings import champion_uri, pin_store_rule, tracking_uri
    from serving.ports import port_problem

    problem = port_problem(host, port)
    if problem:
        _fail(problem)
    uri = model or champion_uri()
    if follow_alias is not None and not _is_alias(uri):
        _fail(f"--follow-alias follows an alias: serve a models:/NAME@ALIAS URI, not {uri}")
    if not wait_for_model:
        _check_model(uri)
    pin_store_rule()
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri()  # resolved here, so every worker uses the same store
    if model:
        env["EIH_MODEL_URI"] = model
    env["EIH_SERVE_WORKERS"] = str(workers)
    if max_body_bytes is not None:
        env["EIH_MAX_BODY_BYTES"] = str(max_body_bytes)
    if follow_alias is not None:
        env["EIH_FOLLOW_ALIAS_SECONDS"] = f"{follow_alias:g}"
    if host not in ("127.0.0.1", "localhost", "::1") and not env.get("EIH_API_TOKEN"):
        typer.echo(f"warning: listening on {host} without EIH_API_TOKEN: anyone who can reach it can call the model",
                   err=True)
    auth = "bearer token required" if env.get("EIH_API_TOKEN") else "no auth (EIH_API_TOKEN unset)"
    follow = f", following the alias every {follow_alias:g} s" if follow_alias is not None else ""
    typer.echo(f"serving {uri} on http://{host}:{port} ({workers} worker(s), {auth}{follow}); "
               f"readiness: /readyz", err=True)
    _exec_bentoml(host, port, env)


def _is_alias(uri: str) -> bool:
    return uri.startswith("models:/") and "@" in uri


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_model(uri: str) -> None:
    """Exit 2 with the loader's one-line reason when the registry does not know `uri`.

    Only the registry lookup runs here (the service loads the model itself); when the lookup
    fails, the loader is asked for its reason, which says where it looked and what to run."""
    from model_runtime.loading import ModelNotAvailable, load_model, resolve
    from model_runtime.settings import configure_mlflow

    configure_mlflow()
    try:
        resolve(uri)
        return
    except Exception:  # noqa: BLE001 - the loader below gives the reason in one line
        pass
    try:
        load_model(uri)
    except ModelNotAvailable as exc:
        _fail(str(exc).splitlines()[0] + " (or pass --wait-for-model to start and wait for it)")


def _exec_bentoml(host: str, port: int, env: dict) -> None:
    bentoml = shutil.which("bentoml", path=os.path.dirname(sys.executable)) or shutil.which("bentoml")
    argv = [bentoml, "serve", SERVICE, "--host", host, "--port", str(port)] if bentoml else [
        sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
