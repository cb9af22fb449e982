"""The registry gate's lock: two trainings at once (two people, two jobs, one team server)
decide about `@champion` one after the other.

Without it both read the same champion, both may promote over it, and the later write
silently takes the alias from the earlier one, whose gate message then names a champion
that is not. With it the second training compares against whatever the first decided.

The lock lives in the registry itself, so it holds across machines and for any store
(PostgreSQL or SQLite behind a server, or a local SQLite file): it is a registered model
named `<model>-gate-lock`, which the registry creates for one caller only (the name is
unique) and which is deleted when the gate is done. A training that finds it waits. A
lock that stays the same for `stale_after_s` (its holder died mid-gate) is removed by the
next training that waits for it; the gate itself takes seconds, so the default of 10
minutes never cuts a live one short.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_SUFFIX = "-gate-lock"
STALE_AFTER_S = 600.0


def lock_name(name: str) -> str:
    """The registered model that is the gate lock of registered model `name`."""
    return f"{name}{LOCK_SUFFIX}"


@contextmanager
def gate_lock(name: str, *, client=None, poll_s: float = 0.5, stale_after_s: float = STALE_AFTER_S) -> Iterator[float]:
    """Hold the gate lock of registered model `name` for the block (waiting while another
    training holds it); yields the seconds spent waiting."""
    from mlflow import MlflowClient

    client = client or MlflowClient()
    lock = lock_name(name)
    holder = f"{socket.gethostname()} pid {os.getpid()}"
    start = time.monotonic()
    seen: tuple[int | None, float] | None = None  # (the lock's creation time, when this training first saw it)
    while not _try_create(client, lock, holder):
        seen = _remove_if_stale(client, lock, seen, stale_after_s)
        time.sleep(poll_s)
    try:
        yield time.monotonic() - start
    finally:
        _delete(client, lock)


def _try_create(client, lock: str, holder: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(lock, description=(
            f"Lock of the registry gate, held by {holder} while its training decides about @champion; "
            "it is removed when the gate is done (training/gate_lock.py)."))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return False
        raise
    return True


def _remove_if_stale(client, lock: str, seen, stale_after_s: float):
    """Remove the lock when this training has seen the same one (same creation time) for
    `stale_after_s`; returns what was seen. Measured on this machine's clock only, so the
    server's clock does not matter."""
    from mlflow.exceptions import MlflowException

    try:
        created = client.get_registered_model(lock).creation_timestamp
    except MlflowException:
        return None  # released in the meantime
    now = time.monotonic()
    if seen is None or seen[0] != created:
        return created, now
    if now - seen[1] >= stale_after_s:
        _delete(client, lock)
        return None
    return seen


def _delete(client, lock: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lock)
    except MlflowException:
        pass  # already removed as stale by a training that waited for it
