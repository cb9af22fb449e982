"""A body sent without `{"records": [...]}` (issue 20): one hint that says what the body must
be, instead of a problem for every field of the record; no value is quoted."""

from __future__ import annotations

import json

import pytest

from data_contracts.examples import EXAMPLE_RECORD
from serving.gate import GateError, parse

SHAPE = 'the body must be {"records": [record, ...]}: '
MARKER = "PLANTED-VALUE-6c1e"


def _problems(body) -> tuple[int, list[dict]]:
    with pytest.raises(GateError) as info:
        parse(json.dumps(body).encode())
    return info.value.status, info.value.body()["problems"]


def test_a_bare_record_gets_one_hint():
    status, problems = _problems(dict(EXAMPLE_RECORD, site=MARKER))
    assert status == 422
    assert problems == [{"index": None, "field": None, "problem": SHAPE + "it looks like a single record"}]


def test_a_partial_record_and_a_bare_list_get_one_hint_too():
    _, problems = _problems({"age_years": 40, "sex": MARKER})
    assert [p["problem"] for p in problems] == [SHAPE + "it looks like a single record"]
    _, problems = _problems([EXAMPLE_RECORD, EXAMPLE_RECORD])
    assert [p["problem"] for p in problems] == [SHAPE + "it looks like a list of records without the records key"]
    assert MARKER not in json.dumps(problems)


def test_other_wrong_shapes_keep_their_precise_problems():
    _, problems = _problems({"rows": [EXAMPLE_RECORD]})
    assert {p["field"] for p in problems} == {"records", "rows"}
    _, problems = _problems({"records": [dict(EXAMPLE_RECORD, shoe_size=1)]})
    assert [(p["index"], p["field"]) for p in problems] == [(0, "shoe_size")]
    assert len(parse(json.dumps({"records": [EXAMPLE_RECORD]}).encode())) == 1
