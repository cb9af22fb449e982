"""The pydantic ContractRecord of the HTTP API (generated from FIELDS)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError
from test_contract_support import base_record

from data_contracts.fields import FIELDS
from data_contracts.record import ContractRecord

API_FIELDS = [f for f in FIELDS if f.role in ("id", "meta", "predictor")]


def _api_record(**kw) -> dict:
    rec = {k: v for k, v in base_record().items() if k in {f.name for f in API_FIELDS}}
    rec.update(kw)
    return rec


def _props(schema: dict, name: str) -> dict:
    """A property's schema, with any `anyOf: [X, null]` of an optional field merged in."""
    prop = dict(schema["properties"][name])
    for alt in prop.pop("anyOf", []):
        if alt.get("type") != "null":
            prop = {**alt, **prop}
    return prop


def test_valid_record_is_accepted():
    rec = ContractRecord(**_api_record())
    assert rec.subject_id == "S-0001"
    assert rec.age_years == pytest.approx(base_record()["age_years"])


def test_model_fields_are_the_contract_predictors_and_ids():
    assert set(ContractRecord.model_fields) == {f.name for f in API_FIELDS}
    assert "ppt_post_kpa" not in ContractRecord.model_fields  # the outcome is not an input


def test_unknown_field_is_forbidden():
    with pytest.raises(ValidationError) as exc:
        ContractRecord(**_api_record(patient_name="x"))
    errors = exc.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("extra_forbidden", ("patient_name",))]


@pytest.mark.parametrize("f", [f for f in API_FIELDS if f.required], ids=lambda f: f.name)
def test_required_field_is_required(f):
    rec = _api_record()
    del rec[f.name]
    with pytest.raises(ValidationError) as exc:
        ContractRecord(**rec)
    errors = exc.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("missing", (f.name,))]


@pytest.mark.parametrize("f", [f for f in API_FIELDS if not f.required], ids=lambda f: f.name)
def test_optional_field_may_be_absent_or_null(f):
    rec = _api_record()
    del rec[f.name]
    assert getattr(ContractRecord(**rec), f.name) is None
    assert getattr(ContractRecord(**_api_record(**{f.name: None})), f.name) is None


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "abc"])
def test_numbers_must_be_finite_numbers(bad):
    with pytest.raises(ValidationError) as exc:
        ContractRecord(**_api_record(age_years=bad))
    assert {e["loc"] for e in exc.value.errors()} == {("age_years",)}


def test_json_schema_documents_ranges_and_categories():
    schema = ContractRecord.model_json_schema()
    assert schema.get("additionalProperties") is False
    assert set(schema["required"]) == {f.name for f in API_FIELDS if f.required}
    for f in API_FIELDS:
        prop = _props(schema, f.name)
        if f.kind == "number":
            assert prop["minimum"] == f.min and prop["maximum"] == f.max, f.name
            assert prop["type"] == "number"
        elif f.kind == "category":
            assert prop["enum"] == list(f.categories), f.name
        else:
            assert prop["minLength"] == 1 and prop["maxLength"] == 64
        assert prop.get("description"), f.name
    assert "pattern" in _props(schema, "subject_id")
