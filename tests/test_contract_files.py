"""Files end to end: a 2,000-row cohort with ~50 planted bad rows at known positions,
written as CSV and Parquet, through `read_table` + `validate_frame` and `eih validate`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from test_contract_support import CATEGORY_FIELDS, CHRONIC, NUMBER_FIELDS, REQUIRED_FIELDS, valid_frame

from data_contracts import validate_frame
from data_contracts.fields import BY_NAME
from data_contracts.io import iter_table, read_table, write_table
from eih.cli import app

N_ROWS = 2000
N_BAD = 50
AGE_MARKER = 99.123456  # a good value in bad records: must never be echoed
BAD_MARKER = 123456.789  # the bad value itself: must never be echoed
NOTE_MARKER = "MarkerNote-Q7"  # in an unknown column
MARKERS = ("99.123456", "123456.789", "123456", NOTE_MARKER)


def _kinds():
    """(kind, field or None) in planting order; fields rotate through the contract."""
    numbers = [f.name for f in NUMBER_FIELDS]
    categories = [f.name for f in CATEGORY_FIELDS]
    required = [f.name for f in REQUIRED_FIELDS if f.name != "subject_id"]
    fixed = [
        ("bad_id", "subject_id"), ("long_id", "subject_id"), ("missing_id", "subject_id"), ("dup", "subject_id"),
        ("long_site", "site"), ("pain_free_duration", "pain_duration_months"), ("chronic_none", "pain_mechanism"),
        ("bdnf_no_matrix", "bdnf_matrix"), ("plasma_high", "bdnf_ng_ml"), ("bdnf_pg", "bdnf_ng_ml"),
        ("lactate_mg", "lactate_mmol_l"), ("ppt_kgf", "ppt_baseline_kpa"), ("fraction", "exercise_intensity_pct"),
        ("two", None), ("inf", "cpm_pct"),
    ]
    rotating = []
    for i in range(12):
        rotating += [
            ("above", numbers[(3 * i) % len(numbers)]),
            ("below", numbers[(3 * i + 1) % len(numbers)]),
            ("not_number", numbers[(3 * i + 2) % len(numbers)]),
            ("category", categories[i % len(categories)]),
            ("missing", required[i % len(required)]),
        ]
    return fixed + rotating


def planted_cohort(seed: int = 7) -> tuple[pd.DataFrame, dict[int, set[str]]]:
    """N_ROWS rows, N_BAD of them bad (one dup pair counts twice); returns the frame and
    {1-based row: fields that must be blamed}."""
    df = valid_frame(N_ROWS, seed=seed).astype(object)
    df = df.where(df.notna(), None)
    rng = np.random.default_rng(seed)
    positions = [int(p) for p in rng.choice(N_ROWS, size=N_BAD, replace=False)]
    expected: dict[int, set[str]] = {}
    kinds = iter(_kinds())
    i = 0
    while i < len(positions):
        kind, field = next(kinds)
        p = positions[i]
        fields = {field}
        row = df.loc[p]
        if kind == "dup":
            q = positions[i + 1]
            df.loc[q, "subject_id"] = row["subject_id"]
            expected[q + 1] = {"subject_id"}
            df.loc[q, "age_years"] = AGE_MARKER
            i += 1
        elif kind == "bad_id":
            df.loc[p, "subject_id"] = "Jane Doe"
        elif kind == "long_id":
            df.loc[p, "subject_id"] = "x" * 65
        elif kind == "missing_id":
            df.loc[p, "subject_id"] = None
        elif kind == "long_site":
            df.loc[p, "site"] = "s" * 65
        elif kind == "pain_free_duration":
            df.loc[p, ["pain_condition", "pain_mechanism", "pain_duration_months"]] = ["pain_free", "none", 12.0]
        elif kind == "chronic_none":
            df.loc[p, ["pain_condition", "pain_mechanism", "pain_duration_months"]] = [CHRONIC[-1], "none", 24.0]
        elif kind == "bdnf_no_matrix":
            df.loc[p, ["bdnf_ng_ml", "bdnf_matrix"]] = [10.0, None]
        elif kind == "plasma_high":
            df.loc[p, ["bdnf_ng_ml", "bdnf_matrix"]] = [20.0, "plasma"]
        elif kind == "bdnf_pg":
            df.loc[p, ["bdnf_ng_ml", "bdnf_matrix"]] = [250.0, "serum"]
        elif kind == "lactate_mg":
            df.loc[p, "lactate_mmol_l"] = 45.0
        elif kind == "ppt_kgf":
            df.loc[p, "ppt_baseline_kpa"] = 4.5
        elif kind == "fraction":
            df.loc[p, "exercise_intensity_pct"] = 0.75
        elif kind == "two":
            df.loc[p, ["bmi_kg_m2", "sex"]] = [BAD_MARKER, "x"]
            fields = {"bmi_kg_m2", "sex"}
        elif kind == "inf":
            df.loc[p, field] = float("inf")
        elif kind == "above":
            df.loc[p, field] = BAD_MARKER
        elif kind == "below":
            df.loc[p, field] = -BAD_MARKER
        elif kind == "not_number":
            df.loc[p, field] = "twelve"
        elif kind == "category":
            df.loc[p, field] = "unknown_value"
        elif kind == "missing":
            df.loc[p, field] = None
        else:  # pragma: no cover
            raise AssertionError(kind)
        if field in ("bdnf_ng_ml",) and kind in ("above", "below", "not_number") and df.loc[p, "bdnf_matrix"] is None:
            df.loc[p, "bdnf_matrix"] = "serum"  # keep the planted problem single
        if "age_years" not in fields:
            df.loc[p, "age_years"] = AGE_MARKER
        expected[p + 1] = fields
        i += 1
    df["notes"] = NOTE_MARKER
    # column dtypes a file can hold: numbers stay numeric unless a planted string is in them
    for f in NUMBER_FIELDS:
        col = df[f.name]
        has_text = col.map(lambda v: isinstance(v, str)).any()
        df[f.name] = col.astype("string") if has_text else col.astype("float64")
    return df, expected


@pytest.fixture(scope="module")
def cohort():
    return planted_cohort()


@pytest.fixture(scope="module")
def files(cohort, tmp_path_factory):
    df, _ = cohort
    d = tmp_path_factory.mktemp("cohort")
    paths = {"csv": d / "cohort.csv", "parquet": d / "cohort.parquet"}
    for p in paths.values():
        write_table(df, p)
    good = valid_frame(300, seed=3)
    paths["good_csv"] = d / "good.csv"
    paths["good_parquet"] = d / "good.parquet"
    write_table(good, paths["good_csv"])
    write_table(good, paths["good_parquet"])
    return paths


def test_planting_covers_the_intended_kinds(cohort):
    _, expected = cohort
    assert len(expected) == N_BAD
    assert sum(len(v) == 2 for v in expected.values()) == 1
    blamed = set().union(*expected.values())
    assert {f.name for f in CATEGORY_FIELDS} <= blamed
    assert {"subject_id", "site", "pain_duration_months", "pain_mechanism", "bdnf_matrix"} <= blamed


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_rejected_set_equals_planted_set(fmt, files, cohort):
    df, expected = cohort
    table = read_table(files[fmt])
    assert len(table) == N_ROWS
    report = validate_frame(table)
    assert report.n_rows == N_ROWS
    assert set(report.rejected_rows.tolist()) == set(expected)
    got = report.problems.groupby("row")["field"].agg(set).to_dict()
    assert got == expected
    # every other row is valid, and the counts add up
    good_positions = sorted(set(range(N_ROWS)) - {r - 1 for r in expected})
    assert list(report.valid.index) == good_positions
    assert report.n_valid == N_ROWS - N_BAD
    assert report.n_valid + report.n_rejected == report.n_rows
    assert report.valid["subject_id"].tolist() == df["subject_id"].iloc[good_positions].tolist()
    assert report.unknown_columns == ["notes"]
    assert "notes" not in report.valid.columns


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_planted_problems_say_what_and_which_rule(fmt, files, cohort):
    report = validate_frame(read_table(files[fmt]))
    p = report.problems
    assert (p["problem"].str.contains("rule: ")).all()
    kinds = {
        "looks like pg/mL (divide by 1000)": "bdnf_ng_ml",
        "looks like mg/dL (divide by 9.01)": "lactate_mmol_l",
        "looks like kgf/cm² (multiply by 98.07) or N/cm² (multiply by 10)": "ppt_baseline_kpa",
        "looks like a fraction (multiply by 100)": "exercise_intensity_pct",
        "duplicated subject_id": "subject_id",
        "not a number": None,
        "not a finite number": "cpm_pct",
        "plasma BDNF above 5 ng/mL is implausible": "bdnf_ng_ml",
        "required value is missing": None,
        "not an allowed category": None,
    }
    for text, field in kinds.items():
        hits = p[p["problem"].str.contains(text, regex=False)]
        assert len(hits), text
        if field:
            assert set(hits["field"]) == {field}, text
    dup = p[p["problem"].str.startswith("duplicated")]
    assert len(dup) == 2 and dup["subject_id"].nunique() == 1


def test_iter_table_chunks_continue_the_row_index(files):
    for fmt in ("csv", "parquet"):
        chunks = list(iter_table(files[fmt], chunk_rows=700))
        assert [len(c) for c in chunks] == [700, 700, 600]
        assert [c.index[0] for c in chunks] == [0, 700, 1400]
        whole = pd.concat(chunks)
        assert whole.index.equals(pd.RangeIndex(N_ROWS))


# --- the CLI ----------------------------------------------------------------------------


def _run(runner, *args):
    return runner.invoke(app, ["validate", *map(str, args)])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_rejects_file_one_line_per_problem(fmt, files, cohort, cli_runner, tmp_path):
    _, expected = cohort
    rejects = tmp_path / "rejects.csv"
    result = _run(cli_runner, files[fmt], "--rejects", rejects)
    assert result.exit_code == 1, result.output
    with rejects.open(newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["subject_id", "row", "field", "problem"]
    body = lines[1:]
    assert len(body) == sum(len(v) for v in expected.values())  # one line per problem
    rows = [int(r[1]) for r in body]
    assert set(rows) == set(expected)
    two = next(r for r, v in expected.items() if len(v) == 2)
    assert sorted(r[2] for r in body if int(r[1]) == two) == ["bmi_kg_m2", "sex"]
    assert all(r[3] for r in body)
    text = rejects.read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker not in text
    assert "problems written to" in result.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_json_counts_add_up(fmt, files, cohort, cli_runner):
    _, expected = cohort
    result = _run(cli_runner, files[fmt], "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["rows_read"] == N_ROWS
    assert out["rejected"] == len(expected) and out["valid"] == N_ROWS - len(expected)
    assert out["valid"] + out["rejected"] == out["rows_read"]
    assert out["unknown_columns"] == ["notes"]
    assert {p["row"] for p in out["problems"]} == set(expected)
    assert sum(r["count"] for r in out["problems_by_field"]) == len(out["problems"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("as_json", [False, True])
def test_cli_never_echoes_values(fmt, as_json, files, cli_runner, tmp_path):
    args = [files[fmt], "--rejects", tmp_path / "r.csv"] + (["--json"] if as_json else [])
    result = _run(cli_runner, *args)
    assert result.exit_code == 1
    for stream in (result.stdout, result.stderr, result.output):
        for marker in MARKERS:
            assert marker not in stream, marker
    if not as_json:
        assert "rows read 2000" in result.stdout and "rejected 50" in result.stdout
        assert "notes" in result.stdout  # the unknown column is named, its content is not


def test_cli_table_gives_rule_and_unit_slip(files):
    from typer.testing import CliRunner

    wide = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    result = _run(wide, files["csv"])
    assert result.exit_code == 1
    out = result.stdout
    assert "rule" in out and "likely unit slip" in out
    assert "a number from 0.01 to 100 ng/mL" in out and "looks like pg/mL (divide by 1000)" in out
    assert "one of female, male" in out
    assert "every problem with its row and subject_id: --rejects FILE.csv or --json" in out
    for marker in MARKERS:
        assert marker not in out


def test_problem_table_counts_rows_per_rule_and_hint(files):
    from data_contracts.report import problem_table

    report = validate_frame(read_table(files["csv"]))
    table = problem_table(report.problems)
    assert table["rows"].sum() == len(report.problems)  # a count of rows, never a value
    assert (table["rule"] != "").all()
    pg = table[table["hint"] == "looks like pg/mL (divide by 1000)"]
    assert len(pg) == 1 and pg["field"].item() == "bdnf_ng_ml" and pg["problem"].item() == "above the allowed range"
    assert pg["rows"].item() == report.problems["problem"].str.contains("looks like pg/mL", regex=False).sum()


@pytest.mark.parametrize("fmt", ["good_csv", "good_parquet"])
def test_cli_valid_file_exits_0(fmt, files, cli_runner, tmp_path):
    rejects = tmp_path / "r.csv"
    result = _run(cli_runner, files[fmt], "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert "rejected 0" in result.stdout
    assert rejects.read_text().splitlines() == ["subject_id,row,field,problem"]
    out = json.loads(_run(cli_runner, files[fmt], "--json").stdout)
    assert (out["rows_read"], out["valid"], out["rejected"]) == (300, 300, 0)


def _unreadable(tmp_path, kind: str):
    good = valid_frame(5, seed=11)
    if kind == "unknown_suffix":
        p = tmp_path / "cohort.txt"
        good.to_csv(p, index=False)
    elif kind == "xlsx":
        p = tmp_path / "cohort.xlsx"
        p.write_bytes(b"PK\x03\x04")
    elif kind == "empty_csv":
        p = tmp_path / "cohort.csv"
        p.write_bytes(b"")
    elif kind == "header_only_csv":
        p = tmp_path / "cohort.csv"
        good.head(0).to_csv(p, index=False)
    elif kind == "empty_parquet":
        p = tmp_path / "cohort.parquet"
        good.head(0).to_parquet(p, index=False)
    elif kind == "corrupt_parquet":
        p = tmp_path / "cohort.parquet"
        p.write_bytes(b"this is not parquet " * 10)
    elif kind == "nonexistent":
        p = tmp_path / "nope.csv"
    elif kind == "nonexistent_parquet":
        p = tmp_path / "nope.parquet"
    else:
        raise AssertionError(kind)
    return p


UNREADABLE = ["unknown_suffix", "xlsx", "empty_csv", "header_only_csv", "empty_parquet", "corrupt_parquet",
              "nonexistent", "nonexistent_parquet"]


@pytest.mark.parametrize("kind", UNREADABLE)
def test_cli_unreadable_file_exits_2_with_one_line(kind, tmp_path, cli_runner):
    p = _unreadable(tmp_path, kind)
    result = _run(cli_runner, p)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and p.name in lines[0]
    assert result.stdout == ""
    out = json.loads(_run(cli_runner, p, "--json").stdout)
    assert set(out) == {"error"} and p.name in out["error"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("drop", [["sex"], ["ppt_baseline_kpa"], [f.name for f in REQUIRED_FIELDS][1:]])
def test_cli_missing_required_column_exits_2_naming_it(fmt, drop, tmp_path):
    from typer.testing import CliRunner

    df = valid_frame(20, seed=5).drop(columns=drop)
    if "age_years" in df:
        df["age_years"] = AGE_MARKER
    p = tmp_path / f"cohort.{fmt}"
    write_table(df, p)
    rejects = tmp_path / "r.csv"
    # a narrow, non-terminal stderr (as in a CI log) must not wrap the reason
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["validate", str(p), "--rejects", str(rejects)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "missing required column" in lines[0]
    for name in drop:
        assert name in lines[0]
    assert "99.123456" not in result.output
    assert not rejects.exists()  # nothing was validated


def test_cli_reports_unknown_columns(tmp_path, cli_runner):
    df = valid_frame(10, seed=9)
    df["age"] = 44
    df["Sex"] = "f"
    p = tmp_path / "c.csv"
    write_table(df, p)
    result = _run(cli_runner, p, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["unknown_columns"] == ["age", "Sex"]
    table = _run(cli_runner, p)
    assert "unknown columns, not used: age, Sex" in table.stdout


def test_cli_not_a_number_in_csv(tmp_path, cli_runner):
    df = valid_frame(10, seed=2).astype({"pcs_total": object})
    df.loc[4, "pcs_total"] = "thirty"
    p = tmp_path / "c.csv"
    write_table(df, p)
    out = json.loads(_run(cli_runner, p, "--json").stdout)
    assert out["rejected"] == 1
    assert [(q["row"], q["field"]) for q in out["problems"]] == [(5, "pcs_total")]
    assert out["problems"][0]["problem"].startswith("not a number; rule: pcs_total is")
    assert "thirty" not in json.dumps(out)


def test_write_table_round_trip(tmp_path):
    df = valid_frame(50, seed=4)
    for suffix in ("csv", "parquet"):
        p = tmp_path / f"x.{suffix}"
        write_table(df, p)
        back = read_table(p)
        assert list(back.columns) == list(df.columns)
        assert validate_frame(back).n_valid == 50
        pd.testing.assert_series_equal(back["age_years"], df["age_years"], check_dtype=False)


def test_bdnf_field_has_matrix_partner():
    # the planting logic above relies on these contract facts
    assert BY_NAME["bdnf_matrix"].categories == ("serum", "plasma")
    assert BAD_MARKER > max(f.max for f in NUMBER_FIELDS)
