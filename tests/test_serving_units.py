"""Unit tests of the HTTP service's parts, without a server: the fast record path of the
predictor (identical to the DataFrame path), the request gate (its pre-screen agrees with
validate_frame; errors never quote a value), the ASGI safety middleware, the
micro-batcher and the response builder."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import BY_NAME, PREDICTORS, RESPONSES
from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from features.pipeline import ContractFeatures
from features.reference import build_reference
from model_runtime.links import softmax
from model_runtime.loading import LoadedModel
from model_runtime.metadata import ModelMeta
from model_runtime.predictor import EIHPredictor
from serving import gate
from serving.batching import MicroBatcher
from serving.gate import GateError, RequestBody, records_from_frame
from serving.middleware import STATE_KEY, SafetyMiddleware
from serving.schemas import ExplainResponse, PredictResponse
from serving.scoring import Job, Scorer

MARKER = "ZQX-MARKER-7731"


# ---- a small real model on simulated data ------------------------------------------------------
@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    from simulation import simulate

    df, _ = simulate(900, seed=5, n_sites=1)
    return df


@pytest.fixture(scope="module")
def predictor(cohort) -> EIHPredictor:
    train = cohort.iloc[:300]  # a narrow reference, so the other rows raise range warnings
    X = ContractFeatures().fit_transform(train)
    y = response_codes(eih_pct(train))
    dm = xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns))
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "seed": 0, "nthread": 1},
                        dm, 30)
    meta = {"contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(X.columns),
            "outputs": list(RESPONSES), "calibration": {"temperature": 1.2, "bias": [0.05, -0.1, 0.02]},
            "risk_cutoffs": {"moderate": 0.2, "high": 0.35}, "reference": build_reference(X),
            "training_metrics": {"test_log_loss": 0.9, "undefined": float("nan")}}
    return EIHPredictor(booster, ModelMeta.from_dict(meta))


@pytest.fixture(scope="module")
def scorer(predictor) -> Scorer:
    return Scorer(LoadedModel(predictor=predictor, uri="models:/unit@test", name="unit", version="1", run_id=None))


def _valid(cohort: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    report = validate_frame(cohort.drop(columns=["ppt_post_kpa"]))
    assert len(report.valid) > 800
    return records_from_frame(report.valid), report.valid


# ---- the fast record path ---------------------------------------------------------------------
def test_fast_record_path_is_identical_to_the_dataframe_path(cohort, predictor):
    records, valid = _valid(cohort)
    ex_df = predictor.explain(valid)
    ex_np = predictor.explain_records(records)
    for a, b in ((ex_df.margins, ex_np.margins), (ex_df.base, ex_np.base), (ex_df.contributions, ex_np.contributions)):
        assert np.array_equal(a, b)  # bit for bit, not merely close
    X = predictor.matrix(records)
    assert predictor.missing_optional_matrix(X) == predictor.missing_optional(valid)
    warnings = predictor.range_warnings_matrix(X)
    assert warnings == predictor.range_warnings(valid)
    assert sum(map(len, warnings)) > 0  # the comparison covered warnings
    assert any(miss for miss in predictor.missing_optional_matrix(X))


def test_matrix_codes_categories_and_missing_values(predictor):
    rec = gate.normalise_record(dict(EXAMPLE_RECORD, sex="male", pain_mechanism=None, bdnf_matrix="None"))
    X = predictor.matrix([rec])
    j = {f: i for i, f in enumerate(predictor.fields)}
    assert X[0, j["sex"]] == BY_NAME["sex"].categories.index("male")
    assert np.isnan(X[0, j["pain_mechanism"]]) and np.isnan(X[0, j["bdnf_matrix"]])
    assert X[0, j["age_years"]] == 52.0


# ---- the gate --------------------------------------------------------------------------------
def _body(records) -> bytes:
    return json.dumps({"records": records}).encode()


def _err(body: bytes) -> GateError:
    with pytest.raises(GateError) as info:
        gate.validate_body(body)
    text = json.dumps(info.value.body())
    assert MARKER not in text, text
    return info.value


def test_gate_accepts_a_valid_record_and_keeps_values_as_given():
    records = gate.validate_body(_body([EXAMPLE_RECORD]))
    assert records[0]["age_years"] == 52 and isinstance(records[0]["age_years"], int)
    assert set(records[0]) == set(gate.RECORD_FIELDS)


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        (b'{"records": [', 400, None, "malformed JSON"),
        (b"", 400, None, "empty body"),
        (b"[1, 2]", 422, None, "JSON object"),
        (_body([]), 422, "records", "at least 1"),
        (_body([dict(EXAMPLE_RECORD, subject_id=f"s{i}") for i in range(1001)]), 422, "records", "at most 1000"),
        (_body([dict(EXAMPLE_RECORD, cpm_pct=MARKER)]), 422, "cpm_pct", "not a number; rule: cpm_pct is a number"),
        (_body([dict(EXAMPLE_RECORD, age_years=None)]), 422, "age_years", "missing"),
        (_body([dict(EXAMPLE_RECORD, cpm_pct=301)]), 422, "cpm_pct", "above the allowed range; rule"),
        (_body([dict(EXAMPLE_RECORD, sex=MARKER)]), 422, "sex", "not an allowed category; rule: sex is one of"),
        (_body([dict(EXAMPLE_RECORD, shoe_size=MARKER)]), 422, "shoe_size", "unknown field"),
        (_body([dict(EXAMPLE_RECORD, **{MARKER + " !": 1})]), 422, "(field name not shown)", "unknown field"),
        (_body([dict(EXAMPLE_RECORD, subject_id=MARKER + "/x")]), 422, "subject_id", "not a valid identifier"),
        (_body([dict(EXAMPLE_RECORD, site=MARKER * 10)]), 422, "site", "rule: site is 1-64 characters"),
        (_body([dict(EXAMPLE_RECORD, pain_duration_months=1)]), 422, "pain_duration_months", "cross-field rule"),
        (_body([dict(EXAMPLE_RECORD, bdnf_ng_ml=150.0, bdnf_matrix="serum")]), 422, "bdnf_ng_ml", "pg/mL"),
        (_body([EXAMPLE_RECORD, EXAMPLE_RECORD]), 422, "subject_id", "duplicated subject_id"),
        (b'{"records": [{"age_years": NaN}]}', 422, "age_years", "not a finite number"),
        (json.dumps({"records": [EXAMPLE_RECORD], "extra": MARKER}).encode(), 422, "extra", "top-level"),
    ],
)
def test_gate_errors_name_index_field_and_rule_never_the_value(body, status, field, words):
    exc = _err(body)
    assert exc.status == status
    text = json.dumps(exc.body())
    assert words in text
    if field is not None:
        assert any(p["field"] == field for p in exc.body()["problems"]), text
    for p in exc.body().get("problems", []):
        if p["field"] not in (None, "records") and p.get("index") is not None:
            assert p["index"] == 0 or "duplicated" in p["problem"]


def test_gate_problem_lists_are_capped_but_counted():
    bad = [dict(EXAMPLE_RECORD, subject_id=f"s{i}", cpm_pct=500) for i in range(400)]
    exc = _err(_body(bad))
    body = exc.body()
    assert body["n_problems"] == 400 and len(body["problems"]) == gate.MAX_PROBLEMS and body["truncated"]


def test_prescreen_knows_every_schema_check():
    from data_contracts.schema import PRESCREEN_ENABLED

    assert PRESCREEN_ENABLED


# hypothesis: records the pydantic model accepts, close to the edges of every rule
_NUMBER_EDGES = {}
for _f in gate.RECORD_FIELDS:
    _fd = BY_NAME[_f]
    if _fd.kind == "number":
        _NUMBER_EDGES[_f] = [_fd.min, _fd.max, _fd.min - 0.001, _fd.max + 0.001, (_fd.min + _fd.max) / 2, 0, 3, 5, 5.01]


@st.composite
def record_lists(draw):
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        rec = dict(EXAMPLE_RECORD, subject_id=f"p{i}")
        for name in draw(st.lists(st.sampled_from(gate.RECORD_FIELDS), max_size=5, unique=True)):
            f = BY_NAME[name]
            options: list = [None, ""] if name != "subject_id" else ["", "None", "bad id!", "x" * 65, "ok.id-1"]
            if f.kind == "number":
                options += _NUMBER_EDGES[name]
            elif f.kind == "category":
                options += list(f.categories) + ["nan", "Female", "none"]
            elif name == "site":
                options += ["A", "x" * 64, "x" * 65, "None"]
            rec[name] = draw(st.sampled_from(options))
        if draw(st.booleans()):
            rec["pain_condition"] = draw(st.sampled_from(BY_NAME["pain_condition"].categories))
            rec["pain_mechanism"] = draw(st.sampled_from([None, "none", "nociceptive", "mixed"]))
            rec["pain_duration_months"] = draw(st.sampled_from([0, 0.5, 2.99, 3, 48, None]))
        if draw(st.booleans()):
            rec["bdnf_ng_ml"] = draw(st.sampled_from([None, 0.01, 4.9, 5, 5.01, 30, 100, 100.5]))
            rec["bdnf_matrix"] = draw(st.sampled_from([None, "serum", "plasma"]))
        out.append(rec)
    if n > 1 and draw(st.booleans()):
        out[-1]["subject_id"] = out[0]["subject_id"]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_lists())
def test_prescreen_agrees_with_validate_frame(records):
    try:
        RequestBody.model_validate({"records": records}, strict=True)
    except Exception:  # noqa: BLE001 - only type-valid records reach the pre-screen
        return
    normalised = [gate.normalise_record(r) for r in records]
    doubtful = set(gate.prescreen(normalised))
    report = validate_frame(gate.frame(normalised))
    rejected = {int(r) - 1 for r in report.problems["row"]}
    assert doubtful == rejected, report.problems.to_dict(orient="records")


# ---- the middleware --------------------------------------------------------------------------
class Downstream:
    """The app behind the middleware: records what reached it."""

    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        self.calls.append((scope["path"], body, scope.get("state", {}).get(STATE_KEY)))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_middleware_token_guards_everything_but_the_probes():
    down = Downstream()
    app = SafetyMiddleware(down, token="s3cret", max_body_bytes=10_000)
    good = {"Authorization": "Bearer s3cret"}

    async def go():
        async with _client(app) as c:
            assert (await c.get("/livez")).status_code == 200
            assert (await c.get("/readyz")).status_code == 200
            for path in ("/metadata", "/metrics", "/docs.json", "/"):
                r = await c.get(path)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
                assert (await c.get(path, headers={"Authorization": "Bearer s3cre"})).status_code == 401
                assert (await c.get(path, headers={"Authorization": "Basic s3cret"})).status_code == 401
                assert (await c.get(path, headers=good)).status_code == 200
            r = await c.post("/predict", json={"records": [EXAMPLE_RECORD]})
            assert r.status_code == 401
            r = await c.post("/predict", json={"records": [EXAMPLE_RECORD]}, headers={"authorization": "bearer s3cret"})
            assert r.status_code == 200

    asyncio.run(go())
    path, body, records = down.calls[-1]
    assert path == "/predict" and json.loads(body)["records"][0]["subject_id"] == "demo-001"
    assert records[0]["cpm_pct"] == -8  # validated records travel in scope["state"]


def test_middleware_without_token_is_open_and_checks_content_type_and_json():
    down = Downstream()
    app = SafetyMiddleware(down, token=None, max_body_bytes=10_000)

    async def go():
        async with _client(app) as c:
            assert (await c.get("/metadata")).status_code == 200
            r = await c.post("/predict", content=_body([EXAMPLE_RECORD]), headers={"content-type": "text/plain"})
            assert r.status_code == 415
            r = await c.post("/explain", content=_body([EXAMPLE_RECORD]))  # no content type at all
            assert r.status_code == 415
            r = await c.post("/predict", content=b'{"records": [}', headers={"content-type": "application/json"})
            assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
            r = await c.post("/explain", content=_body([dict(EXAMPLE_RECORD, sex=MARKER)]),
                             headers={"content-type": "application/json; charset=utf-8"})
            assert r.status_code == 422 and MARKER not in r.text

    asyncio.run(go())
    assert down.calls == [("/metadata", b"", None)]


def _asgi_post(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """Drive the middleware by hand: count how many body chunks it pulls."""
    pulled = []
    sent = []

    async def receive():
        if len(pulled) < len(chunks):
            pulled.append(chunks[len(pulled)])
            return {"type": "http.request", "body": pulled[-1], "more_body": len(pulled) < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return len(pulled), sent[0]["status"] if sent else None


def test_middleware_refuses_large_bodies_without_reading_them_whole():
    app = SafetyMiddleware(Downstream(), max_body_bytes=100_000)
    chunk = b"x" * 65_536
    json_ct = (b"content-type", b"application/json")
    # declared too large: refused before reading a byte
    assert _asgi_post(app, [chunk] * 20, [json_ct, (b"content-length", str(20 * 65_536).encode())]) == (0, 413)
    # streamed without a length: refused at the chunk that passes the limit
    assert _asgi_post(app, [chunk] * 20, [json_ct]) == (2, 413)
    # a lying Content-Length does not help either
    assert _asgi_post(app, [chunk] * 20, [json_ct, (b"content-length", b"10")]) == (2, 413)
    assert _asgi_post(app, [b"{}"], [json_ct, (b"content-length", b"-1")]) == (0, 400)


# ---- the micro-batcher -----------------------------------------------------------------------
def test_micro_batcher_batches_under_concurrency_and_keeps_each_result():
    calls = []

    def run(jobs):
        calls.append(len(jobs))
        time.sleep(0.02)
        return [j * 10 for j in jobs]

    async def go():
        b = MicroBatcher(run, max_rows=8)
        first = await b.submit(1, 1)  # alone: scored at once
        results = await asyncio.gather(*(b.submit(i, 1) for i in range(30)))
        b.close()
        return first, results

    first, results = asyncio.run(go())
    assert first == 10 and results == [i * 10 for i in range(30)]
    assert calls[0] == 1 and max(calls) == 8 and len(calls) < 30


def test_micro_batcher_passes_failures_to_every_waiting_request():
    def run(jobs):
        raise ValueError("boom")

    async def go():
        b = MicroBatcher(run)
        out = await asyncio.gather(*(b.submit(i, 1) for i in range(3)), return_exceptions=True)
        ok = await MicroBatcher(lambda jobs: jobs).submit(5, 1)
        b.close()
        return out, ok

    out, ok = asyncio.run(go())
    assert all(isinstance(e, ValueError) for e in out) and ok == 5


# ---- responses -------------------------------------------------------------------------------
def test_predict_and_explain_responses(cohort, predictor, scorer):
    records, valid = _valid(cohort)
    records, valid = records[:40], valid.iloc[:40]
    pred_body, expl_body = scorer.run([Job("predict", records[:25]), Job("explain", records[:25]),
                                       Job("predict", records[25:])])[:2]
    pred = PredictResponse.model_validate_json(pred_body)
    expl = ExplainResponse.model_validate_json(expl_body)
    assert pred.model.name == "unit" and pred.model.contract_version == "1.0" and pred.model.label_threshold_pct == 10
    P, ex = predictor.predict_and_explain(valid.iloc[:25])
    for i, (p, e) in enumerate(zip(pred.predictions, expl.explanations)):
        assert p.subject_id == e.subject_id == records[i]["subject_id"]
        probs = [getattr(p.probabilities, o) for o in RESPONSES]
        assert np.allclose(probs, P[i], atol=1e-12) and abs(sum(probs) - 1) < 1e-12
        assert p.predicted_response == RESPONSES[int(np.argmax(P[i]))]
        assert p.hyperalgesia_risk == predictor.risk_level(P[i:i + 1, 2])[0]
        assert len(p.top_contributions) == 5
        for t in p.top_contributions:
            assert t.value == records[i][t.field] and t.statement
        assert p.missing_inputs == [f for f in predictor.fields if not BY_NAME[f].required and records[i][f] is None]
        for k, o in enumerate(RESPONSES):
            assert set(e.contributions[o]) == set(PREDICTORS)
            total = e.base_values[o] + sum(e.contributions[o].values())
            assert abs(total - e.margins[o]) < 1e-9
            assert e.margins[o] == pytest.approx(ex.margins[i, k], abs=1e-12)
        assert np.allclose(softmax(np.array([[e.margins[o] for o in RESPONSES]]))[0], probs, atol=1e-12)


def test_metadata_is_json_safe(scorer):
    meta = scorer.metadata()
    json.dumps(meta, allow_nan=False)
    assert meta["training_metrics"]["undefined"] is None
    assert meta["features"] == list(PREDICTORS) and meta["risk_cutoffs"] == {"moderate": 0.2, "high": 0.35}


# ---- logs ------------------------------------------------------------------------------------
def test_exception_messages_never_reach_the_log(caplog):
    import logging

    from pydantic import ValidationError

    from data_contracts.record import ContractRecord
    from serving import logsafety

    logsafety.install()
    lg = logging.getLogger("bentoml._internal.server.http_app")
    try:
        ContractRecord.model_validate(dict(EXAMPLE_RECORD, age_years=MARKER))
    except ValidationError:
        with caplog.at_level(logging.ERROR, logger=lg.name):
            lg.error("Exception on %s [%s]", "/predict", "POST", exc_info=True)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "ValidationError (message withheld" in text and "/predict" in text
    assert MARKER not in text


# ---- explanation texts ---------------------------------------------------------------------
def test_statement_reads_like_the_issue_example():
    from serving.explain import statement

    s = statement("cpm_pct", -8, "hyperalgesia", {})
    assert s == ("CPM of -8 % (impaired inhibition) raises the risk of hyperalgesia "
                 "(more pain sensitivity after exercise)")
    assert statement("pseq_total", None, "hypoalgesia").startswith("Pain self-efficacy (PSEQ) not measured")
    assert statement("cpm_pct", 12, "hypoalgesia", {}, shift_points=3.14).endswith(
        "favours hypoalgesia (less pain sensitivity after exercise), shifting the expected change by +3.1 points")


def test_top_fields_of_an_ordinal_model_follow_the_sign_and_size():
    from serving.explain import top_contributions, top_fields

    # one record, one output, four fields: +2 (toward hypo), -5 (toward hyper), 0.5, -1
    c = np.array([[[2.0, -5.0, 0.5, -1.0]]])
    idx, val, tow = top_fields(c, 3)
    assert idx.tolist() == [[1, 0, 3]] and val.tolist() == [[5.0, 2.0, 1.0]]
    assert [RESPONSES[t] for t in tow[0]] == ["hyperalgesia", "hypoalgesia", "hyperalgesia"]
    fields = ("cpm_pct", "pcs_total", "age_years", "pseq_total")
    rec = {"cpm_pct": 10, "pcs_total": 40, "age_years": 50, "pseq_total": 30}
    tops = top_contributions([rec], fields, c, k=2)[0]
    assert [t["field"] for t in tops] == ["pcs_total", "cpm_pct"] and tops[0]["contribution"] == 5.0
    assert tops[0]["statement"].endswith(", shifting the expected change by -5.0 points")
    assert tops[1]["statement"].endswith(", shifting the expected change by +2.0 points")


def test_top_fields_of_a_softmax_model_use_centered_margins():
    from serving.explain import top_contributions, top_fields

    # field 0 adds 1 to every margin (no effect on softmax); field 1 pushes hyperalgesia 0.9 above the mean
    c = np.zeros((1, 3, 2))
    c[0, :, 0] = 1.0
    c[0, :, 1] = [-0.45, -0.45, 0.9]
    idx, val, tow = top_fields(c, 2)
    assert idx[0, 0] == 1 and RESPONSES[tow[0, 0]] == "hyperalgesia" and val[0, 0] == pytest.approx(0.9)
    assert val[0, 1] == pytest.approx(0.0)
    tops = top_contributions([{"cpm_pct": 1, "pcs_total": 40}], ("cpm_pct", "pcs_total"), c, k=1)[0]
    assert "shifting the expected change" not in tops[0]["statement"]
