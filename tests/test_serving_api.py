"""The HTTP service as clinic systems meet it: a real `eih serve` process on 127.0.0.1,
driven with httpx, on the session's trained model (tests/model_fixtures.py).

Schema of every response, agreement with `eih score`, additivity of /explain, every
error class, the bearer token, a schemathesis fuzz run (no 5xx), and a check that values
planted in rejected requests never reach the server's output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import BEFORE_BOUT_PREDICTORS, PREDICTORS, RESPONSES
from features.derived import DERIVED, EXERCISE_DOSE, EXERCISE_LOAD
from serving.gate import records_from_frame
from serving.schemas import ErrorResponse, ExplainResponse, Metadata, PredictResponse

pytestmark = pytest.mark.slow

TOKEN = "test-token-4f1c9a"
MARKER = "PLANTED-VALUE-93bd1"
BIN = Path(sys.executable).parent
JSON = {"content-type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    log = d / "server.log"
    port = _free_port()
    env = dict(os.environ, EIH_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1", BENTOML_HOME=str(d / "bentoml"),
               BENTOML_DO_NOT_TRACK="true")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(BIN / "eih"), "serve", "--port", str(port), "--model", trained_model.uri],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"eih serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"eih serve not ready after 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            yield SimpleNamespace(base=base, client=client, log=log, uri=trained_model.uri, cohort=trained_model.cohort)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert MARKER not in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def cohort_records(server) -> tuple[list[dict], pd.DataFrame]:
    from data_contracts.validate import validate_frame

    valid = validate_frame(server.cohort.frame.drop(columns=["ppt_post_kpa"]).iloc[:300]).valid.iloc[:80]
    return records_from_frame(valid), valid


def _post(server, path: str, records: list[dict]) -> httpx.Response:
    return server.client.post(path, json={"records": records})


# ---- routes and auth ---------------------------------------------------------------------------
def test_probes_are_open_and_every_other_route_needs_the_token(server):
    for path in ("/livez", "/readyz", "/healthz"):
        assert httpx.get(server.base + path).status_code == 200
    for method, path in (("GET", "/metadata"), ("GET", "/metrics"), ("GET", "/docs.json"), ("GET", "/"),
                         ("POST", "/predict"), ("POST", "/explain")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            r = httpx.request(method, server.base + path, headers={**headers, **JSON},
                              content=json.dumps({"records": [EXAMPLE_RECORD]}))
            assert r.status_code == 401, (method, path, headers)
            assert r.json() == {"error": "missing or invalid bearer token"}
    assert server.client.get("/metrics").status_code == 200
    spec = server.client.get("/docs.json").json()
    assert {"/predict", "/explain", "/metadata", "/livez", "/readyz", "/metrics"} <= set(spec["paths"])


def test_metadata(server):
    r = server.client.get("/metadata")
    assert r.status_code == 200
    meta = Metadata.model_validate(r.json())
    assert meta.model.name == "eih-responder" and meta.model.version and meta.model.uri == server.uri
    assert meta.model.contract_version == meta.service_contract_version == "1.0"
    assert meta.model.label_threshold_pct == 10.0
    # the fields known before the bout (lactate is measured after it), then the derived dose and load
    assert meta.features == list(BEFORE_BOUT_PREDICTORS) + [EXERCISE_DOSE, EXERCISE_LOAD]
    assert meta.outputs == ["eih_pct", "log_sd"]
    assert meta.link == "normal_spread" and meta.residual_sigma_pct is None
    assert "test_log_loss" in meta.training_metrics and set(meta.risk_cutoffs) == {"moderate", "high"}


# ---- predictions and explanations ----------------------------------------------------------------
def test_predict_schema_order_and_meaning(server, cohort_records):
    records, _ = cohort_records
    r = _post(server, "/predict", records)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = PredictResponse.model_validate(r.json())
    assert body.model.name == "eih-responder" and body.model.contract_version == "1.0"
    cut = server.client.get("/metadata").json()["risk_cutoffs"]
    assert [p.subject_id for p in body.predictions] == [rec["subject_id"] for rec in records]
    for rec, p in zip(records, body.predictions):
        probs = p.probabilities.model_dump()
        assert abs(sum(probs.values()) - 1) < 1e-9 and all(0 <= v <= 1 for v in probs.values())
        assert p.predicted_response == max(probs, key=probs.get)
        h = probs["hyperalgesia"]
        assert p.hyperalgesia_risk == ("high" if h >= cut["high"] else "moderate" if h >= cut["moderate"] else "low")
        assert 1 <= len(p.top_contributions) <= 5
        for t in p.top_contributions:
            # a contract field reports the value as sent; the derived dose its value computed from the protocol
            given = rec[t.field] if t.field in rec else DERIVED[t.field].from_record(rec)
            assert t.value == given and t.statement and t.toward in RESPONSES
        assert p.missing_inputs == [f for f in BEFORE_BOUT_PREDICTORS if rec[f] is None]
    one = _post(server, "/predict", records[3:4]).json()["predictions"][0]
    assert one == r.json()["predictions"][3]  # a record scores the same alone or in a list


def test_explain_is_additive_and_explains_the_served_probabilities(server, cohort_records):
    records, _ = cohort_records
    r = _post(server, "/explain", records)
    assert r.status_code == 200
    body = ExplainResponse.model_validate(r.json())
    pred = _post(server, "/predict", records).json()["predictions"]
    meta = server.client.get("/metadata").json()
    for rec, e, p in zip(records, body.explanations, pred):
        assert e.subject_id == rec["subject_id"] == p["subject_id"]
        assert set(e.margins) == set(e.base_values) == set(e.contributions) == {"eih_pct", "log_sd"}
        for o in ("eih_pct", "log_sd"):
            assert set(e.contributions[o]) == set(PREDICTORS) | {EXERCISE_DOSE, EXERCISE_LOAD}
            assert abs(e.base_values[o] + sum(e.contributions[o].values()) - e.margins[o]) < 1e-9
        # the documented link: eih_pct ~ Normal(margin, exp(log_sd)), hypoalgesia beyond +t, hyperalgesia beyond -t
        m = e.margins["eih_pct"]
        t, sigma = meta["model"]["label_threshold_pct"], np.exp(e.margins["log_sd"])
        expected = [1 - norm.cdf((t - m) / sigma), norm.cdf((t - m) / sigma) - norm.cdf((-t - m) / sigma),
                    norm.cdf((-t - m) / sigma)]
        assert np.allclose(expected, [p["probabilities"][o] for o in RESPONSES], atol=1e-12)


def test_agrees_with_eih_score(server, cohort_records, tmp_path, cli_runner):
    from eih.cli import app

    records, valid = cohort_records
    src, out = tmp_path / "rows.parquet", tmp_path / "scores.parquet"
    valid.to_parquet(src, index=False)
    res = cli_runner.invoke(app, ["score", str(src), "--out", str(out), "--explain", "full", "--model", server.uri])
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(out)
    assert scores["subject_id"].tolist() == [rec["subject_id"] for rec in records]
    pred = _post(server, "/predict", records).json()["predictions"]
    expl = _post(server, "/explain", records).json()["explanations"]
    for i, (p, e) in enumerate(zip(pred, expl)):
        row = scores.iloc[i]
        # the same explainer on both paths (one record over HTTP, a chunk in the batch): the same bits
        for o in RESPONSES:
            assert p["probabilities"][o] == row[f"p_{o}"]
        for o in e["margins"]:
            assert e["margins"][o] == row[f"margin_{o}"]
            assert e["base_values"][o] == row[f"base_{o}"]
            for f in BEFORE_BOUT_PREDICTORS + (EXERCISE_DOSE, EXERCISE_LOAD):  # the scores file stores contributions as float32
                assert e["contributions"][o][f] == pytest.approx(row[f"contrib_{o}__{f}"], abs=1e-6)
        assert p["predicted_response"] == row["predicted_response"]
        assert p["hyperalgesia_risk"] == row["hyperalgesia_risk"]
    # one record alone (the explainer's few-rows path) = the same record among 80 (its vectorized path)
    for i in (0, 41, 79):
        assert _post(server, "/explain", [records[i]]).json()["explanations"][0] == expl[i]


def test_sixteen_concurrent_clients_get_their_own_answers(server, cohort_records):
    records, _ = cohort_records
    results: dict[int, list] = {}

    def client(k: int) -> None:
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
            got = []
            for j in range(8):
                rec = records[(k * 8 + j) % len(records)]
                r = c.post("/predict", json={"records": [rec]})
                got.append((r.status_code, rec["subject_id"], r.json()["predictions"][0] if r.status_code == 200 else None))
            results[k] = got

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    alone = {p["subject_id"]: p for p in _post(server, "/predict", records).json()["predictions"]}
    flat = [x for k in range(16) for x in results[k]]
    assert len(flat) == 128 and all(status == 200 for status, _, _ in flat)
    for _, sid, p in flat:  # batched with strangers, each answer is still its own record's
        assert p == alone[sid]


# ---- errors ------------------------------------------------------------------------------------
def _problems(r: httpx.Response) -> list[dict]:
    body = ErrorResponse.model_validate(r.json())
    assert MARKER not in r.text
    return [p.model_dump() for p in body.problems or []]


def test_invalid_records_get_422_naming_index_field_and_rule(server):
    good = dict(EXAMPLE_RECORD, subject_id="ok-1")
    cases = [
        ([good, dict(EXAMPLE_RECORD, subject_id="s2", cpm_pct=350, site=MARKER)], 1, "cpm_pct", "above the allowed range"),
        ([good, dict(EXAMPLE_RECORD, subject_id="s2", sex=MARKER)], 1, "sex", "not an allowed category"),
        ([dict(EXAMPLE_RECORD, shoe_size=MARKER)], 0, "shoe_size", "unknown field"),
        ([dict(EXAMPLE_RECORD, age_years=MARKER)], 0, "age_years", "not a number"),
        ([dict(EXAMPLE_RECORD, pain_condition="pain_free", site=MARKER)], 0, "pain_duration_months", "cross-field"),
        ([dict(EXAMPLE_RECORD, lactate_mmol_l=45.0)], 0, "lactate_mmol_l", "mg/dL"),
        ([good, dict(good)], 1, "subject_id", "duplicated subject_id"),
    ]
    for records, index, field, words in cases:
        r = _post(server, "/predict", records)
        assert r.status_code == 422, r.text
        hits = [p for p in _problems(r) if p["field"] == field and p["index"] == index]
        assert hits and words in hits[0]["problem"] and "rule" in hits[0]["problem"] + r.json()["error"], r.text
    r = _post(server, "/explain", [dict(EXAMPLE_RECORD, exercise_intensity_pct=0.7)])
    assert r.status_code == 422 and "looks like a fraction" in r.text


def test_request_shape_errors(server):
    c = server.client
    r = _post(server, "/predict", [])
    assert r.status_code == 422 and _problems(r)[0]["field"] == "records"
    many = [dict(EXAMPLE_RECORD, subject_id=f"s{i}") for i in range(1001)]
    r = _post(server, "/predict", many)
    assert r.status_code == 422 and "at most 1000" in r.text
    r = c.post("/predict", content=b'{"records": [{"age_years": ' + MARKER.encode(), headers=JSON)
    assert r.status_code == 400 and "malformed JSON" in r.text and MARKER not in r.text
    r = c.post("/predict", content=json.dumps({"records": [EXAMPLE_RECORD]}), headers={"content-type": "text/csv"})
    assert r.status_code == 415
    r = c.post("/explain", json={"rows": [EXAMPLE_RECORD]})
    assert r.status_code == 422
    r = c.post("/predict", json=dict(EXAMPLE_RECORD, site=MARKER))  # a bare record: one hint, not 24 problems
    assert r.status_code == 422 and MARKER not in r.text
    assert [p["problem"] for p in _problems(r)] == [
        'the body must be {"records": [record, ...]}: it looks like a single record']


def test_oversized_bodies_get_413(server):
    big = json.dumps({"records": [dict(EXAMPLE_RECORD, site=MARKER * 3)] * 2000}).encode()
    assert len(big) > 1_048_576
    r = server.client.post("/predict", content=big, headers=JSON)
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # streamed without a Content-Length (chunked transfer)
        for i in range(0, len(big), 65_536):
            yield big[i:i + 65_536]

    r = server.client.post("/predict", content=chunks(), headers=JSON)
    assert r.status_code == 413


def test_logs_never_show_values_of_rejected_requests(server):
    c = server.client
    bad = [dict(EXAMPLE_RECORD, site=MARKER, cpm_pct=999), dict(EXAMPLE_RECORD, subject_id=MARKER + "!"),
           dict(EXAMPLE_RECORD, bdnf_ng_ml=MARKER), dict(EXAMPLE_RECORD, **{MARKER: MARKER})]
    for rec in bad:
        for path in ("/predict", "/explain"):
            assert _post(server, path, [rec]).status_code == 422
    assert c.post("/predict", content=MARKER.encode(), headers=JSON).status_code == 400
    assert c.post("/predict", content=MARKER.encode(), headers={"content-type": "text/plain"}).status_code == 415
    assert httpx.post(server.base + "/predict", json={"records": [dict(EXAMPLE_RECORD, site=MARKER)]}).status_code == 401
    assert _post(server, "/predict", [dict(EXAMPLE_RECORD, site=MARKER)]).status_code == 200
    time.sleep(1.0)
    text = server.log.read_text(errors="replace")
    assert "status=422" in text and "status=400" in text and "status=401" in text  # the requests were logged ...
    assert MARKER not in text  # ... without their values


# ---- fuzzing -----------------------------------------------------------------------------------
def test_schemathesis_fuzz_finds_no_server_error_and_no_undocumented_status(server, tmp_path):
    cmd = [str(BIN / "schemathesis"), "run", server.base + "/docs.json", "--checks",
           "not_a_server_error,status_code_conformance",
           "--max-examples", "20", "--seed", "20261122", "--header", f"Authorization: Bearer {TOKEN}",
           "--request-timeout", "60", "--no-color", "--report-dir", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=420)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    assert "No issues found" in res.stdout, res.stdout[-5000:]


# ---- the API page, the document and BentoML's client ----------------------------------------------
def test_the_served_api_page_and_document(server):
    import re

    version = server.client.get("/metadata").json()["model"]["version"]
    page = server.client.get("/").text
    assert f"eih-responder version {version}" in re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page)
    doc = server.client.get("/docs.json").json()
    assert doc["security"] == [{"bearer": []}] and doc["paths"]["/readyz"]["get"]["security"] == []
    for path in ("/predict", "/explain"):
        assert {"200", "400", "401", "413", "415", "422", "503"} <= set(doc["paths"][path]["post"]["responses"])


def _readme_client_example() -> str:
    import re

    text = (Path(__file__).resolve().parent.parent / "serving" / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "bentoml.SyncHTTPClient" in b]
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_client_example_runs_against_the_served_model(server, monkeypatch, capsys):
    code = _readme_client_example().replace("http://127.0.0.1:3000", server.base)
    monkeypatch.setenv("EIH_API_TOKEN", TOKEN)
    exec(compile(code, "serving/README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102 - our own README
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo-001 ") and out[0].split()[1] in RESPONSES
    assert out[-1].startswith("refused: 422 ") and "cpm_pct" in out[-1] and "350" not in out[-1]
