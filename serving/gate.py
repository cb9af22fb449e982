"""The request gate of the HTTP service: JSON body -> validated contract records, or a
field-level error that never quotes a value.

Steps, in order (the first failure answers):
1. the body parses as JSON (else 400);
2. it is `{"records": [...]}` with 1 to `MAX_RECORDS` records, each a JSON object whose
   fields have the contract's types and no unknown field (the pydantic `ContractRecord`,
   strict: a number must be a JSON number, text a JSON string) (else 422);
3. the contract's rules hold: ranges, categories, identifiers, duplicate subject_ids and
   the cross-field rules (else 422).

Step 3 has one rule engine, `data_contracts.validate_frame`, and every rule message comes
from it. Running it costs about 40 ms (pandera) even for one record, so the contract's
record pre-screen (`data_contracts.prescreen`) answers "is every record valid?" first;
only a request it doubts goes through `validate_frame`, whose problems are the 422 (when
it finds none the request goes on).

Nothing here logs; problems name the record index, the field and the rule, plus the
subject_id when that identifier is itself valid (it is a pseudonym, and the client's
own key to the record).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import Field as PydanticField

from data_contracts.fields import BY_NAME, CONTRACT_VERSION
from data_contracts.prescreen import RECORD_FIELDS, prescreen
from data_contracts.record import ContractRecord
from data_contracts.schema import ID_PATTERN

MAX_RECORDS = 1000
MAX_PROBLEMS = 200
"""At most this many problems are listed in one error response (the count is always given)."""

MASKED = frozenset({"", "nan", "None", "<NA>"})
"""Text that `validate_frame` reads as a missing value (as an empty CSV cell would be)."""

_ID_RE = re.compile(ID_PATTERN)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RequestBody(BaseModel):
    """The body of POST /predict and POST /explain."""

    model_config = ConfigDict(extra="forbid")
    records: list[ContractRecord] = PydanticField(..., min_length=1, max_length=MAX_RECORDS)


@dataclass
class GateError(Exception):
    status: int
    error: str
    problems: list[dict] = field(default_factory=list)
    n_problems: int = 0

    def body(self) -> dict:
        """The JSON error response: `error`, and when there are problems `n_problems` and at most
        `MAX_PROBLEMS` of them (`truncated` when more were found)."""
        out: dict[str, Any] = {"error": self.error}
        if self.problems or self.n_problems:
            out["n_problems"] = self.n_problems or len(self.problems)
            out["problems"] = self.problems[:MAX_PROBLEMS]
            if (self.n_problems or len(self.problems)) > MAX_PROBLEMS:
                out["truncated"] = True
        return out


# ---- step 1 and 2: JSON and types ----------------------------------------------------------
def parse(body: bytes) -> list[dict]:
    """Body -> list of records (dicts with every contract field, values as given).

    Raises GateError (400 malformed JSON, 422 shape or types)."""
    from pydantic_core import from_json

    if not body.strip():
        raise GateError(400, 'empty body: send a JSON object {"records": [...]}')
    try:
        obj = from_json(body)
    except (ValueError, RecursionError):
        raise GateError(400, "malformed JSON: the body could not be parsed as JSON") from None
    hint = _shape_hint(obj)
    if hint is not None:  # one hint instead of a problem per field of the record
        raise GateError(422, "the request does not match the record schema of data contract " + CONTRACT_VERSION,
                        [{"index": None, "field": None, "problem": hint}], 1)
    try:
        RequestBody.model_validate(obj, strict=True)
    except ValidationError as exc:
        problems = [_pydantic_problem(e, obj) for e in exc.errors(include_url=False, include_context=False, include_input=False)]
        raise GateError(422, "the request does not match the record schema of data contract " + CONTRACT_VERSION,
                        problems, len(problems)) from None
    return [normalise_record(rec) for rec in obj["records"]]


def _shape_hint(obj: Any) -> str | None:
    """A body that is one record, or a list of records, instead of {"records": [...]}."""
    shape = 'the body must be {"records": [record, ...]}: '
    if isinstance(obj, dict) and "records" not in obj and any(k in RECORD_FIELDS for k in obj):
        return shape + "it looks like a single record"
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return shape + "it looks like a list of records without the records key"
    return None


def normalise_record(rec: dict) -> dict:
    """Every record field present (None when absent); text that validate_frame reads as
    missing becomes None, so the model sees what the rule engine saw."""
    out = {}
    for name in RECORD_FIELDS:
        v = rec.get(name)
        if isinstance(v, str) and v in MASKED:
            v = None  # validate_frame reads these as missing, so the model must too
        out[name] = v
    return out


_TYPE_TEXT = {
    "missing": "required value is missing",
    "float_type": "not a number",
    "float_parsing": "not a number",
    "finite_number": "not a finite number",
    "string_type": "not text (a JSON string)",
    "extra_forbidden": "unknown field; rule: a record holds only the fields of data contract " + CONTRACT_VERSION,
}


def _pydantic_problem(err: dict, obj: Any) -> dict:
    """One pydantic error -> {index, subject_id, field, problem}, built from the error type
    and location only (pydantic's own message is not used, so no input can slip through)."""
    loc = tuple(err.get("loc", ()))
    typ = str(err.get("type", "invalid"))
    if not loc:
        return {"index": None, "field": None, "problem": 'the body must be a JSON object {"records": [...]}'}
    if loc[0] != "records":
        name = _safe_name(loc[0])
        return {"index": None, "field": name, "problem": 'unknown top-level field: the body holds only "records"'}
    if len(loc) == 1:
        if typ == "missing":
            problem = '"records" is required'
        elif typ == "too_short":
            problem = "records must hold at least 1 record"
        elif typ == "too_long":
            problem = f"records must hold at most {MAX_RECORDS} records per request"
        else:
            problem = "records must be a list of record objects"
        return {"index": None, "field": "records", "problem": problem}
    index = loc[1] if isinstance(loc[1], int) else None
    out: dict[str, Any] = {"index": index}
    sid = _valid_subject_id(obj, index)
    if sid is not None:
        out["subject_id"] = sid
    if len(loc) == 2:
        out.update(field=None, problem="not a JSON object; rule: each record is a JSON object of contract fields")
        return out
    name = loc[2]
    f = BY_NAME.get(name) if isinstance(name, str) and name in RECORD_FIELDS else None
    if f is None:
        out.update(field=_safe_name(name), problem=_TYPE_TEXT["extra_forbidden"])
        return out
    text = _TYPE_TEXT.get(typ)
    if typ != "missing" and _given_null(obj, index, name):
        text = "required value is missing (null)"
    if text is None:
        text = f"invalid value ({_safe_name(typ)})"
    if f.kind == "category" and typ == "string_type":
        text = "not text (a JSON string)"
    out.update(field=f.name, problem=f"{text}; rule: {f.name} is {f.rule}")
    return out


def _safe_name(name: Any) -> str:
    """A field name chosen by the client, quoted only when it looks like an identifier."""
    s = str(name)
    return s if _SAFE_NAME.fullmatch(s) else "(field name not shown)"


def _given_null(obj: Any, index: int | None, name: str) -> bool:
    try:
        return name in obj["records"][index] and obj["records"][index][name] is None
    except (TypeError, KeyError, IndexError):
        return False


def _valid_subject_id(obj: Any, index: int | None) -> str | None:
    try:
        sid = obj["records"][index]["subject_id"]
    except (TypeError, KeyError, IndexError):
        return None
    return sid if isinstance(sid, str) and sid not in MASKED and _ID_RE.fullmatch(sid) else None


# ---- step 3: contract rules --------------------------------------------------------------
def frame(records: list[dict]) -> pd.DataFrame:
    """The records as a cohort frame for validate_frame (numbers float64, text as object)."""
    cols = {}
    for name in RECORD_FIELDS:
        vals = [r[name] for r in records]
        if BY_NAME[name].kind == "number":
            cols[name] = np.array([np.nan if v is None else float(v) for v in vals], dtype="float64")
        else:
            cols[name] = pd.Series(vals, dtype=object)
    return pd.DataFrame(cols)


def check_rules(records: list[dict]) -> None:
    """Raise GateError(422) listing validate_frame's problems when any record breaks a rule."""
    if not prescreen(records):
        return
    from data_contracts.validate import validate_frame

    report = validate_frame(frame(records))
    if not len(report.problems):
        return  # the pre-screen errs on the side of doubt: a request it doubts may break no rule
    problems = []
    for p in report.problems.itertuples(index=False):
        item: dict[str, Any] = {"index": int(p.row) - 1}
        if p.subject_id:
            item["subject_id"] = str(p.subject_id)
        item.update(field=str(p.field), problem=str(p.problem))
        problems.append(item)
    n_bad = report.n_rejected
    raise GateError(
        422,
        f"{n_bad} of {len(records)} record(s) break data contract {CONTRACT_VERSION}; nothing was scored",
        problems,
        len(problems),
    )


def validate_body(body: bytes) -> list[dict]:
    """Steps 1-3: the records of a request body, or GateError."""
    records = parse(body)
    check_rules(records)
    return records




def records_from_frame(df: pd.DataFrame) -> list[dict]:
    """Contract rows (e.g. a cohort file) -> JSON-ready request records: only the fields of
    the record model (outcomes and unknown columns dropped), missing values as None."""
    cols = [c for c in RECORD_FIELDS if c in df.columns]
    out = []
    for row in df[cols].astype(object).itertuples(index=False, name=None):
        rec = {}
        for name, v in zip(cols, row):
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                rec[name] = None
            elif isinstance(v, (np.floating, float)):
                rec[name] = float(v)
            elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                rec[name] = int(v)
            else:
                rec[name] = str(v)
        out.append(rec)
    return out


__all__ = ["GateError", "MAX_RECORDS", "RECORD_FIELDS", "RequestBody", "check_rules", "frame", "parse", "records_from_frame",
           "normalise_record", "prescreen", "validate_body"]
