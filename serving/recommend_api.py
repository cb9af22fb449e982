"""POST /recommend: the HTTP door to `serving.recommend`.

Body: `{"record": {...}, "constraints": {...}, "top": 3}`. The record is one person in data
contract 1.0 with the protocol fields left out (or all three given: the current protocol,
scored beside the recommendations); `constraints` (optional) holds `modalities`,
`max_intensity`, `max_duration` and `max_hyperalgesia`; `top` (optional, 1-10, default 3).

The same rules as /predict: `RecommendGate` puts the service's `SafetyMiddleware` (token,
body size, content type) in front of this route with this module's gate, which answers
400 for a body that is not JSON and 422 for a wrong shape, an unknown field, a wrong type
or a broken contract rule, naming the field and the rule and never the value (the rule
messages come from `serving.gate.check_rules`, the engine of /predict).

The answer's schema (`RecommendResponse`) documents the OpenAPI document; the answers
themselves are built by `serving.recommend_route`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic import Field as PydanticField

from data_contracts.fields import BY_NAME, CONTRACT_VERSION
from data_contracts.record import ContractRecord
from serving.gate import GateError, check_rules, normalise_record
from serving.recommend import MODALITIES, PROTOCOL_FIELDS, Constraints

RECOMMEND_PATH = "/recommend"
DEFAULT_TOP = 3
MAX_TOP = 10
PLACEHOLDER = {"exercise_modality": "aerobic", "exercise_intensity_pct": 60.0, "exercise_duration_min": 20.0}
"""A valid protocol put in a record without one while its other fields are checked (never scored)."""


def _optional(name: str) -> tuple[Any, Any]:
    info = ContractRecord.model_fields[name]
    return info.annotation | None, PydanticField(None, description=info.description,
                                                 json_schema_extra=info.json_schema_extra)


def _all_or_none(schema: dict) -> None:
    """Document the rule the gate enforces: the three protocol fields come together or not at all."""
    given = {f: {"not": {"type": "null"}} for f in PROTOCOL_FIELDS}
    schema["anyOf"] = [{"required": list(PROTOCOL_FIELDS), "properties": given},
                       {"properties": {f: {"type": "null"} for f in PROTOCOL_FIELDS}}]


_RecordFields = create_model(
    "_RecordFields", __base__=ContractRecord, **{name: _optional(name) for name in PROTOCOL_FIELDS})


class RecommendRecord(_RecordFields):  # type: ignore[valid-type, misc]
    """One person (contract 1.0 predictors); the protocol fields are left out, or all three given (the
    current protocol, compared with the recommendations)."""

    model_config = ConfigDict(json_schema_extra=_all_or_none)


class RecommendConstraints(BaseModel):
    """Limits every recommended protocol keeps."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    modalities: list[Literal[MODALITIES]] | None = PydanticField(  # type: ignore[valid-type]
        None, min_length=1, description="allowed modalities (default: all)")
    max_intensity: float | None = PydanticField(None, ge=0, le=100, description="highest intensity, %")
    max_duration: float | None = PydanticField(None, ge=0, le=120, description="longest bout, minutes")
    max_hyperalgesia: float | None = PydanticField(None, ge=0, le=1,
                                                   description="ceiling on the predicted P(hyperalgesia)")


class RecommendBody(BaseModel):
    """The body of POST /recommend."""

    model_config = ConfigDict(extra="forbid")
    record: RecommendRecord  # type: ignore[valid-type]
    constraints: RecommendConstraints | None = None
    top: int | None = PydanticField(None, ge=1, le=MAX_TOP, description=f"protocols returned (default {DEFAULT_TOP})")


@dataclass(frozen=True)
class RecommendJob:
    """One validated request: the record (every field, protocol None when not given), the
    constraints, how many protocols to return and whether the current protocol was given."""

    record: dict
    constraints: Constraints
    top: int
    current: bool


_RULES = {
    "top": f"top is a whole number from 1 to {MAX_TOP}",
    "modalities": "modalities is a non-empty list of " + ", ".join(MODALITIES),
    "max_intensity": "max_intensity is a number from 0 to 100 (%)",
    "max_duration": "max_duration is a number from 0 to 120 (minutes)",
    "max_hyperalgesia": "max_hyperalgesia is a number from 0 to 1",
}
_SHAPE = 'the body must be {"record": {...}, "constraints": {...}, "top": 3} (constraints and top optional)'


def _problem(err: dict) -> dict:
    """One pydantic error -> {field, problem}, from its location and type only (no input)."""
    loc = tuple(err.get("loc", ()))
    typ = str(err.get("type", "invalid"))
    what = "required value is missing" if typ == "missing" else "unknown field" if typ == "extra_forbidden" \
        else f"invalid value ({typ})"
    if not loc or loc[0] not in ("record", "constraints", "top"):
        return {"index": None, "field": None, "problem": f"{what}; rule: {_SHAPE}"}
    if loc[0] == "top" or (loc[0] == "constraints" and len(loc) > 1 and loc[1] in _RULES):
        name = loc[-1] if loc[0] == "top" else loc[1]
        return {"index": None, "field": name, "problem": f"{what}; rule: {_RULES[name]}"}
    if len(loc) < 2 or loc[0] == "constraints":
        return {"index": None, "field": loc[0], "problem": f"{what}; rule: {_SHAPE}"}
    name = loc[1]
    f = BY_NAME.get(name) if isinstance(name, str) else None
    if f is None or name not in RecommendRecord.model_fields:
        return {"index": 0, "field": "(field name not shown)" if not str(name).isidentifier() else str(name),
                "problem": "unknown field; rule: a record holds only the fields of data contract " + CONTRACT_VERSION}
    return {"index": 0, "field": f.name, "problem": f"{what}; rule: {f.name} is {f.rule}"}


def job_of(body: dict) -> RecommendJob:
    """A parsed JSON body -> the validated job, or GateError (422)."""
    try:
        RecommendBody.model_validate(body, strict=True)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors(include_url=False, include_context=False, include_input=False)]
        raise GateError(422, "the request does not match the body of POST /recommend (data contract "
                        f"{CONTRACT_VERSION})", problems, len(problems)) from None
    record = normalise_record(body["record"])
    given = [f for f in PROTOCOL_FIELDS if record[f] is not None]
    if given and len(given) < len(PROTOCOL_FIELDS):
        missing = [f for f in PROTOCOL_FIELDS if record[f] is None]
        raise GateError(422, f"1 of 1 record(s) break data contract {CONTRACT_VERSION}; nothing was scored",
                        [{"index": 0, "field": f, "problem": "give all three protocol fields (the current protocol) "
                          f"or none; rule: {f} is {BY_NAME[f].rule}"} for f in missing], len(missing))
    check_rules([record if given else {**record, **PLACEHOLDER}])
    c = body.get("constraints") or {}
    constraints = Constraints(tuple(c["modalities"]) if c.get("modalities") else None, c.get("max_intensity"),
                              c.get("max_duration"), c.get("max_hyperalgesia"))
    return RecommendJob(record, constraints, int(body.get("top") or DEFAULT_TOP), bool(given))


def parse_request(body: bytes) -> RecommendJob:
    """The gate of POST /recommend: body bytes -> the validated job, or GateError (400, 422)."""
    from pydantic_core import from_json

    if not body.strip():
        raise GateError(400, f"empty body: send a JSON object ({_SHAPE})")
    try:
        obj = from_json(body)
    except (ValueError, RecursionError):
        raise GateError(400, "malformed JSON: the body could not be parsed as JSON") from None
    if not isinstance(obj, dict):
        raise GateError(422, "the request does not match the body of POST /recommend",
                        [{"index": None, "field": None, "problem": _SHAPE}], 1)
    return job_of(obj)


class RecommendGate:
    """ASGI middleware: POST /recommend goes through a `SafetyMiddleware` whose gate is
    `parse_request` (token, size, content type, 400/422 as for /predict); every other
    request passes straight on."""

    def __init__(self, app, *, token: str | None = None, max_body_bytes: int | None = None) -> None:
        from serving.middleware import DEFAULT_MAX_BODY_BYTES, SafetyMiddleware

        self.app = app
        self.safety = SafetyMiddleware(app, token=token, max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                                       model_paths=frozenset({RECOMMEND_PATH}), gate=parse_request)

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "http" and scope.get("path") == RECOMMEND_PATH:
            await self.safety(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def dumps(payload: dict) -> bytes:
    """Compact JSON bytes (no NaN)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


class Protocol(BaseModel):
    exercise_modality: str
    exercise_intensity_pct: float
    exercise_duration_min: float


class ProtocolScore(BaseModel):
    """One protocol for this person: exact probabilities, benefit, the protocol fields' reasons, warnings."""

    rank: int | None = PydanticField(description="1 = best within the constraints; null for the current protocol")
    protocol: Protocol
    probabilities: dict[str, float] = PydanticField(description="hypoalgesia, no_change, hyperalgesia")
    benefit: float = PydanticField(description="P(hypoalgesia) - P(hyperalgesia)")
    ranking_benefit: float | None = PydanticField(
        None, description="what the protocols are ranked by: the benefit pooled toward the person's pain condition "
                          "(the personal part shrunk by the factor estimated in training); null for the current protocol")
    hyperalgesia_risk: Literal["low", "moderate", "high"]
    expected_change_pct: float | None = PydanticField(None, description="expected measured PPT change with this protocol, %")
    change_sd_pct: float | None = PydanticField(None, description="spread of the measured change, %-points")
    change_interval_pct: dict[str, list[float]] | None = PydanticField(
        None, description='prediction intervals of the measured change, e.g. {"80": [low, high], "90": [low, high]}: '
                          "8 (9) in 10 people like this one change between the two numbers")
    why: list[dict] = PydanticField(description="contributions of the protocol fields (and the derived dose and load) to the "
                                    "expected change, as in /predict's top_contributions")
    warnings: list[str] = PydanticField(description="a modality resting on priors; values outside the training range")
    meets_constraints: bool | None = None
    protocols_with_more_benefit: int | None = None
    benefit_gap_to_best: float | None = None


class RecommendResponse(BaseModel):
    """The answer of POST /recommend."""

    model_config = ConfigDict(protected_namespaces=())
    model: dict = PydanticField(description="name, version, contract, threshold and `protocols` (how protocols were "
                                "assigned in the training data: randomized, observational or unknown)")
    subject_id: str
    causal: dict = PydanticField(description="protocols, causal (true only for randomized training data) and a note")
    constraints: dict
    grid: dict = PydanticField(description="protocols_scored and within_constraints (before the P(hyperalgesia) ceiling)")
    recommendations: list[ProtocolScore]
    current: ProtocolScore | None = PydanticField(description="the protocol given in the record, scored the same way")
    no_recommendation: str | None = PydanticField(description="why nothing is recommended, when no protocol meets "
                                                  "the constraints")
    missing_inputs: list[str]
    warnings: list[str] = PydanticField(description="the person's values outside the range seen in training")
