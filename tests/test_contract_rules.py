"""Every rule of contract 1.0 (docs/contract-v1.md), each with a passing and a
failing case, checked through `validate_frame`, the one rule engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_contract_support import (
    CATEGORY_FIELDS,
    CHRONIC,
    MECHANISMS_NOT_NONE,
    NUMBER_FIELDS,
    REQUIRED_FIELDS,
    Batch,
    base_record,
    frame,
    problem_fields,
    problem_text,
    record_with,
    validate_records,
)

from data_contracts import ContractFileError, validate_frame
from data_contracts.fields import BY_NAME, FIELDS


def assert_valid(report):
    assert report.problems.empty, report.problems.to_dict("records")
    assert report.n_valid == report.n_rows and report.n_rejected == 0


def assert_row_valid(report, row: int):
    assert problem_fields(report, row) == set(), report.problems[report.problems["row"] == row].to_dict("records")
    assert row - 1 in set(report.valid.index)


def assert_only(report, field: str, row: int = 1) -> str:
    """The row is rejected for `field` alone; returns the problem text."""
    assert problem_fields(report, row) == {field}, report.problems.to_dict("records")
    assert row in set(report.rejected_rows)
    text = problem_text(report, field, row)
    assert "; rule: " in text  # what is wrong, then the rule
    return text


def rule_of(name: str) -> str:
    f = BY_NAME[name]
    return f"rule: {f.name} is {f.rule}"


# --- numeric ranges ---------------------------------------------------------------------

NUMBER_IDS = [f.name for f in NUMBER_FIELDS]
SIDES = ("below", "above")
STEPS = ("ulp", "small")


def _outside(f, side: str, step: str) -> float:
    bound = float(f.min if side == "below" else f.max)
    if step == "ulp":
        return float(np.nextafter(bound, -np.inf if side == "below" else np.inf))
    return bound - 1e-3 if side == "below" else bound + 1e-3


@pytest.fixture(scope="module")
def range_batch():
    cases = {(f.name, b): record_with(f.name, float(getattr(f, b))) for f in NUMBER_FIELDS for b in ("min", "max")}
    for f in NUMBER_FIELDS:
        for side in SIDES:
            for step in STEPS:
                cases[(f.name, side, step)] = record_with(f.name, _outside(f, side, step))
    return Batch(cases)


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=NUMBER_IDS)
@pytest.mark.parametrize("bound", ["min", "max"])
def test_number_bounds_are_inclusive(f, bound, range_batch):
    assert_row_valid(*range_batch[(f.name, bound)])


def test_number_bounds_alone_are_valid():
    recs = [record_with(f.name, float(getattr(f, b)), f"V{i}{b}") for i, f in enumerate(NUMBER_FIELDS) for b in ("min", "max")]
    assert_valid(validate_records(*recs))


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=NUMBER_IDS)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("step", STEPS)
def test_number_just_outside_range_is_rejected(f, side, step, range_batch):
    report, row = range_batch[(f.name, side, step)]
    text = assert_only(report, f.name, row)
    assert text.startswith(f"{side} the allowed range"), text
    assert rule_of(f.name) in text
    if f.unit:
        assert f.unit in text


def test_several_rows_with_range_problems_keep_their_own_rows():
    recs = [record_with("age_years", 17.0, "A1"), base_record("A2"), record_with("cpm_pct", 301.0, "A3")]
    report = validate_records(*recs)
    assert report.n_rows == 3 and report.n_valid == 1 and report.n_rejected == 2
    assert list(report.rejected_rows) == [1, 3]
    assert problem_fields(report, 1) == {"age_years"} and problem_fields(report, 3) == {"cpm_pct"}
    assert list(report.problems["subject_id"]) == ["A1", "A3"]
    assert list(report.valid["subject_id"]) == ["A2"]


# --- unit-slip hints --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bdnf_ng_ml", 150.0, ["pg/mL", "divide by 1000"]),
        ("bdnf_ng_ml", 25_000.0, ["pg/mL", "divide by 1000"]),
        ("lactate_mmol_l", 45.0, ["mg/dL", "divide by 9.01"]),
        ("lactate_mmol_l", 30.01, ["mg/dL", "divide by 9.01"]),
        ("ppt_baseline_kpa", 4.5, ["kgf/cm²", "98.07", "N/cm²", "by 10"]),
        ("ppt_baseline_kpa", 49.99, ["kgf/cm²", "98.07", "N/cm²", "by 10"]),
        ("exercise_intensity_pct", 0.7, ["fraction", "multiply by 100"]),
        ("exercise_intensity_pct", 1.0, ["fraction", "multiply by 100"]),
    ],
)
def test_unit_slip_hint(field, value, expected):
    text = assert_only(validate_records(record_with(field, value)), field)
    assert rule_of(field) in text
    for part in expected:
        assert part in text, (part, text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bdnf_ng_ml", 0.001),  # below range: not a pg/mL slip
        ("lactate_mmol_l", 0.1),
        ("ppt_baseline_kpa", 2500.0),  # above range: no kgf hint
        ("exercise_intensity_pct", 5.0),  # below range but above 1: not a fraction
        ("exercise_intensity_pct", 150.0),
        ("age_years", 150.0),  # a field without hints
    ],
)
def test_no_unit_hint_where_none_applies(field, value):
    text = assert_only(validate_records(record_with(field, value)), field)
    for word in ("looks like", "pg/mL", "mg/dL", "kgf", "fraction"):
        assert word not in text, text


def test_plasma_bdnf_above_100_keeps_the_pg_hint():
    rec = base_record()
    rec.update(bdnf_matrix="plasma", bdnf_ng_ml=250.0)
    text = assert_only(validate_records(rec), "bdnf_ng_ml")
    assert "divide by 1000" in text


# --- categories -------------------------------------------------------------------------

CATEGORY_CASES = [(f.name, c) for f in CATEGORY_FIELDS for c in f.categories]


BAD_CATEGORIES = ("other", "Female ", "PLASMA", "0", "none ")


@pytest.fixture(scope="module")
def category_batch():
    cases = {(field, value): record_with(field, value) for field, value in CATEGORY_CASES}
    for f in CATEGORY_FIELDS:
        for bad in BAD_CATEGORIES:
            cases[(f.name, "bad", bad)] = record_with(f.name, bad)
    return Batch(cases)


@pytest.mark.parametrize(("field", "value"), CATEGORY_CASES, ids=[f"{a}={b}" for a, b in CATEGORY_CASES])
def test_every_allowed_category_passes(field, value, category_batch):
    assert_row_valid(*category_batch[(field, value)])


@pytest.mark.parametrize("f", CATEGORY_FIELDS, ids=[f.name for f in CATEGORY_FIELDS])
@pytest.mark.parametrize("bad", BAD_CATEGORIES)
def test_wrong_category_is_rejected(f, bad, category_batch):
    assert bad not in f.categories
    report, row = category_batch[(f.name, "bad", bad)]
    text = assert_only(report, f.name, row)
    assert text.startswith("not an allowed category")
    assert rule_of(f.name) in text
    for c in f.categories:
        assert c in text


def test_wrong_pain_condition_is_blamed_on_pain_condition_alone():
    # a pain_free record (duration 0, mechanism none) with an unknown condition must not
    # also trip the chronic-condition rules
    rec = record_with("pain_condition", "pain_free")
    rec["pain_condition"] = "migraine"
    assert_only(validate_records(rec), "pain_condition")


def test_categorical_dtype_input_is_accepted():
    df = frame(base_record("C1"), record_with("sex", "male", "C2"))
    df["sex"] = df["sex"].astype("category")
    assert_valid(validate_frame(df))


# --- required fields --------------------------------------------------------------------

REQ_IDS = [f.name for f in REQUIRED_FIELDS]


MISSING = {"None": None, "nan": np.nan, "empty": "", "blank": "  "}
REQUIRED_NOT_ID = [f for f in REQUIRED_FIELDS if f.name != "subject_id"]  # Batch sets the ids
OPTIONAL_FIELDS = [f for f in FIELDS if not f.required]


@pytest.fixture(scope="module")
def missing_batch():
    cases = {(f.name, k): record_with(f.name, v) for f in REQUIRED_NOT_ID for k, v in MISSING.items()}
    for f in OPTIONAL_FIELDS:
        cases[(f.name, "optional")] = record_with(f.name, None)
    cases["ok"] = base_record()
    return Batch(cases)


@pytest.mark.parametrize("f", REQUIRED_NOT_ID, ids=[f.name for f in REQUIRED_NOT_ID])
@pytest.mark.parametrize("missing", list(MISSING))
def test_required_value_missing_is_rejected_naming_the_field(f, missing, missing_batch):
    report, row = missing_batch[(f.name, missing)]
    text = assert_only(report, f.name, row)
    assert rule_of(f.name) in text
    if missing == "blank" and f.kind != "number":
        return  # blank text is a (wrong) value for text fields: rejected, for its own reason
    assert "required value is missing" in text


@pytest.mark.parametrize("missing", [None, np.nan, ""], ids=["None", "nan", "empty"])
def test_missing_subject_id_is_rejected(missing):
    report = validate_records(base_record("K1"), base_record(missing))
    text = assert_only(report, "subject_id", row=2)
    assert "required value is missing" in text and rule_of("subject_id") in text
    assert report.n_valid == 1


def test_one_missing_required_value_rejects_only_its_row():
    report = validate_records(base_record("K1"), record_with("sex", None, "K2"), base_record("K3"))
    assert report.n_valid == 2 and report.n_rejected == 1 and list(report.rejected_rows) == [2]


@pytest.mark.parametrize("f", OPTIONAL_FIELDS, ids=[f.name for f in OPTIONAL_FIELDS])
def test_optional_value_missing_is_fine(f, missing_batch):
    assert_row_valid(*missing_batch[(f.name, "optional")])


@pytest.mark.parametrize("f", [f for f in FIELDS if not f.required], ids=[f.name for f in FIELDS if not f.required])
def test_optional_column_absent_is_fine(f):
    rec = base_record()
    del rec[f.name]
    if f.name == "bdnf_matrix":
        del rec["bdnf_ng_ml"]
    report = validate_records(rec)
    assert_valid(report)
    if f.role == "predictor":  # the typed frame still has every predictor
        assert f.name in report.valid.columns


@pytest.mark.parametrize("f", REQUIRED_FIELDS, ids=REQ_IDS)
def test_required_column_absent_raises_naming_the_column(f):
    df = frame(base_record()).drop(columns=[f.name])
    with pytest.raises(ContractFileError) as exc:
        validate_frame(df)
    msg = str(exc.value)
    assert f.name in msg and "missing required column" in msg and "\n" not in msg


# --- identification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sid",
    ["a", "A-1", "x.y_z-0", "0", "Z" * 64, "abc.DEF_123-xyz"],
)
def test_valid_subject_ids(sid):
    report = validate_records(base_record(sid))
    assert_valid(report)
    assert report.valid["subject_id"].tolist() == [sid]


@pytest.mark.parametrize(
    "sid",
    ["Z" * 65, "a b", "a/b", "ä", "a@b", "a,b", "abc\n", "\nabc", "a\tb", "#1", "Jane Doe"],
    ids=["65-chars", "space", "slash", "umlaut", "at", "comma", "trailing-newline", "leading-newline", "tab", "hash", "name"],
)
def test_invalid_subject_ids_are_rejected_and_not_echoed(sid):
    report = validate_records(base_record("OK-1"), base_record(sid))
    text = assert_only(report, "subject_id", row=2)
    assert "not a valid identifier" in text and rule_of("subject_id") in text
    # an invalid id may be a name: it is not copied into the report
    assert report.problems["subject_id"].tolist() == [""]
    assert sid.strip() not in json.dumps(report.to_dict())
    assert report.n_valid == 1


@pytest.mark.parametrize("site", ["s", "Site A/B (Zürich)", "x" * 64])
def test_valid_site(site):
    rec = base_record()
    rec["site"] = site
    assert_valid(validate_records(rec))


def test_site_longer_than_64_is_rejected():
    rec = base_record()
    rec["site"] = "x" * 65
    text = assert_only(validate_records(rec), "site")
    assert "wrong length" in text and rule_of("site") in text


def test_duplicate_subject_id_rejects_every_copy():
    recs = [base_record("D1"), base_record("U1"), base_record("D1"), base_record("U2"), base_record("D1"),
            base_record("D2"), base_record("D2")]
    report = validate_records(*recs)
    assert list(report.rejected_rows) == [1, 3, 5, 6, 7]
    assert report.n_valid == 2 and sorted(report.valid["subject_id"]) == ["U1", "U2"]
    for row in [1, 3, 5, 6, 7]:
        text = assert_only(report, "subject_id", row)
        assert "duplicated subject_id" in text and "every copy is rejected" in text
    assert set(report.problems["subject_id"]) == {"D1", "D2"}


def test_unique_subject_ids_pass():
    assert_valid(validate_records(base_record("U1"), base_record("U2"), base_record("u1")))


# --- cross-field rules ------------------------------------------------------------------


def _pain_free(**kw):
    rec = record_with("pain_condition", "pain_free")
    rec.update(kw)
    return rec


def _chronic(condition=CHRONIC[0], **kw):
    rec = base_record()
    rec["pain_condition"] = condition
    rec.update(kw)
    return rec


@pytest.mark.parametrize("mechanism", ["none", None])
def test_pain_free_with_zero_duration_and_no_mechanism_passes(mechanism):
    assert_valid(validate_records(_pain_free(pain_duration_months=0.0, pain_mechanism=mechanism)))


@pytest.mark.parametrize("months", [0.5, 3.0, 120.0])
def test_pain_free_with_duration_is_rejected(months):
    text = assert_only(validate_records(_pain_free(pain_duration_months=months)), "pain_duration_months")
    assert "cross-field rule" in text and "pain_free requires pain_duration_months = 0" in text


@pytest.mark.parametrize("mechanism", MECHANISMS_NOT_NONE)
def test_pain_free_with_a_mechanism_is_rejected(mechanism):
    text = assert_only(validate_records(_pain_free(pain_mechanism=mechanism)), "pain_mechanism")
    assert "pain_free requires pain_mechanism none or missing" in text


@pytest.mark.parametrize("condition", CHRONIC)
@pytest.mark.parametrize("mechanism", [*MECHANISMS_NOT_NONE, None])
def test_chronic_condition_with_three_months_and_a_mechanism_passes(condition, mechanism):
    assert_valid(validate_records(_chronic(condition, pain_duration_months=3.0, pain_mechanism=mechanism)))


@pytest.mark.parametrize("condition", CHRONIC)
@pytest.mark.parametrize("months", [0.0, 2.99])
def test_chronic_condition_shorter_than_three_months_is_rejected(condition, months):
    text = assert_only(validate_records(_chronic(condition, pain_duration_months=months)), "pain_duration_months")
    assert "a chronic pain condition requires pain_duration_months >= 3" in text


@pytest.mark.parametrize("condition", CHRONIC)
def test_chronic_condition_with_mechanism_none_is_rejected(condition):
    text = assert_only(validate_records(_chronic(condition, pain_mechanism="none")), "pain_mechanism")
    assert "requires a pain_mechanism other than none" in text


def test_bdnf_without_matrix_is_rejected():
    rec = base_record()
    rec["bdnf_matrix"] = None
    text = assert_only(validate_records(rec), "bdnf_matrix")
    assert "bdnf_matrix is required when bdnf_ng_ml is given" in text


def test_bdnf_with_matrix_column_absent_is_rejected():
    rec = base_record()
    del rec["bdnf_matrix"]
    report = validate_records(rec, {**rec, "subject_id": "S-0002", "bdnf_ng_ml": None})
    assert_only(report, "bdnf_matrix", row=1)
    assert list(report.rejected_rows) == [1]


@pytest.mark.parametrize("matrix", ["serum", "plasma", None])
def test_matrix_without_bdnf_passes(matrix):
    rec = base_record()
    rec.update(bdnf_ng_ml=None, bdnf_matrix=matrix)
    assert_valid(validate_records(rec))


@pytest.mark.parametrize(("matrix", "value"), [("plasma", 5.0), ("plasma", 0.01), ("serum", 5.01), ("serum", 100.0)])
def test_plausible_bdnf_passes(matrix, value):
    rec = base_record()
    rec.update(bdnf_matrix=matrix, bdnf_ng_ml=value)
    assert_valid(validate_records(rec))


@pytest.mark.parametrize("value", [5.01, 30.0, 100.0])
def test_plasma_bdnf_above_5_is_implausible(value):
    rec = base_record()
    rec.update(bdnf_matrix="plasma", bdnf_ng_ml=value)
    text = assert_only(validate_records(rec), "bdnf_ng_ml")
    assert "plasma BDNF above 5 ng/mL is implausible" in text


# --- numbers that are not numbers -------------------------------------------------------


NOT_NUMBERS = ("abc", "12,5", "4 kPa", "--1", "True", "1e")


@pytest.fixture(scope="module")
def nan_batch():
    cases = {(f.name, bad): record_with(f.name, bad) for f in NUMBER_FIELDS for bad in NOT_NUMBERS}
    for f in NUMBER_FIELDS:  # numeric strings are read as numbers
        cases[(f.name, "ok")] = record_with(f.name, f" {float(f.max)} ")
    return Batch(cases)


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=NUMBER_IDS)
@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_not_a_number_string_is_rejected(f, bad, nan_batch):
    report, row = nan_batch[(f.name, bad)]
    text = assert_only(report, f.name, row)
    assert text.startswith("not a number") and rule_of(f.name) in text


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=NUMBER_IDS)
def test_numeric_string_is_a_number(f, nan_batch):
    assert_row_valid(*nan_batch[(f.name, "ok")])


def test_not_a_number_rejects_only_its_row():
    report = validate_records(base_record("N1"), record_with("cpm_pct", "abc", "N2"))
    assert report.n_valid == 1 and list(report.rejected_rows) == [2]


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_number_is_rejected(bad):
    text = assert_only(validate_records(record_with("age_years", bad)), "age_years")
    assert "not a finite number" in text


def test_numeric_strings_are_accepted_and_typed():
    rec = base_record()
    rec["age_years"] = " 42.5 "
    report = validate_records(rec)
    assert_valid(report)
    assert report.valid["age_years"].dtype == "float64" and report.valid["age_years"].iloc[0] == 42.5


# --- unknown columns --------------------------------------------------------------------


def test_unknown_columns_are_reported_and_not_used():
    rec = {**base_record(), "age": 1000, "patient_name": "Jane Doe", "eih_pct": "x"}
    report = validate_records(rec)
    assert_valid(report)
    assert report.unknown_columns == ["age", "patient_name", "eih_pct"]
    for col in report.unknown_columns:
        assert col not in report.valid.columns
    assert report.to_dict()["unknown_columns"] == ["age", "patient_name", "eih_pct"]


def test_no_unknown_columns():
    assert validate_records(base_record()).unknown_columns == []


# --- the report -------------------------------------------------------------------------


def test_counts_add_up_and_valid_frame_is_typed():
    recs = [base_record(f"R{i}") for i in range(6)]
    recs[1]["sex"] = "x"
    recs[4]["age_years"] = 5.0
    recs[4]["pcs_total"] = 99.0  # two problems, one rejected row
    report = validate_records(*recs)
    assert report.n_rows == 6 and report.n_valid == 4 and report.n_rejected == 2
    assert report.n_valid + report.n_rejected == report.n_rows
    assert len(report.problems) == 3
    assert list(report.problems.columns) == ["subject_id", "row", "field", "problem"]
    assert list(report.valid.index) == [0, 2, 3, 5]
    for f in FIELDS:
        if f.kind == "number":
            assert report.valid[f.name].dtype == "float64"
        elif f.kind == "category":
            assert isinstance(report.valid[f.name].dtype, pd.CategoricalDtype)
            assert list(report.valid[f.name].cat.categories) == list(f.categories)
    d = report.to_dict()
    assert (d["rows_read"], d["valid"], d["rejected"]) == (6, 4, 2)
    json.dumps(d)  # serialisable


def test_row_offset_keeps_file_rows():
    recs = [base_record("O1"), record_with("age_years", 10.0, "O2")]
    report = validate_frame(frame(*recs), row_offset=1000)
    assert list(report.problems["row"]) == [1002]


def test_original_index_is_kept_on_valid_rows():
    df = frame(base_record("I1"), record_with("sex", "x", "I2"), base_record("I3"))
    df.index = [10, 20, 30]
    report = validate_frame(df)
    assert list(report.valid.index) == [10, 30]
    assert list(report.problems["row"]) == [2]


# --- messages never echo values ----------------------------------------------------------

MARKERS = ("99.123456", "123456.789", "123456", "MarkerSite-7Q", "4711.0815")


def marked_bad_records() -> list[dict]:
    """Records with distinctive values in good fields and distinctive bad values."""
    a = base_record("M1")
    a.update(age_years=99.123456, site="MarkerSite-7Q", bmi_kg_m2=123456.789)  # bmi out of range
    b = base_record("M2")
    b.update(age_years=99.123456, pain_intensity_nrs="4711.0815x")  # not a number
    c = base_record("M3")
    c.update(age_years=99.123456, sex="123456.789")  # wrong category
    d = base_record("M4")
    d.update(age_years=99.123456, bdnf_ng_ml=123456.789, bdnf_matrix="plasma")  # pg slip + implausible
    e = record_with("pain_duration_months", 4711.0815, "M5")  # out of range
    e["age_years"] = 99.123456
    return [a, b, c, d, e, base_record("M6")]


def test_problems_never_echo_values():
    report = validate_records(*marked_bad_records())
    assert report.n_rejected == 5 and report.n_valid == 1
    texts = [
        report.problems.to_csv(index=False),
        json.dumps(report.to_dict()),
        report.by_field_rule().to_string(),
        report.problems.to_string(),
    ]
    for text in texts:
        for marker in MARKERS:
            assert marker not in text, (marker, text)


@pytest.mark.parametrize(
    "absent", [[], ["pain_mechanism"], ["bdnf_ng_ml"], ["bdnf_matrix"], ["pain_mechanism", "bdnf_ng_ml", "bdnf_matrix"]]
)
def test_cross_rules_evaluate_when_optional_columns_are_absent(absent):
    # a cross-field check that raised would be dropped by pandera's lazy mode, and its
    # rule silently skipped: every rule must evaluate to one bool per row
    from data_contracts.schema import CROSS_RULES
    from data_contracts.validate import _coerce

    df = frame(base_record("X1"), record_with("pain_condition", "pain_free", "X2")).drop(columns=absent)
    data, _ = _coerce(df)
    for rule in CROSS_RULES:
        out = rule.check(data)
        assert len(out) == 2 and out.dtype == bool, rule.name
