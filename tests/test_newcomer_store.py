"""Where the store is, as a newcomer meets it (issue 20): `eih info` says where and why,
a missing model is one line (no traceback) from `eih score` and `eih serve`, and a command
run from another folder never starts a new mlruns/ there.

Every command runs as a subprocess from a temporary folder with no MLFLOW_TRACKING_URI
and no EIH_* variable but EIH_HOME (a temporary folder), so the project's own store is
never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_contracts.examples import EXAMPLE_RECORD

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI" and not k.startswith("EIH_")}
    return {**env, "COLUMNS": "200", **extra}


def _eih(args: list[str], cwd: Path, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "eih"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def elsewhere(tmp_path) -> tuple[Path, Path, dict]:
    """(a working folder, EIH_HOME, the environment)."""
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return cwd, home, _clean_env(EIH_HOME=str(home))


def _cohort_csv(folder: Path) -> Path:
    import pandas as pd

    path = folder / "cohort.csv"
    pd.DataFrame([EXAMPLE_RECORD]).to_csv(path, index=False)
    return path


def test_score_without_a_model_is_one_line_and_leaves_no_mlruns_behind(elsewhere):
    cwd, home, env = elsewhere
    src = _cohort_csv(cwd)
    res = _eih(["score", src.name, "--out", "scores.csv", "--no-progress"], cwd, env)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    line = lines[0]
    assert "no usable model at models:/eih-responder@champion" in line
    assert str(home / "mlruns" / "mlflow.db") in line and "(EIH_HOME)" in line  # where it looked, and why there
    assert "eih train --data FILE" in line  # what to run
    assert not (cwd / "mlruns").exists() and not (cwd / "mlartifacts").exists()
    assert sorted(p.name for p in cwd.iterdir()) == ["cohort.csv"]  # no partial output either


def test_serve_without_a_model_is_one_line_and_starts_nothing(elsewhere):
    cwd, home, env = elsewhere
    port = _free_port()
    res = _eih(["serve", "--port", str(port)], cwd, env, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "no usable model at models:/eih-responder@champion" in lines[0] and "(EIH_HOME)" in lines[0]
    assert "--wait-for-model" in lines[0]
    assert not (cwd / "mlruns").exists()


def test_info_says_where_the_store_is_and_why_without_creating_it(elsewhere):
    cwd, home, env = elsewhere
    res = _eih(["info"], cwd, env, timeout=60)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    db = home / "mlruns" / "mlflow.db"
    assert f"store:      sqlite:///{db}" in out
    assert "chosen by:  EIH_HOME" in out and "MLFLOW_TRACKING_URI > EIH_STORE_DIR > EIH_HOME" in out
    assert "does not exist yet" in out and "eih quickstart" in out
    assert "eih-service " in out and "mlflow " in out and "bentoml " in out
    assert not db.exists() and not (cwd / "mlruns").exists()  # read-only: nothing created


def test_the_store_rule_from_another_folder_with_nothing_set(tmp_path):
    """With no variable set, the store is the checkout's own mlruns/, whatever the working
    folder; configure_mlflow exporting MLFLOW_TRACKING_URI does not change the reported rule."""
    code = ("from model_runtime.settings import store_source, tracking_uri; print(store_source()); print(tracking_uri())")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rule, uri = res.stdout.splitlines()
    assert rule == "the project's own store" and uri == f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"
    code = ("import os; from model_runtime.settings import configure_mlflow, store_source; configure_mlflow(); "
            "print(os.environ['MLFLOW_TRACKING_URI']); print(store_source())")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env=_clean_env(EIH_STORE_DIR=str(tmp_path / "store")), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    exported, rule = res.stdout.splitlines()[-2:]
    assert exported == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}" and rule == "EIH_STORE_DIR"
    assert not (tmp_path / "mlruns").exists()


def test_info_lists_versions_and_the_champion(tmp_path):
    from newcomer_registry import make_registry

    store = make_registry(tmp_path / "store", versions=2, champion="2")
    res = _eih(["info"], tmp_path, _clean_env(MLFLOW_TRACKING_URI=store.uri), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "chosen by:  MLFLOW_TRACKING_URI" in res.stdout
    assert "eih-responder: version(s) 1, 2" in res.stdout and "@champion = version 2" in res.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
