"""`eih quickstart` and `eih ui` run a server in the foreground: stopping them must stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stopping_the_foreground_command_stops_its_server(tmp_path, sig):
    pidfile = tmp_path / "server.pid"
    server = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    code = ("import sys\nfrom eih.ops_cli import run_foreground\n"
            f"sys.exit(run_foreground([sys.executable, '-c', {server!r}]))\n")
    # under nohup SIGHUP arrives ignored and the server would inherit that; the test needs the default
    parent = subprocess.Popen([sys.executable, "-c", code],
                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    child = None
    try:
        deadline = time.time() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _alive(child)
        parent.send_signal(sig)
        assert parent.wait(timeout=30) == 128 + sig  # the server's own end, passed on
        assert not _alive(child)  # stopped and reaped, not left serving
    finally:
        if parent.poll() is None:
            parent.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_server_that_ends_by_itself_gives_its_exit_code():
    from eih.ops_cli import run_foreground

    assert run_foreground([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert run_foreground([sys.executable, "-c", "pass"]) == 0
