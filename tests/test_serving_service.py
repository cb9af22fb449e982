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

    from model_runtime.settings import configure_mlflow, get_or_create_experiment
    from model_runtime.loading import load_model
    from training.train import CODE_PATHS, PYFUNC_CODE

    # the champion's booster, relabelled as trained on contract 2.0
    predictor = load_model(trained_model.uri).predictor
    d = tmp_path / "predictor"
    d.mkdir()
    predictor.booster.save_model(str(d / "booster.ubj"))
    (d / "meta.json").write_text(json.dumps({**predictor.meta.to_dict(), "contract_version": "2.0"}))
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
