"""`eih ui` (MLflow UI on the project store) and `eih quickstart` (fresh clone to a
served, explained prediction in one go)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import typer


def run_foreground(cmd: list[str]) -> int:
    """Run a server command until it ends and return its exit code. Stopping this process
    stops the server too: SIGTERM and SIGHUP (a batch system, systemd, a closed terminal)
    are passed on to it, and after Ctrl-C (which the terminal sends to both) it is given
    10 s to finish before it is terminated. Without this, a SIGTERM to `eih quickstart`
    or `eih ui` left the server running on its port."""
    proc = subprocess.Popen(cmd)

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        for stop in (None, proc.terminate, proc.kill):  # 10 s to end by itself, then terminate, then kill
            if stop is not None:
                stop()
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - rc if rc < 0 else rc  # killed by signal N: the shell's 128 + N


def register(app: typer.Typer) -> None:
    app.command("ui", short_help="Open the MLflow UI on the project's store.")(ui)
    app.command("quickstart", short_help="Simulate, train, score and serve in one go.")(quickstart)


def ui_command(host: str, port: int) -> list[str]:
    """The `mlflow server` command line for the project's store, run through eih.mlflow_ui (the
    same server without MLflow's usage-data banner)."""
    from model_runtime.settings import configure_mlflow

    uri = configure_mlflow()
    return [sys.executable, "-m", "eih.mlflow_ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", "1"]


def exit_if_port_busy(host: str, port: int, what: str) -> None:
    """One line with the fix and exit 2 when `host:port` cannot be listened on."""
    from serving.ports import port_problem

    problem = port_problem(host, port, what)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def ui(
    port: int = typer.Option(5000, "--port", min=1, max=65535, help="Port of the MLflow UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (127.0.0.1: this machine only)."),
) -> None:
    """Open the MLflow UI on the project's store: the same tracking database and
    artifacts that `eih train` and `eih score` write (the checkout's mlruns/mlflow.db
    unless MLFLOW_TRACKING_URI or EIH_* say otherwise; `eih info` shows which). MLflow's own security options
    (allowed hosts, CORS) stay at their defaults; its usage-data notice is marked as read
    (telemetry is off). Exit code 2 without starting when the port is in use. When the store
    is a tracking server (MLFLOW_TRACKING_URI=http(s)://...), that server is the UI: `eih ui`
    prints its address and starts nothing."""
    from model_runtime.settings import tracking_uri

    store = tracking_uri()
    if store.startswith(("http://", "https://")):
        shown = re.sub(r"//[^/@]*@", "//", store)  # never print credentials from the URI
        typer.echo(f"the store is the tracking server {shown}: open its own MLflow UI there (nothing started here)")
        raise typer.Exit(0)
    exit_if_port_busy(host, port, "eih ui")
    cmd = ui_command(host, port)
    typer.echo(f"MLflow UI on http://{host}:{port}  (store: {cmd[cmd.index('--backend-store-uri') + 1]}); Ctrl-C stops it")
    raise typer.Exit(run_foreground(cmd))


def quickstart(
    n: int = typer.Option(20000, "--n", help="Rows of the simulated training cohort."),
    n_trials: int | None = typer.Option(None, "--n-trials", help="Search trials (default: the training config's 30)."),
    seed: int = typer.Option(7, "--seed", help="Seed for the simulation and the training."),
    workdir: Path = typer.Option(Path("quickstart"), "--workdir", help="Where the cohorts, scores and reports go."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the HTTP service at the end (Ctrl-C stops it)."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port of the HTTP service."),
) -> None:
    """Simulate a cohort, train, register and promote the champion, score a sample
    cohort with explanations, then serve the champion over HTTP, printing where each
    result is. With the service on, the port is checked first: a busy one stops it at once
    (exit 2), not after the training."""
    if serve:
        exit_if_port_busy("127.0.0.1", port, "eih serve")
    from rich.console import Console

    from model_runtime.settings import champion_uri, configure_mlflow
    from simulation import simulate
    from training.config import load_config
    from training.train import summarize, train

    console = Console()
    workdir.mkdir(parents=True, exist_ok=True)
    uri = configure_mlflow()
    console.rule("1/4 simulate")
    cohort, oracle = simulate(n, seed=seed, n_sites=1)
    data, opath = workdir / "train_cohort.parquet", workdir / "train_cohort.oracle.parquet"
    cohort.to_parquet(data, index=False)
    oracle.to_parquet(opath, index=False)
    sample, _ = simulate(2000, seed=seed + 1, n_sites=3)
    sample_path = workdir / "sample_cohort.csv"
    sample.drop(columns=["ppt_post_kpa"]).to_csv(sample_path, index=False)
    console.print(f"training cohort {data} ({n} rows, oracle {opath}); sample to score {sample_path}")

    console.rule("2/4 train, register, promote")
    result = train(data, oracle=opath, cfg=load_config(None, n_trials=n_trials), seed=seed, console=console)
    console.print(summarize(result))

    console.rule("3/4 score the sample cohort")
    scored = workdir / "sample_scores.csv"
    rc = subprocess.call([sys.executable, "-m", "eih.cli", "score", str(sample_path), "--out", str(scored),
                          "--rejects", str(workdir / "sample_rejects.csv"), "--explain", "top"])
    if rc != 0:
        console.print(f"[red]scoring failed (exit {rc})[/red]")
        raise typer.Exit(rc)

    example = {"records": [_example()]}
    (workdir / "example_request.json").write_text(json.dumps(example, indent=1))
    console.rule("4/4 where things are")
    console.print(f"MLflow store:        {uri}   (browse: eih ui  ->  http://127.0.0.1:5000)")
    console.print(f"champion model:      {champion_uri()}  (version {result.model_version})")
    console.print(f"batch scores:        {scored}  (+ cohort report in the MLflow run of the batch)")
    console.print(f"example request:     {workdir / 'example_request.json'}")
    console.print(f"try it:              curl -s -X POST http://127.0.0.1:{port}/predict -H 'Content-Type: application/json' "
                  f"-d @{workdir / 'example_request.json'}")
    if serve:
        console.rule(f"serving on http://127.0.0.1:{port} (Ctrl-C stops)")
        raise typer.Exit(run_foreground([sys.executable, "-m", "eih.cli", "serve", "--port", str(port)]))


def _example() -> dict:
    from data_contracts.examples import EXAMPLE_RECORD

    return {k: v for k, v in EXAMPLE_RECORD.items() if v is not None}


