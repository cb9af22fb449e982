"""A team MLflow: `mlflow server` on PostgreSQL with served artifacts, and the eih commands
pointed at it through MLFLOW_TRACKING_URI.

PostgreSQL is Debian's `postgresql` (.ci/run installs it), started here as a non-root user
(`postgres` when the tests run as root) in a temporary data directory on a free 127.0.0.1
port, and stopped at the end; the artifacts go to a temporary folder through the server
(`--serve-artifacts`). Two `eih train` at once into one registered model leave distinct
versions, run tags that name real versions and an alias the gates agree on; `eih serve`
then serves the alias and answers one prediction, `eih score` scores a file, `eih build`
bundles the server's champion, and `eih ui` points at the server's own UI instead of
starting one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest
from server_process import free_port, running

from data_contracts.examples import EXAMPLE_RECORD

PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
BIN = Path(sys.executable).parent
MODEL = "eih-responder"
SMALL = "n_trials = 2\ncv_folds = 3\nbootstrap = 20\nmax_rounds = 200\nnthread = 1\nvalidation = \"holdout\"\n"
"""Two trainings at once on 2 cores: one thread each, a short search (about 20 s both)."""

pytestmark = [
    pytest.mark.slow,
    # CI installs PostgreSQL (.ci/run), so there a missing server fails instead of skipping
    pytest.mark.skipif(not PG_BINS and not os.environ.get("CI"), reason="Debian's postgresql is not installed"),
]


def _as_db_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as `postgres` then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server with a database `mlflow` (user `mlflow`, trust auth on 127.0.0.1 only)."""
    assert PG_BINS, "Debian's postgresql is missing: apt-get install postgresql (.ci/run does)"
    pg = Path(PG_BINS[-1])
    d = Path(tempfile.mkdtemp(prefix="eih-pg-"))  # not under pytest's root-only tmp: the db user must reach it
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(d, user.pw_uid, user.pw_gid)
    port = free_port()
    data = d / "data"
    subprocess.run(_as_db_user([str(pg / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8",
                                "--no-sync", "--no-instructions"]), check=True, capture_output=True, timeout=120)
    subprocess.run(_as_db_user([str(pg / "pg_ctl"), "-D", str(data), "-l", str(d / "postgres.log"), "-w", "-t", "60",
                                "-o", f"-h 127.0.0.1 -p {port} -k {d} -F", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        subprocess.run(_as_db_user([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"]),
                       check=True, capture_output=True, timeout=60)
        yield SimpleNamespace(uri=f"postgresql://mlflow@127.0.0.1:{port}/mlflow", port=port, dir=d)
    finally:
        subprocess.run(_as_db_user([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL database, serving the artifacts from a temporary folder."""
    d = tmp_path_factory.mktemp("team-mlflow")
    artifacts = d / "artifacts"
    artifacts.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", postgres.uri, "--serve-artifacts",
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    # no background job runners (MLflow's GenAI jobs): nothing here uses them, and they are 8 processes
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with running(cmd, d / "mlflow-server.log", env, url + "/health", timeout=180):
        yield SimpleNamespace(url=url, artifacts=artifacts, dir=d, db=postgres)


def _env(team_server, **extra) -> dict:
    """This process's environment pointed at the team server (and nowhere else)."""
    env = {k: v for k, v in os.environ.items() if k not in ("EIH_STORE_DIR", "EIH_HOME", "EIH_MODEL_URI")}
    return dict(env, MLFLOW_TRACKING_URI=team_server.url, COLUMNS="200", NO_COLOR="1", **extra)


def _client(team_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=team_server.url, registry_uri=team_server.url)


@pytest.fixture(scope="module")
def two_trainings(team_server):
    """Two `eih train` processes started together into the same registered model. The test holds
    the gate lock until both have registered their versions and waited a moment at the gate,
    so both then reach for the alias at the same time."""
    from simulation import simulate
    from training.gate_lock import gate_lock

    d = team_server.dir / "train"
    d.mkdir()
    (d / "small.toml").write_text(SMALL)
    for k, seed in enumerate((21, 22)):
        cohort, oracle = simulate(3000, seed=seed, n_sites=1)
        cohort.to_parquet(d / f"c{k}.parquet", index=False)
        oracle.to_parquet(d / f"c{k}.oracle.parquet", index=False)
    client = _client(team_server)
    procs = []
    with gate_lock(MODEL, client=client):
        for k in range(2):
            cmd = [str(BIN / "eih"), "train", "--data", str(d / f"c{k}.parquet"), "--oracle",
                   str(d / f"c{k}.oracle.parquet"), "--config", str(d / "small.toml"), "--seed", str(k + 1)]
            with open(d / f"train{k}.log", "wb") as fh:
                procs.append(subprocess.Popen(cmd, env=_env(team_server), stdout=fh, stderr=subprocess.STDOUT))
        logs = [d / f"train{k}.log" for k in range(2)]
        deadline = time.monotonic() + 600
        while len(client.search_model_versions(f"name = '{MODEL}'")) < 2:
            ended = [log.read_text(errors="replace")[-3000:] for p, log in zip(procs, logs, strict=True) if p.poll() is not None]
            assert not ended, f"a training ended before registering its version: {ended}"
            assert time.monotonic() < deadline, "the two trainings did not register within 600 s"
            time.sleep(0.5)
        time.sleep(3)  # the gate takes about a second: a training that does not wait for the lock is done by now
        waiting = [p.poll() is None for p in procs]
    for p in procs:
        p.wait(600)
    outs = [log.read_text(errors="replace") for log in logs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    assert all(waiting), "a training decided about @champion while the gate lock was held"
    runs = client.search_runs([client.get_experiment_by_name("eih-responder").experiment_id],
                              filter_string="tags.registered_model_version != ''")
    return SimpleNamespace(outputs=outs, runs=runs, dir=d)


def test_gate_lock_admits_one_training_at_a_time(team_server):
    from training.gate_lock import gate_lock, lock_name

    client = _client(team_server)
    held: list[tuple[float, float]] = []

    def hold(k: int) -> None:
        with gate_lock("lock-probe", client=client, poll_s=0.1):
            t0 = time.monotonic()
            time.sleep(0.6)
            held.append((t0, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    held.sort()
    assert len(held) == 3
    assert all(a[1] <= b[0] for a, b in zip(held, held[1:], strict=False)), held
    # a lock whose holder died is removed after stale_after_s by the next training that waits
    client.create_registered_model(lock_name("lock-probe"))
    t0 = time.monotonic()
    with gate_lock("lock-probe", client=client, poll_s=0.1, stale_after_s=1.0) as waited:
        assert 1.0 <= waited < 30
    assert time.monotonic() - t0 >= 1.0
    assert not client.search_registered_models(f"name = '{lock_name('lock-probe')}'")


def test_two_trainings_at_once_keep_the_registry_consistent(team_server, two_trainings):
    client = _client(team_server)
    versions = sorted(client.search_model_versions(f"name = '{MODEL}'"), key=lambda mv: int(mv.version))
    assert [mv.version for mv in versions] == ["1", "2"]  # distinct, none lost
    runs = two_trainings.runs
    assert len(runs) == 2
    by_version = {mv.version: mv for mv in versions}
    for run in runs:
        v = run.data.tags["registered_model_version"]
        assert v in by_version and by_version[v].run_id == run.info.run_id  # the tag names this run's own version
    # the gates ran one after the other: the first found no champion, the second compared with
    # whatever the first decided, and the alias is where the second one's message says
    first, second = sorted(runs, key=lambda r: "no current champion" not in r.data.tags["gate_message"])
    v1, v2 = (r.data.tags["registered_model_version"] for r in (first, second))
    assert "no current champion" in first.data.tags["gate_message"]
    assert first.data.tags["gate_decision"] == "promoted"
    msg2 = second.data.tags["gate_message"]
    assert f"champion version {v1} " in msg2, msg2
    expected = v2 if second.data.tags["gate_decision"] == "promoted" else v1
    assert ("promoted to @champion" in msg2) == (expected == v2)
    assert client.get_model_version_by_alias(MODEL, "champion").version == expected
    assert all("registry:" in out for out in two_trainings.outputs)
    # the lock is gone, the rows are in PostgreSQL and the artifacts in the server's folder
    assert not client.search_registered_models(f"name = '{MODEL}-gate-lock'")
    import psycopg

    with psycopg.connect(team_server.db.uri) as conn:
        n = conn.execute("select count(*) from model_versions where name = %s", (MODEL,)).fetchone()[0]
    assert n == 2
    assert list(team_server.artifacts.rglob("MLmodel")), "no model artifact reached the served artifacts folder"


def test_serve_score_build_and_ui_against_the_team_server(team_server, two_trainings, tmp_path):
    client = _client(team_server)
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(team_server, BENTOML_HOME=str(tmp_path / "bentoml"), PYTHONUNBUFFERED="1")
    with running([str(BIN / "eih"), "serve", "--port", str(port)], tmp_path / "serve.log", env, base + "/readyz"):
        r = httpx.post(base + "/predict", json={"records": [EXAMPLE_RECORD]}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == MODEL and body["model"]["version"] == champion
    p = body["predictions"][0]["probabilities"]
    assert abs(sum(p.values()) - 1) < 1e-6

    from simulation import simulate

    cohort, _ = simulate(200, seed=5, n_sites=1)
    src = tmp_path / "cohort.csv"
    cohort.drop(columns=["ppt_post_kpa"]).to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    res = subprocess.run([str(BIN / "eih"), "score", str(src), "--out", str(out), "--explain", "top"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert len(pd.read_csv(out)) == 200

    res = subprocess.run([str(BIN / "eih"), "build"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"models:/{MODEL}/{champion} " in res.stderr and res.stdout.strip().startswith("eih_responder:")

    res = subprocess.run([str(BIN / "eih"), "ui", "--port", str(free_port())], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert team_server.url in res.stdout + res.stderr
