"""Moving a registered model's `@champion` alias with a memory, so it can be moved back.

The memory is the registered model's tag `eih.champion_history`: the versions that held
the alias, oldest first, the current champion last (version numbers and commas, nothing
else). `promote` appends the new champion; `rollback` drops the current one and gives the
alias back to the version before it, so after promotions 1 -> 2 -> 3, rollback goes to 2,
and again to 1: one step each time.

Anything else may move the alias too (training's gate, a click in the MLflow UI): every
move here first appends the alias's current holder when the history does not end with it.
When the history knows no earlier champion, rollback takes the newest earlier version
whose training run's gate promoted it (run tag `gate_decision = promoted`), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_runtime.settings import CHAMPION_ALIAS

HISTORY_TAG = "eih.champion_history"
MAX_HISTORY = 200
"""Oldest entries beyond this are dropped (a tag value holds at most a few thousand characters)."""


class ChampionError(RuntimeError):
    """The alias cannot be moved as asked (one line, says why and what to do)."""


@dataclass(frozen=True)
class Move:
    """One move of the alias: from `previous` (None: no holder) to `current`; `via` says how
    rollback found the target ("history" or "gate")."""

    name: str
    alias: str
    previous: str | None
    current: str
    via: str = "history"


def _client(client):
    if client is not None:
        return client
    from mlflow import MlflowClient

    return MlflowClient()


def history(client, name: str) -> list[str]:
    """The recorded holders of the alias, oldest first (empty when nothing is recorded)."""
    tags = _client(client).get_registered_model(name).tags or {}
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v.strip().isdigit()]


def holder(client, name: str, alias: str = CHAMPION_ALIAS) -> str | None:
    """The version holding `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(client).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _reconciled(client, name: str, alias: str) -> tuple[list[str], str | None]:
    hist, current = history(client, name), holder(client, name, alias)
    if current is not None and (not hist or hist[-1] != current):
        hist.append(current)
    return hist, current


def _write(client, name: str, hist: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(hist[-MAX_HISTORY:]))


def _versions(client, name: str) -> list[str]:
    found = client.search_model_versions(f"name='{name}'")
    return sorted((str(mv.version) for mv in found), key=int)


def promote(name: str, version: str | int, alias: str = CHAMPION_ALIAS, client=None) -> Move:
    """Give `alias` to `version` and record it; ChampionError when the version does not exist."""
    client = _client(client)
    version = str(version)
    known = _versions(client, name)
    if version not in known:
        raise ChampionError(f"{name} has no version {version} (versions: {', '.join(known) or 'none'})")
    hist, current = _reconciled(client, name, alias)
    if current != version:
        client.set_registered_model_alias(name, alias, version)
        hist.append(version)
    _write(client, name, hist)
    return Move(name, alias, current, version)


def rollback(name: str, alias: str = CHAMPION_ALIAS, client=None) -> Move:
    """Give `alias` back to the version that held it before the current one (see the module
    docstring); ChampionError when no earlier champion is known."""
    client = _client(client)
    current, target, via, hist = _plan_rollback(client, name, alias)
    client.set_registered_model_alias(name, alias, target)
    _write(client, name, hist)
    return Move(name, alias, current, target, via)


def rollback_target(name: str, alias: str = CHAMPION_ALIAS, client=None) -> str | None:
    """The version `rollback` would move the alias to (None when it would refuse); moves nothing."""
    try:
        return _plan_rollback(_client(client), name, alias)[1]
    except ChampionError:
        return None


def _plan_rollback(client, name: str, alias: str) -> tuple[str, str, str, list[str]]:
    """(current holder, target, "history" or "gate", the history after the move)."""
    hist, current = _reconciled(client, name, alias)
    if current is None:
        raise ChampionError(f"{name} has no @{alias} to roll back: promote a version (eih models promote VERSION)")
    existing = set(_versions(client, name))
    earlier = [v for v in hist[:-1] if v in existing and v != current]
    if earlier:
        target = earlier[-1]
        last = max(i for i in range(len(hist) - 1) if hist[i] == target)
        return current, target, "history", hist[: last + 1]
    target = _last_gate_promotion(client, name, below=current)
    if target is None:
        raise ChampionError(f"no earlier @{alias} of {name} is known (no history, and no earlier version promoted "
                            f"by training's gate): promote a version by number (eih models promote VERSION)")
    return current, target, "gate", [target]


def _last_gate_promotion(client, name: str, below: str) -> str | None:
    """The newest version older than `below` whose training run's gate promoted it."""
    from mlflow.exceptions import MlflowException

    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda m: int(m.version), reverse=True):
        if int(mv.version) >= int(below) or not mv.run_id:
            continue
        try:
            if client.get_run(mv.run_id).data.tags.get("gate_decision") == "promoted":
                return str(mv.version)
        except MlflowException:
            continue
    return None
