"""The BentoML service in-process (Starlette TestClient on `EIHService.to_asgi()`): not ready,
with the reason in the log, while no usable model is loaded, and a model trained on
another contract major version is refused with a message that says so."""

from __future__ import annotations

import json
import logging
import time

import pytest

from data_contracts.examples import EXAMPLE_RECORD


@pytest.fixture(scope="module")
def app():
    """One ASGI app for the module: BentoML registers its Prometheus metrics per app, so a
    second app in the same process would collide. Each TestClient context runs the app's
    lifespan, which creates a fresh service instance (reading EIH_MODEL_URI again)."""
    from serving.service import EIHService

    return EIHService.to_asgi()


def _client(app, monkeypatch, uri: str):
    from starlette.testclient import TestClient

    monkeypatch.setenv("EIH_MODEL_URI", uri)
    monkeypatch.setenv("EIH_MODEL_RETRY_SECONDS", "600")
    return TestClient(app)


def _wait_for_log(caplog, words: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in caplog.records:
            if rec.name == "eih.serving" and words in rec.getMessage():
                return rec.getMessage()
        time.sleep(0.2)
    raise AssertionError(f"no log line with {words!r}: {[r.getMessage() for r in caplog.records]}")


def test_not_ready_with_a_reason_while_no_model_can_be_loaded(app, mlflow_store, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="eih.serving")
    with _client(app, monkeypatch, "models:/no-such-model@champion") as c:
        assert c.get("/livez").status_code == 200
        line = _wait_for_log(caplog, "not ready")
        assert "no usable model at models:/no-such-model@champion" in line
        assert c.get("/readyz").status_code == 503
        r = c.post("/predict", json={"records": [EXAMPLE_RECORD]})
        assert r.status_code == 503 and "not ready: no usable model" in r.json()["error"]
        assert c.get("/metadata").status_code == 503
        # validation still answers first-hand: a bad record is a 422, not a 503
        assert c.post("/predict", json={"records": []}).status_code == 422


@pytest.mark.slow
def test_a_model_of_another_contract_major_version_is_refused(app, trained_model, tmp_path, monkeypatch, caplog):
    import mlflow

    from model_runtime.loading import load_model
    from model_runtime.settings import configure_mlflow, get_or_create_experiment
    from training.train import CODE_PATHS, PYFUNC_CODE

    # the champion's booster, relabelled as trained on contract 2.0
    predictor = load_model(trained_model.uri).predictor
    d = predictor.save(tmp_path / "predictor")  # every booster and meta.json, as training writes them
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "contract_version": "2.0"}))
    configure_mlflow()
    with mlflow.start_run(experiment_id=get_or_create_experiment("eih-serving-tests")):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                       artifacts={"predictor": str(d)}, code_paths=CODE_PATHS)

    caplog.set_level(logging.INFO, logger="eih.serving")
    with _client(app, monkeypatch, info.model_uri) as c:
        line = _wait_for_log(caplog, "not ready")
        assert "data contract 2.0" in line and "contract 1.x" in line and "refusing to serve it" in line
        assert c.get("/readyz").status_code == 503
        r = c.post("/explain", json={"records": [EXAMPLE_RECORD]})
        assert r.status_code == 503 and "contract 2.0" in r.json()["error"]


# ---- following the alias (eih serve --follow-alias) -----------------------------------------------
def _copy_as_versions(trained_model, name: str, n: int) -> list[str]:
    """`n` versions of a new registered model `name`, each the session's trained model."""
    from mlflow import MlflowClient

    from model_runtime.settings import configure_mlflow

    configure_mlflow()
    client = MlflowClient()
    src = client.get_model_version("eih-responder", trained_model.result.model_version)
    client.create_registered_model(name)
    return [str(client.create_model_version(name, src.source, run_id=src.run_id).version) for _ in range(n)]


def _wait_ready(c, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while c.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not get ready"
        time.sleep(0.2)


@pytest.mark.slow
def test_follow_alias_swaps_in_a_moved_champion_while_requests_keep_flowing(app, trained_model, monkeypatch, caplog):
    import threading

    from mlflow import MlflowClient

    name = "eih-follow-test"
    v1, = _copy_as_versions(trained_model, name, 1)
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", v1)
    monkeypatch.setenv("EIH_FOLLOW_ALIAS_SECONDS", "0.5")
    caplog.set_level(logging.INFO, logger="eih.serving")
    answers: list[tuple[int, str | None]] = []
    moved = threading.Event()

    with _client(app, monkeypatch, f"models:/{name}@champion") as c:
        _wait_ready(c)

        def stream() -> None:  # a bounded stream: until 30 answers after the swap, at most 3,000
            after = 0
            while len(answers) < 3000 and after < 30:
                r = c.post("/predict", json={"records": [EXAMPLE_RECORD]})
                answers.append((r.status_code, r.json().get("model", {}).get("version")))
                after += moved.is_set()

        reader = threading.Thread(target=stream)
        reader.start()
        while len(answers) < 10:
            time.sleep(0.05)
        v2 = str(client.create_model_version(name, client.get_model_version(name, v1).source,
                                             run_id=client.get_model_version(name, v1).run_id).version)
        client.set_registered_model_alias(name, "champion", v2)
        line = _wait_for_log(caplog, "champion moved")
        moved.set()
        reader.join(240)
        assert not reader.is_alive()
        meta = c.get("/metadata").json()["model"]

    assert line == f"champion moved: version {v1} -> {v2}"
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:5]
    versions = [v for _, v in answers]
    first_new = versions.index(v2)
    assert set(versions[:first_new]) == {v1} and set(versions[first_new:]) == {v2}  # one switch, never back
    assert versions[-30:] == [v2] * 30 and first_new >= 10
    assert meta["version"] == v2 and meta["uri"] == f"models:/{name}@champion"


# ---- the API page and the OpenAPI document ---------------------------------------------------------
@pytest.mark.slow
def test_the_api_page_is_local_and_names_the_project_and_the_model(app, trained_model, monkeypatch):
    import re

    with _client(app, monkeypatch, trained_model.uri) as c:
        _wait_ready(c)
        version = c.get("/metadata").json()["model"]["version"]
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        page = r.text
        title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
        assert "EIH responder service" in title and f"eih-responder version {version}" in title
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)
        assert refs and all(not re.match(r"(?i)(https?:)?//", ref) for ref in refs), refs
        assert "googletagmanager" not in page and "bentoml" not in page.lower()
        for ref in refs:  # every file the page loads is served here
            assert c.get("/" + ref.removeprefix("./")).status_code == 200, ref
        assert c.get("/api-page/../service.py").status_code == 404 and c.get("/api-page/x.js").status_code == 404
        doc = c.get("/docs.json").json()
    assert doc["info"]["title"] == "EIH responder service API" and "contact" not in doc["info"]
    assert f"eih-responder version {version}" in doc["info"]["description"]
    assert "bentoml" not in json.dumps(doc["info"]).lower()
    for path in ("/predict", "/explain"):
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "400", "401", "413", "415", "422", "503"} <= set(responses), (path, sorted(responses))
        for status, answer in responses.items():
            schema = answer["content"]["application/json"]["schema"]
            assert schema.get("$ref") == "#/components/schemas/ErrorResponse" or status == "200"
    assert set(doc["paths"]["/metadata"]["get"]["responses"]) >= {"200", "401", "503"}
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert "ErrorResponse" in doc["components"]["schemas"] and "Problem" in doc["components"]["schemas"]
