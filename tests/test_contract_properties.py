"""Property tests: strategies generated from FIELDS.

- a valid record (cross-field rules respected) passes;
- any single out-of-range, wrong-category or not-a-number mutation of one field (or an
  invalid subject_id / over-long site) is rejected naming exactly that field.
"""

from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_contract_support import (
    CHRONIC_MIN_MONTHS,
    MECHANISMS_NOT_NONE,
    MISSING_STRINGS,
    PAIN_FREE,
    PLASMA_MAX_NG_ML,
    frame,
    problem_fields,
)

from data_contracts import validate_frame
from data_contracts.fields import BY_NAME, FIELDS

ID_RE = r"[A-Za-z0-9._-]{1,64}"
ID_CHARS = string.ascii_letters + string.digits + "._-"
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "60"))
# no target/explain phases: they add nothing to these properties and double the run time
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
SETTINGS_FEW = settings(SETTINGS, max_examples=max(1, MAX_EXAMPLES // 2))  # several records per example


def _finite(lo=None, hi=None, **kw):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False, **kw)


def _value(f):
    if f.name == "subject_id":
        # "nan" / "None" match the pattern but are read as a missing value (see the report)
        return st.from_regex(ID_RE, fullmatch=True).filter(lambda s: s not in MISSING_STRINGS)
    if f.name == "site":
        return st.text(min_size=1, max_size=64)
    if f.kind == "number":
        return _finite(f.min, f.max)
    return st.sampled_from(f.categories)


@st.composite
def valid_records(draw) -> dict:
    rec = {}
    for f in FIELDS:
        strategy = _value(f)
        rec[f.name] = draw(strategy if f.required else st.none() | strategy)
    dur = BY_NAME["pain_duration_months"]
    if rec["pain_condition"] == PAIN_FREE:
        rec["pain_duration_months"] = 0.0
        rec["pain_mechanism"] = draw(st.sampled_from(["none", None]))
    else:
        rec["pain_duration_months"] = draw(_finite(CHRONIC_MIN_MONTHS, dur.max))
        rec["pain_mechanism"] = draw(st.none() | st.sampled_from(MECHANISMS_NOT_NONE))
    if rec["bdnf_ng_ml"] is not None:
        rec["bdnf_matrix"] = draw(st.sampled_from(BY_NAME["bdnf_matrix"].categories))
        if rec["bdnf_matrix"] == "plasma":
            rec["bdnf_ng_ml"] = draw(_finite(BY_NAME["bdnf_ng_ml"].min, PLASMA_MAX_NG_ML))
    return rec


MUTABLE = tuple(f.name for f in FIELDS)  # every field: numbers, categories, id, site
NOT_NUMBER = st.text(alphabet="bcdghjkloqrsuvwxyz#%/?!@ ", min_size=1, max_size=12).filter(lambda s: s.strip() != "")


def _bad_value(f):
    if f.kind == "number":
        below = _finite(hi=f.min, exclude_max=True)
        above = _finite(lo=f.max, exclude_min=True)
        return st.one_of(below, above, NOT_NUMBER)
    if f.kind == "category":
        return st.text(min_size=1, max_size=20).filter(lambda s: s not in f.categories and s not in MISSING_STRINGS)
    if f.name == "subject_id":
        id_part = st.from_regex(r"[A-Za-z0-9._-]{0,30}", fullmatch=True)
        not_id_char = st.characters(codec="utf-8", exclude_characters=ID_CHARS)
        return st.one_of(
            st.builds(lambda a, c, b: a + c + b, id_part, not_id_char, id_part),  # a character outside the pattern
            st.from_regex(r"[A-Za-z0-9._-]{65,80}", fullmatch=True),  # too long
        )
    return st.text(min_size=65, max_size=100)  # site


@st.composite
def mutated_records(draw) -> tuple[dict, str]:
    rec = draw(valid_records())
    name = draw(st.sampled_from(MUTABLE))
    rec[name] = draw(_bad_value(BY_NAME[name]))
    if name == "bdnf_ng_ml" and rec["bdnf_matrix"] is None:
        rec["bdnf_matrix"] = "serum"  # a given BDNF needs its matrix: keep the mutation single
    return rec, name


@SETTINGS
@given(valid_records())
def test_valid_record_passes(rec):
    report = validate_frame(frame(rec))
    assert report.problems.empty, report.problems.to_dict("records")
    assert report.n_valid == 1 and report.n_rejected == 0


@SETTINGS_FEW
@given(st.lists(valid_records(), min_size=2, max_size=4, unique_by=lambda r: r["subject_id"]))
def test_valid_records_pass_together(recs):
    report = validate_frame(frame(*recs))
    assert report.problems.empty, report.problems.to_dict("records")
    assert report.n_valid == len(recs)


@SETTINGS
@given(mutated_records())
def test_single_mutation_is_rejected_naming_exactly_that_field(case):
    rec, name = case
    report = validate_frame(frame(rec))
    assert report.n_rejected == 1 and report.n_valid == 0
    assert problem_fields(report) == {name}, report.problems.to_dict("records")
    assert len(report.problems) == 1
    text = report.problems["problem"].iloc[0]
    assert "rule:" in text


@SETTINGS_FEW
@given(st.lists(valid_records(), min_size=2, max_size=4), mutated_records(), st.data())
def test_single_mutated_row_among_valid_rows(recs, case, data):
    bad, name = case
    recs = [{**r, "subject_id": f"r{i}"} for i, r in enumerate(recs)]
    if name != "subject_id":
        bad = {**bad, "subject_id": "mutant"}
    pos = data.draw(st.integers(0, len(recs)))
    report = validate_frame(frame(*recs[:pos], bad, *recs[pos:]))
    assert list(report.rejected_rows) == [pos + 1]
    assert set(report.problems["field"]) == {name}, report.problems.to_dict("records")
    assert report.n_valid == len(recs)


# ---- the vectorized pre-screen of validate_frame ------------------------------------------
def _without_prescreen(df):
    return validate_frame(df, prescreen=False)  # pandera checks every row


@SETTINGS_FEW
@given(st.lists(st.one_of(valid_records(), mutated_records().map(lambda case: case[0])), min_size=1, max_size=6),
       st.booleans())
def test_prescreen_changes_nothing_but_speed(recs, duplicate):
    import pandas as pd

    if duplicate and len(recs) > 1:
        recs[-1] = {**recs[-1], "subject_id": recs[0]["subject_id"]}
    df = frame(*recs)
    fast, slow = validate_frame(df), _without_prescreen(df)
    pd.testing.assert_frame_equal(fast.problems, slow.problems)
    pd.testing.assert_frame_equal(fast.valid, slow.valid)
    assert fast.n_rejected + fast.n_valid == len(recs)
