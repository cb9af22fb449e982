"""The HTTP prediction service (BentoML 1.4): predictions with exact explanations, safe by default.

Routes
- POST /predict  {"records": [record, ...]} (1-1,000 contract records) -> probabilities,
  predicted response, hyperalgesia risk, top contributions in clinical words, missing
  inputs and out-of-range warnings, per record in order.
- POST /explain  same body -> margins, base values and the exact TreeSHAP contribution
  of every contract predictor to every output (base + contributions = margin).
- POST /recommend  {"record": {...}, "constraints": {...}} (one person, protocol left out or
  current) -> the top protocols of a grid by P(hypoalgesia) - P(hyperalgesia) within the
  constraints, with reasons and warnings (serving/recommend_api.py, recommend_route.py).
- GET /metadata  the served model: name, version, contract, threshold, metrics, features.
- GET /          the API page (serving/api_page.py: local files only, titled by the project and
  the served model); GET /docs.json, the OpenAPI document with every status a route answers.
- GET /clinic    the clinician page (serving/clinic.py): a form from the contract, the answer
  drawn; served without a token, as it holds nothing about the served model.
- BentoML's own: /livez, /readyz (503 until a usable model is loaded), /metrics.

The model (`models:/eih-responder@champion`, or `EIH_MODEL_URI`; in a Bento built by `eih
build`, the registered version bundled in it, serving/bento.py) is loaded once, in a
background thread, when a worker starts: /livez answers at once and /readyz turns ready
when the model is in. While no usable model can be loaded (no champion yet, a registry
that does not answer, a model trained on another contract major version) the worker logs
why, stays not ready and tries again every `EIH_MODEL_RETRY_SECONDS`. A model is not
reloaded when the alias moves unless `EIH_FOLLOW_ALIAS_SECONDS` is set (`eih serve
--follow-alias`): then the alias is looked up that often and a new version is loaded
beside the served one and swapped in whole (serving/model_slot.py).

Configuration (environment; `eih serve` sets them from its options):
EIH_MODEL_URI, EIH_API_TOKEN (bearer token; unset = no auth), EIH_MAX_BODY_BYTES
(default 1 MiB), EIH_SERVE_WORKERS (default 1), EIH_XGB_THREADS (XGBoost threads per worker, default 1:
one-row TreeSHAP is fastest on one thread; scale with workers),
EIH_MODEL_RETRY_SECONDS (default 30), EIH_TOP_K (default 5), EIH_MAX_BATCH_ROWS (records
per scoring batch, default 1000; 1 turns batching off), EIH_TRACING (default 0: no
OpenTelemetry spans; set 1 with a BentoML tracing exporter), EIH_FOLLOW_ALIAS_SECONDS
(default unset: the model stays until a restart).

Run: `eih serve` (or `bentoml serve serving.service:EIHService`).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Annotated

import bentoml
from fastapi import FastAPI
from pydantic import Field
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.record import ContractRecord
from model_runtime.settings import champion_uri
from serving import api_page, clinic, logsafety
from serving.batching import MicroBatcher
from serving.bento import bundled_model_tag, load_bundled
from serving.gate import MAX_RECORDS, GateError, check_rules, normalise_record
from serving.middleware import DEFAULT_MAX_BODY_BYTES, PROBE_PATHS, STATE_KEY, SafetyMiddleware
from serving.model_slot import ModelSlot
from serving.recommend_api import RecommendConstraints, RecommendGate, RecommendRecord, RecommendResponse
from serving.recommend_route import RecommendRoute
from serving.schemas import ExplainResponse, Metadata, PredictResponse
from serving.scoring import Job

log = logging.getLogger("eih.serving")


@dataclass(frozen=True)
class ServeSettings:
    """The service's configuration, read from the EIH_* environment variables."""

    model_uri: str | None
    token: str | None
    max_body_bytes: int
    workers: int
    xgb_threads: int
    retry_seconds: float
    top_k: int
    tracing: bool
    max_batch_rows: int
    follow_seconds: float | None = None

    @classmethod
    def from_env(cls, env: dict | None = None) -> ServeSettings:
        """Settings from `env` (default `os.environ`); an unset or empty variable takes its default."""
        env = os.environ if env is None else env
        workers = max(1, int(env.get("EIH_SERVE_WORKERS") or 1))
        return cls(
            model_uri=env.get("EIH_MODEL_URI") or None,
            token=env.get("EIH_API_TOKEN") or None,
            max_body_bytes=int(env.get("EIH_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
            workers=workers,
            xgb_threads=int(env.get("EIH_XGB_THREADS") or 1),
            retry_seconds=float(env.get("EIH_MODEL_RETRY_SECONDS") or 30),
            top_k=int(env.get("EIH_TOP_K") or 5),
            tracing=(env.get("EIH_TRACING") or "0").lower() in ("1", "true", "yes"),
            max_batch_rows=max(1, int(env.get("EIH_MAX_BATCH_ROWS") or MAX_RECORDS)),
            follow_seconds=float(env["EIH_FOLLOW_ALIAS_SECONDS"]) if env.get("EIH_FOLLOW_ALIAS_SECONDS") else None,
        )


SETTINGS = ServeSettings.from_env()

Records = Annotated[
    list[ContractRecord],
    Field(min_length=1, max_length=MAX_RECORDS, description="1 to 1,000 contract records (data contract 1.0)",
          examples=[[EXAMPLE_RECORD]]),
]

metadata_app = FastAPI(title="eih metadata", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(
    name="eih_responder",
    workers=SETTINGS.workers,
    traffic={"timeout": 60, "max_concurrency": 512},
    # BentoML wraps every request in an OpenTelemetry span even when no exporter is set
    # (about 0.5 ms of CPU per request here); EIH_TRACING=1 keeps it for a configured exporter.
    **({} if SETTINGS.tracing else {"tracing": {"excluded_urls": [".*"]}}),
)
@bentoml.asgi_app(metadata_app, path="/")
class EIHService:
    """Exercise-induced hypoalgesia responder: probabilities of hypoalgesia, no change and
    hyperalgesia after one exercise bout, with the exact reasons (TreeSHAP) behind them."""

    def __init__(self) -> None:
        logsafety.install()
        log.disabled = False
        log.setLevel(logging.INFO)
        # model settings are read again here (the module-level ones fixed workers and middleware)
        self.settings = st = ServeSettings.from_env()
        bundled = None if st.model_uri else bundled_model_tag(EIHService)  # a Bento's own model (serving/bento.py)
        self._slot = ModelSlot(st.model_uri or bundled or champion_uri(), xgb_threads=st.xgb_threads, top_k=st.top_k,
                               retry_seconds=st.retry_seconds, follow_seconds=None if bundled else st.follow_seconds,
                               loader=load_bundled if bundled else None).start()
        self._batcher = MicroBatcher(self._run, max_rows=st.max_batch_rows)
        self._recommend = RecommendRoute(self._slot)

    def __is_ready__(self) -> bool:
        return self._slot.scorer is not None

    def _run(self, jobs: list[Job]) -> list[bytes]:
        return self._slot.scorer.run(jobs)  # read once: the whole batch is scored by one model

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._slot.stop()
        self._batcher.close()
        self._recommend.close()

    # ---- endpoints ---------------------------------------------------------------------------
    @bentoml.api(route="/predict")
    async def predict(self, records: Records, ctx: bentoml.Context) -> PredictResponse:
        """Probabilities of hypoalgesia, no change and hyperalgesia for each record, the predicted
        response, the hyperalgesia risk level, the top contributions in clinical words, the
        optional inputs that were missing and values outside the training range. Invalid
        records: 422 naming the record index, the field and the rule (never the value)."""
        return await self._answer("predict", records, ctx)

    @bentoml.api(route="/explain")
    async def explain(self, records: Records, ctx: bentoml.Context) -> ExplainResponse:
        """Exact TreeSHAP explanation of each record: per output the margin, the base value and
        the contribution of every contract predictor (base value + contributions = margin)."""
        return await self._answer("explain", records, ctx)

    @bentoml.api(route="/recommend")
    async def recommend(self, record: RecommendRecord, ctx: bentoml.Context,  # type: ignore[valid-type]
                        constraints: RecommendConstraints | None = None, top: int | None = None) -> RecommendResponse:
        """The protocols that give this person the best odds: a grid of modality x intensity x
        duration scored in one call, the top ones by P(hypoalgesia) - P(hyperalgesia) within the
        constraints, each with its probabilities, the reasons of its protocol fields and warnings,
        the current protocol beside them, and whether the ranking can be read causally."""
        return await self._recommend.answer(ctx, record, constraints, top)

    async def _answer(self, kind: str, records: list, ctx: bentoml.Context) -> Response:
        if self._slot.scorer is None:
            return _json(ctx, 503, {"error": f"not ready: {self._slot.reason}"})
        recs = ctx.request.scope.get("state", {}).get(STATE_KEY)
        if recs is None:  # reached without the middleware: the same gate, on the parsed records
            try:
                recs = [normalise_record(r.model_dump()) for r in records]
                check_rules(recs)
            except GateError as exc:
                return _json(ctx, exc.status, exc.body())
        try:
            body = await self._batcher.submit(Job(kind, recs), len(recs))
        except Exception as exc:  # noqa: BLE001 - answer 500 without a traceback or a value
            log.error("scoring failed: %s (details withheld)", type(exc).__name__)
            return _json(ctx, 500, {"error": "internal error while scoring; see the server log"})
        ctx.response.status_code = 200
        return Response(body, media_type="application/json")

    @metadata_app.get("/metadata", response_model=Metadata, summary="The served model")
    def metadata(self):
        """The served model: registry name and version, data contract, label threshold,
        risk cut-offs, training metrics and the feature list."""
        scorer = self._slot.scorer
        if scorer is None:
            return JSONResponse({"error": f"not ready: {self._slot.reason}"}, status_code=503)
        return scorer.metadata()

    # ---- the API page and the OpenAPI document -------------------------------------------------
    def _openapi(self) -> dict:
        from model_runtime.settings import package_version

        scorer = self._slot.scorer
        return api_page.openapi(_bentoml_openapi(), scorer.model_info if scorer else None, package_version(),
                                token=bool(self.settings.token))

    @metadata_app.get("/docs.json", include_in_schema=False)
    def openapi_document(self):
        """The OpenAPI document: BentoML's, completed with every status each route answers."""
        return JSONResponse(self._openapi())

    @metadata_app.get("/", include_in_schema=False)
    def api_page(self):
        """The API page, from local files only (no third-party script, style or font)."""
        scorer = self._slot.scorer
        body = api_page.page(self._openapi(), scorer.model_info if scorer else None)
        return HTMLResponse(body, headers={"Content-Security-Policy": api_page.CSP})

    @metadata_app.get("/api-page/{name}", include_in_schema=False)
    def api_page_asset(self, name: str):
        """A file of the API page (a fixed list; 404 for any other name)."""
        found = api_page.asset(name)
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        content, media = found
        if isinstance(content, str):
            return Response(content, media_type=media)
        return FileResponse(content, media_type=media)

    # ---- the clinician page (serving/clinic.py: served without a token, nothing model-specific in it)
    @metadata_app.get(clinic.PATH, include_in_schema=False)
    def clinic_page(self):
        """One person's measures in, one answer out: the form from the contract, the answer drawn."""
        return HTMLResponse(clinic.page(), headers=clinic.HEADERS)

    @metadata_app.get(clinic.PATH + "/{name}", include_in_schema=False)
    def clinic_asset(self, name: str):
        """The clinician page's style sheet or script (a fixed list; 404 for any other name)."""
        found = clinic.asset(name)
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(found[0], media_type=found[1], headers=clinic.HEADERS)


@functools.cache
def _bentoml_openapi() -> dict:
    """BentoML's generated OpenAPI document (paths and schemas), built once per process."""
    return EIHService.openapi_spec.asdict()


def _json(ctx: bentoml.Context, status: int, payload: dict) -> Response:
    ctx.response.status_code = status
    return JSONResponse(payload, status_code=status)


EIHService.add_asgi_middleware(SafetyMiddleware, token=SETTINGS.token, max_body_bytes=SETTINGS.max_body_bytes,
                               probe_paths=PROBE_PATHS | clinic.PUBLIC_PATHS)
EIHService.add_asgi_middleware(RecommendGate, token=SETTINGS.token, max_body_bytes=SETTINGS.max_body_bytes)
