"""`eih models list | promote | rollback` and `eih card`: the registry without the MLflow UI.

Every command reads the project's store (`eih info` says which one and why). A store or
a registered model that does not exist yet is one line that says where it looked and
what to run, with exit code 2.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from model_runtime.settings import CHAMPION_ALIAS, DEFAULT_REGISTERED_MODEL

models_app = typer.Typer(
    name="models", help="List the registered model's versions, move @champion, roll it back.",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
)
NAME = typer.Option(DEFAULT_REGISTERED_MODEL, "--name", help="Registered model name.")


def register(app: typer.Typer) -> None:
    """Add `eih models ...` and `eih card` to the command line."""
    app.add_typer(models_app, name="models")
    app.command("card", short_help="Print a version's model card (markdown).")(card)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and the exit code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def registry(name: str):
    """An MlflowClient on the project's store holding `name`; exits 2 with one line otherwise."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from model_runtime.settings import configure_mlflow, local_store_missing, store_source, tracking_uri

    hint = "train one with `eih train --data FILE` (or `eih quickstart`), or point MLFLOW_TRACKING_URI at its store"
    missing = local_store_missing()
    if missing is not None:
        fail(f"no MLflow store at {missing} ({store_source()}) yet: {hint}")
    uri = configure_mlflow()
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc):
            fail(f"no registered model {name} in the store {uri} ({store_source()}): {hint}")
        fail(f"the store {uri} could not be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", 1)
    except Exception as exc:  # noqa: BLE001 - an unreachable server: one line, not a traceback
        fail(f"the store {tracking_uri()} could not be read: {type(exc).__name__}", 1)
    return client


def versions(client, name: str) -> list:
    """The model versions of `name`, oldest first."""
    return sorted(client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))


def _run_facts(client, run_id: str | None) -> tuple[str, str]:
    """(test log-loss, gate decision) of a version's training run ("-" when unknown)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return "-", "-"
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return "-", "(run deleted)"
    ll = run.data.metrics.get("test_log_loss")
    return (f"{ll:.4f}" if ll is not None else "-"), run.data.tags.get("gate_decision", "-")


def _created(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


@models_app.command("list", short_help="Versions, aliases, test log-loss, gate.")
def list_versions(name: str = NAME) -> None:
    """Every version of the registered model: its aliases, when it was registered (UTC), the
    test log-loss and the gate decision of its training run, and where @champion would go
    back to on `eih models rollback`."""
    from model_runtime import champion

    client = registry(name)
    by_version: dict[str, list[str]] = {}
    for alias, v in (client.get_registered_model(name).aliases or {}).items():  # searches do not return aliases
        by_version.setdefault(str(v), []).append(f"@{alias}")
    rows = [("version", "aliases", "registered (UTC)", "test log-loss", "gate decision")]
    for mv in versions(client, name):
        ll, gate = _run_facts(client, mv.run_id)
        aliases = " ".join(sorted(by_version.get(str(mv.version), []))) or "-"
        rows.append((str(mv.version), aliases, _created(mv.creation_timestamp), ll, gate))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    current = champion.holder(client, name)
    if current is None:
        typer.echo(f"@{CHAMPION_ALIAS} is not set: eih models promote VERSION")
        return
    back = champion.rollback_target(name, client=client)
    typer.echo(f"@{CHAMPION_ALIAS} is version {current}; "
               + (f"eih models rollback would return it to version {back}" if back else "no earlier champion is known"))


@models_app.command("promote", short_help="Move @champion to VERSION.")
def promote(version: int = typer.Argument(..., min=1, help="The version to serve as @champion."),
            name: str = NAME) -> None:
    """Move @champion to VERSION (whatever training's gate decided) and record the move, so
    `eih models rollback` can undo it. A running `eih serve --follow-alias` picks it up; any
    other service serves it after a restart."""
    from model_runtime import champion

    client = registry(name)
    try:
        move = champion.promote(name, version, client=client)
    except champion.ChampionError as exc:
        fail(str(exc))
    if move.previous == move.current:
        typer.echo(f"{name} @{move.alias} is already version {move.current}")
    else:
        typer.echo(f"{name} @{move.alias}: version {move.previous or '(none)'} -> {move.current}")


@models_app.command("rollback", short_help="Move @champion back one step.")
def rollback(name: str = NAME) -> None:
    """Move @champion back one step: to the version that held it before the current one
    (recorded by promote and rollback; when nothing is recorded, the newest earlier version
    that training's gate promoted)."""
    from model_runtime import champion

    client = registry(name)
    try:
        move = champion.rollback(name, client=client)
    except champion.ChampionError as exc:
        fail(str(exc))
    how = "" if move.via == "history" else " (the newest earlier version promoted by training's gate)"
    typer.echo(f"{name} @{move.alias}: version {move.previous} -> {move.current}{how}")


def card(version: int | None = typer.Argument(None, min=1, help="Model version (default: the @champion)."),
         name: str = NAME) -> None:
    """Print the model card (markdown) of a version: what it was trained on, how good it is
    and where it falls short, from its training run's report/model_card.md."""
    import tempfile
    from pathlib import Path

    import mlflow
    from mlflow.exceptions import MlflowException

    from model_runtime import champion

    client = registry(name)
    chosen = str(version) if version is not None else champion.holder(client, name)
    if chosen is None:
        fail(f"{name} has no @{CHAMPION_ALIAS}: name a version (eih card VERSION; eih models list shows them)")
    try:
        run_id = client.get_model_version(name, chosen).run_id
    except MlflowException:
        fail(f"{name} has no version {chosen} (eih models list shows the versions)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report/model_card.md", dst_path=tmp)
            text = Path(path).read_text()
    except (MlflowException, OSError, TypeError):
        fail(f"version {chosen} of {name} has no model card (its run has no report/model_card.md)")
    typer.echo(text.rstrip("\n"))
