"""`eih serve`: the BentoML HTTP service on the champion model (or --model URI)."""

from __future__ import annotations

import os
import shutil
import sys

import typer

SERVICE = "serving.service:EIHService"


def register(app: typer.Typer) -> None:
    """Add `serve` to the `eih` command line."""
    app.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface; "
                                                         "then set EIH_API_TOKEN)."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port."),
    model: str | None = typer.Option(None, "--model", help="Model URI to serve (default: models:/eih-responder@champion)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes, each with its own copy of the model."),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", min=1024, help="Largest request body accepted; larger ones get 413 (default: EIH_MAX_BODY_BYTES, else 1 MiB)."
    ),
) -> None:
    """Serve POST /predict, POST /explain and GET /metadata over HTTP (BentoML).

    The model is loaded once per worker at start-up; /readyz answers 503 (and the log says
    why) until a usable model is loaded. Set EIH_API_TOKEN to require
    `Authorization: Bearer <token>` on every route but the health probes. The MLflow store
    is MLFLOW_TRACKING_URI, or ./mlruns/mlflow.db. Stop with Ctrl-C.
    """
    from model_runtime.settings import champion_uri, tracking_uri

    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri()  # resolved here, so every worker uses the same store
    if model:
        env["EIH_MODEL_URI"] = model
    env["EIH_SERVE_WORKERS"] = str(workers)
    if max_body_bytes is not None:
        env["EIH_MAX_BODY_BYTES"] = str(max_body_bytes)
    if host not in ("127.0.0.1", "localhost", "::1") and not env.get("EIH_API_TOKEN"):
        typer.echo(f"warning: listening on {host} without EIH_API_TOKEN: anyone who can reach it can call the model",
                   err=True)
    auth = "bearer token required" if env.get("EIH_API_TOKEN") else "no auth (EIH_API_TOKEN unset)"
    typer.echo(f"serving {model or champion_uri()} on http://{host}:{port} ({workers} worker(s), {auth}); "
               f"readiness: /readyz", err=True)
    bentoml = shutil.which("bentoml", path=os.path.dirname(sys.executable)) or shutil.which("bentoml")
    argv = [bentoml, "serve", SERVICE, "--host", host, "--port", str(port)] if bentoml else [
        sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
