"""The Bento (`eih build`, bentofile.yaml, serving/bento.py): it holds the service's code, the
pinned packages and the chosen registered version, and `bentoml serve TAG` answers /readyz,
/predict, /explain and /metadata as `eih serve` does for the same version, to 1e-12, without
the MLflow store. Both servers listen on free 127.0.0.1 ports and are stopped here; the
BentoML store is a temporary BENTOML_HOME. `bentoml containerize` needs Docker, which the
test machines lack: everything up to it is tested.
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from server_process import free_port, running, start, stop, wait_ready

from data_contracts.examples import EXAMPLE_RECORD

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROJECT = ("serving", "model_runtime", "features", "data_contracts")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bento(trained_model, tmp_path_factory) -> SimpleNamespace:
    """`eih build --model models:/eih-responder/<the session's version>` into a temporary BentoML store."""
    d = tmp_path_factory.mktemp("bento")
    env = dict(os.environ, BENTOML_HOME=str(d / "bentoml"), BENTOML_DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    version = trained_model.result.model_version
    uri = f"models:/eih-responder/{version}"
    res = subprocess.run([str(BIN / "eih"), "build", "--model", uri], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    tag = res.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"eih_responder:[a-z0-9]+", tag), res.stdout
    name, label = tag.split(":")
    path = d / "bentoml" / "bentos" / name / label  # BentoML's store: $BENTOML_HOME/bentos/NAME/VERSION
    assert (path / "bento.yaml").is_file()
    return SimpleNamespace(tag=tag, path=path, env=env, dir=d, uri=uri, version=version, build_log=res.stderr,
                           run_id=trained_model.result.run_id, cohort=trained_model.cohort)


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_norm(name)] = version.strip()
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_bento_holds_the_code_the_pins_and_the_model(bento):
    info = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert info["service"] == "serving.service:EIHService"
    [model] = info["models"]
    assert model["tag"].startswith("eih-responder:") and model["module"] == "bentoml.mlflow"
    assert info["labels"]["registered_model"] == "eih-responder"
    assert info["labels"]["registered_version"] == bento.version
    src = bento.path / "src"
    for f in ("serving/service.py", "serving/bento.py", "serving/model_slot.py", "model_runtime/predictor.py",
              "model_runtime/pyfunc_model.py", "features/pipeline.py", "data_contracts/fields.py"):
        assert (src / f).is_file(), f
    top = {p.name for p in src.iterdir()}
    assert top <= {*PROJECT, "bentofile.yaml", "README.md"}, top  # no tests, training, simulation, eih or stores
    assert not (src / "serving" / "batch").exists() and not (src / "serving" / "cli.py").exists()
    # the registered version itself, copied into BentoML's model store, with its run
    mlmodel = yaml.safe_load((bento.dir / "bentoml" / "models" / "eih-responder" / model["tag"].split(":")[1] /
                              "mlflow_model" / "MLmodel").read_text())
    assert mlmodel["run_id"] == bento.run_id
    # the container recipe: Python 3.11 and exactly the pinned packages
    assert "FROM python:3.11" in (bento.path / "env" / "docker" / "Dockerfile").read_text()
    reqs = [Requirement(line) for line in (bento.path / "env" / "python" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    pins = _constraints()
    for r in reqs:
        [spec] = r.specifier
        assert spec.operator == "==" and pins.get(_norm(r.name)) == spec.version, f"{r} vs constraints.txt"
    assert {"bentoml", "mlflow", "xgboost", "pandas"} <= {_norm(r.name) for r in reqs}


def _requirement_closure(names: set[str]) -> set[str]:
    """The distributions that installing `names` brings in (installed metadata, extras ignored)."""
    seen, todo = set(), [_norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return seen


def test_the_pins_cover_every_package_the_bundled_code_imports(bento):
    reqs = {Requirement(line).name for line in (bento.path / "env" / "python" / "requirements.txt").read_text()
            .splitlines() if line.strip() and not line.startswith(("#", "-"))}
    installed = _requirement_closure(reqs)
    dists = packages_distributions()
    missing = {}
    for path in (bento.path / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in PROJECT:
                    continue
                if not {_norm(d) for d in dists.get(top, [top])} & installed:
                    missing.setdefault(top, []).append(str(path.relative_to(bento.path)))
    assert not missing, f"imported by the Bento's code but not installed by its requirements: {missing}"


def _close(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ (floats to 1e-12, everything else exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_bentoml_serve_answers_as_eih_serve_does(bento, tmp_path):
    from data_contracts.validate import validate_frame
    from serving.gate import records_from_frame

    valid = validate_frame(bento.cohort.frame.drop(columns=["ppt_post_kpa"]).iloc[:60]).valid.iloc[:7]
    body = {"records": [EXAMPLE_RECORD, *records_from_frame(valid)]}
    no_store = tmp_path / "no-mlflow-store"
    p1, p2 = free_port(), free_port()
    eih = start([str(BIN / "eih"), "serve", "--port", str(p1), "--model", bento.uri], tmp_path / "eih-serve.log",
                bento.env)
    try:
        # the Bento's server gets a tracking store that does not exist: it must not need one
        env = dict(bento.env, MLFLOW_TRACKING_URI=f"sqlite:///{no_store / 'mlflow.db'}")
        env.pop("EIH_MODEL_URI", None)
        cmd = [str(BIN / "bentoml"), "serve", bento.tag, "--host", "127.0.0.1", "--port", str(p2)]
        with running(cmd, tmp_path / "bento-serve.log", env, f"http://127.0.0.1:{p2}/readyz", cwd=tmp_path):
            wait_ready(eih, f"http://127.0.0.1:{p1}/readyz", tmp_path / "eih-serve.log")
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda p: _ask(p, body), (p1, p2)))
    finally:
        stop(eih)
    ours, theirs = answers
    for route in ("/predict", "/explain"):
        assert ours[route]["model"] == {"name": "eih-responder", "version": bento.version, "contract_version": "1.0",
                                        "label_threshold_pct": ours[route]["model"]["label_threshold_pct"]}
        assert not _close(ours[route], theirs[route]), _close(ours[route], theirs[route])[:10]
    meta_ours, meta_theirs = ours["/metadata"], theirs["/metadata"]
    assert meta_theirs["model"].pop("uri").startswith(f"{bento.uri} (bundled as eih-responder:")
    assert meta_ours["model"].pop("uri") == bento.uri
    assert not _close(meta_ours, meta_theirs), _close(meta_ours, meta_theirs)[:10]
    assert not no_store.exists(), "the Bento's service touched the MLflow store"
    assert "ready: serving eih-responder:" in (tmp_path / "bento-serve.log").read_text()


def _ask(port: int, body: dict) -> dict:
    base = f"http://127.0.0.1:{port}"
    out = {"/readyz": httpx.get(base + "/readyz", timeout=30).status_code}
    assert out["/readyz"] == 200
    for route in ("/predict", "/explain"):
        r = httpx.post(base + route, json=body, timeout=60)
        assert r.status_code == 200, r.text[:500]
        out[route] = r.json()
    out["/metadata"] = httpx.get(base + "/metadata", timeout=30).json()
    return out


def test_eih_build_refuses_what_it_cannot_bundle(trained_model, cli_runner):
    from eih.cli import app

    res = cli_runner.invoke(app, ["build", "--model", "runs:/0123/model"])
    assert res.exit_code == 2 and "registered model version" in res.output
    res = cli_runner.invoke(app, ["build", "--model", "models:/no-such-model@champion"])
    assert res.exit_code == 2 and "no registered model at models:/no-such-model@champion" in res.output
