"""A busy port (issue 20): `eih serve`, `eih ui` and `eih quickstart` say so in one line with
the fix and exit 2 before any long work (quickstart trains for minutes first: it must stop
at once), on a port the test holds with a listening socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.ports import port_problem

BIN = Path(sys.executable).parent


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI" and not k.startswith("EIH_")}
    return {**env, "EIH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


@pytest.mark.parametrize(("command", "who"), [
    (["serve"], "eih serve"),
    (["ui"], "eih ui"),
    (["quickstart", "--workdir", "qs"], "eih serve"),
])
def test_a_busy_port_is_one_line_with_the_fix_and_exit_2(tmp_path, busy_port, command, who):
    start = time.monotonic()
    res = subprocess.run([str(BIN / "eih"), *command, "--port", str(busy_port)], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stderr.strip() == (f"error: port {busy_port} on 127.0.0.1 is in use (by another {who}?): "
                                  "stop it or pass --port N")
    assert res.stdout == ""
    assert took < 60  # before any training, simulation or model loading
    assert not (tmp_path / "qs").exists() and not (tmp_path / "home").exists()  # no work started, no store made


def test_port_problem(busy_port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert port_problem("127.0.0.1", free) is None
    assert port_problem("localhost", free) is None
    assert "is in use (by another eih ui?)" in port_problem("127.0.0.1", busy_port, "eih ui")
    assert "not an address of this machine" in port_problem("192.0.2.1", free)
    assert "does not resolve" in port_problem("no-such-host.invalid", free)
