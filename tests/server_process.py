"""A server process for a test: started in its own session with its output in a log file,
waited for until a URL answers 200, and stopped (SIGTERM to the whole group, then SIGKILL)
when the block ends. Used by tests/test_bento.py and tests/test_team_mlflow.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session with stdout and stderr in `log`."""
    with open(log, "wb") as fh:
        return subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 240.0) -> None:
    """Return when GET `url` answers 200; fail with the log's end if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: not ready after {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL after 30 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextmanager
def running(cmd: Sequence[str], log: Path, env: Mapping[str, str], ready_url: str, timeout: float = 240.0,
            cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """`cmd` running until the block ends, entered once `ready_url` answers 200."""
    proc = start(cmd, log, env, cwd)
    try:
        wait_ready(proc, ready_url, log, timeout)
        yield proc
    finally:
        stop(proc)
