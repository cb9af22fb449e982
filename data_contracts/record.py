"""The pydantic record model of the HTTP API, generated from `fields.FIELDS`.

The model checks types and unknown fields (extra fields are forbidden); ranges,
categories and cross-field rules are checked by `validate_frame`, the single rule
engine, so a record gets the same messages over HTTP as in a file. The JSON schema
still documents every range and category for clients (OpenAPI).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as PydanticField

from data_contracts.fields import FIELDS, Field


def _annotation(f: Field) -> tuple[Any, Any]:
    extra: dict[str, Any] = {}
    if f.kind == "number":
        typ: Any = float
        extra = {"minimum": f.min, "maximum": f.max}
    elif f.kind == "category":
        typ = str
        extra = {"enum": list(f.categories)}
    else:
        typ = str
        extra = {"maxLength": 64, "minLength": 1}
        if f.name == "subject_id":
            extra["pattern"] = r"^[A-Za-z0-9._-]{1,64}$"
    desc = f.description + (f" ({f.unit})" if f.unit else "")
    if f.required:
        return typ, PydanticField(..., description=desc, json_schema_extra=extra)
    return typ | None, PydanticField(None, description=desc, json_schema_extra=extra)


def build_record_model() -> type[BaseModel]:
    fields = {f.name: _annotation(f) for f in FIELDS if f.role in ("id", "meta", "predictor")}
    return create_model(
        "ContractRecord",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        __doc__="One person doing one exercise bout (contract 1.0 predictors).",
        **fields,
    )


ContractRecord = build_record_model()
