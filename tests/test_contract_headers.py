"""Headers and CSV dialects as clinics export them, on every door that reads through
`data_contracts.io`: near-miss headers are named, case and surrounding spaces are
forgiven with a notice, and comma, semicolon (with or without decimal commas) and tab
files read to the same values. No record value appears in any message."""

from __future__ import annotations

import csv
import json
import logging

import pandas as pd
import pytest
from test_contract_support import valid_frame

from data_contracts import validate_frame
from data_contracts.fields import KNOWN_COLUMNS
from data_contracts.io import (
    SNIFF_BYTES,
    column_hints,
    iter_table,
    missing_columns_message,
    read_header,
    read_table,
    sniff_csv,
    write_table,
)
from data_contracts.validate import ContractFileError
from eih.cli import app

AGE_MARKER = 77.654321  # a distinctive record value: must never be echoed
ID_MARKER = "ZZ-Marker-991"
MARKERS = ("77.654321", "77,654321", ID_MARKER)


def _cohort(n: int = 300, seed: int = 13) -> pd.DataFrame:
    df = valid_frame(n, seed=seed)
    df.loc[0, "age_years"] = AGE_MARKER
    df.loc[0, "subject_id"] = ID_MARKER
    return df


def _validate(runner, path, *args):
    return runner.invoke(app, ["validate", str(path), *map(str, args)])


def _no_marker(*texts: str) -> None:
    for text in texts:
        for marker in MARKERS:
            assert marker not in text, marker


# --- near-miss headers ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_renamed_age_column_is_named_as_looking_like_age_years(fmt, tmp_path, cli_runner):
    p = tmp_path / f"c.{fmt}"
    write_table(_cohort().rename(columns={"age_years": "age"}), p)
    with pytest.raises(ContractFileError) as exc:
        read_table(p)
    assert "missing required column(s): age_years;" in str(exc.value)
    assert "`age` looks like `age_years`" in str(exc.value)
    result = _validate(cli_runner, p)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "`age` looks like `age_years`" in lines[0]
    _no_marker(result.output, str(exc.value))


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Age (years)", "age_years"), ("age_yrs", "age_years"), ("gender", "sex"), ("Gender", "sex"),
        ("patient_id", "subject_id"), ("PPT", "ppt_baseline_kpa"), ("tsk", "tsk17_total"),
        ("pcs", "pcs_total"), ("exercise-intensity", "exercise_intensity_pct"), ("cpm_percent", "cpm_pct"),
        ("age years", "age_years"),
    ],
)
def test_near_miss_headers_name_the_contract_column(header, field):
    columns = [c for c in KNOWN_COLUMNS if c != field] + [header]
    assert column_hints(columns) == {header: [field]}
    assert f"`{header}` looks like `{field}`" in missing_columns_message(columns)


def test_no_hint_for_present_columns_or_unrelated_names():
    assert column_hints(list(KNOWN_COLUMNS) + ["age", "notes", "weight"]) == {}
    assert missing_columns_message(list(KNOWN_COLUMNS)) is None


def test_a_header_line_of_values_is_never_repeated(tmp_path, cli_runner):
    p = tmp_path / "no_header.csv"
    _cohort().to_csv(p, index=False, header=False)
    result = _validate(cli_runner, p, "--json")
    assert result.exit_code == 2
    message = json.loads(result.stdout)["error"]
    assert "looks like data, not a header" in message and "looks like `" not in message
    _no_marker(result.output)


def test_an_unknown_separator_is_named_not_guessed(tmp_path):
    p = tmp_path / "pipes.csv"
    _cohort(20).to_csv(p, index=False, sep="|")
    with pytest.raises(ContractFileError, match="read as one column"):
        read_table(p)


# --- case and surrounding spaces are forgiven ----------------------------------------


def _shouted(df: pd.DataFrame) -> pd.DataFrame:
    names = {c: c.upper() for c in df.columns}
    names["sex"] = " Sex "
    return df.rename(columns=names)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_uppercase_headers_are_read_under_contract_names_with_a_notice(fmt, tmp_path, cli_runner, caplog):
    df = valid_frame(200, seed=21)
    p, plain = tmp_path / f"loud.{fmt}", tmp_path / f"plain.{fmt}"
    write_table(_shouted(df), p)
    write_table(df, plain)
    with caplog.at_level(logging.WARNING, logger="data_contracts.io"):
        back = read_table(p)
    assert list(back.columns) == list(df.columns)
    report = validate_frame(back)
    assert (report.n_valid, report.n_rejected, report.unknown_columns) == (200, 0, [])
    pd.testing.assert_frame_equal(back, read_table(plain, notify=None))
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "differ from the contract only in case" in notices[0]

    result = _validate(cli_runner, p)
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notice: ") and "'SUBJECT_ID' as subject_id" in lines[0]
    assert "rejected 0" in result.stdout
    out = json.loads(_validate(cli_runner, p, "--json").stdout)
    assert out["valid"] == 200 and len(out["notices"]) == 1


def test_a_header_already_present_is_not_overwritten_by_its_uppercase_twin(tmp_path):
    df = valid_frame(20, seed=2)
    df["SEX"] = "female"
    p = tmp_path / "twin.csv"
    write_table(df, p)
    header = read_header(p)
    assert header.renamed == {} and header.notices == []
    assert validate_frame(read_table(p)).unknown_columns == ["SEX"]


# --- CSV dialects ---------------------------------------------------------------------


def _dialects(df: pd.DataFrame, tmp_path) -> dict[str, object]:
    paths = {
        "comma": tmp_path / "comma.csv",
        "semicolon_decimal_comma": tmp_path / "semi_dc.csv",
        "semicolon_decimal_point": tmp_path / "semi_dp.csv",
        "tab": tmp_path / "tab.csv",
        "semicolon_quoted_bom": tmp_path / "semi_q.csv",
    }
    df.to_csv(paths["comma"], index=False)
    df.to_csv(paths["semicolon_decimal_comma"], index=False, sep=";", decimal=",")
    df.to_csv(paths["semicolon_decimal_point"], index=False, sep=";")
    df.to_csv(paths["tab"], index=False, sep="\t")
    df.to_csv(paths["semicolon_quoted_bom"], index=False, sep=";", decimal=",", quoting=csv.QUOTE_ALL,
              encoding="utf-8-sig")
    return paths


@pytest.mark.parametrize(
    ("kind", "sniffed"),
    [
        ("comma", (",", ".")),
        ("semicolon_decimal_comma", (";", ",")),
        ("semicolon_decimal_point", (";", ".")),
        ("tab", ("\t", ".")),
        ("semicolon_quoted_bom", (";", ",")),
    ],
)
def test_dialects_read_to_the_same_values(kind, sniffed, tmp_path):
    df = valid_frame(2000, seed=5)
    paths = _dialects(df, tmp_path)
    assert sniff_csv(paths[kind]) == sniffed
    expected = read_table(paths["comma"])
    got = read_table(paths[kind], notify=None)
    pd.testing.assert_frame_equal(got, expected)
    assert validate_frame(got).n_valid == 2000
    chunks = list(iter_table(paths[kind], chunk_rows=700, notify=None))
    assert [len(c) for c in chunks] == [700, 700, 600]
    pd.testing.assert_frame_equal(pd.concat(chunks), expected)


def test_semicolon_file_gives_the_same_problems_as_the_comma_file(tmp_path, cli_runner):
    from test_contract_files import planted_cohort

    df, expected = planted_cohort()
    df.to_csv(tmp_path / "comma.csv", index=False)
    df.to_csv(tmp_path / "semi.csv", index=False, sep=";", decimal=",")
    a = validate_frame(read_table(tmp_path / "comma.csv"))
    b = validate_frame(read_table(tmp_path / "semi.csv", notify=None))
    assert set(b.rejected_rows.tolist()) == set(expected)
    pd.testing.assert_frame_equal(a.problems, b.problems)
    result = _validate(cli_runner, tmp_path / "semi.csv", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["notices"] == ["semi.csv: read as a semicolon-separated file with decimal commas"]
    assert result.stderr.strip() == "notice: semi.csv: read as a semicolon-separated file with decimal commas"


def test_sniffing_reads_only_the_first_few_kb(tmp_path, monkeypatch):
    import builtins

    p = tmp_path / "semi.csv"
    valid_frame(2000, seed=8).to_csv(p, index=False, sep=";", decimal=",")
    sizes = []
    real_open = builtins.open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            sizes.append(n)
            return self.fh.read(n)

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Spy(real_open(*a, **k)))
    assert sniff_csv(p) == (";", ",")
    assert sizes == [SNIFF_BYTES] and SNIFF_BYTES <= 64 * 1024


def test_one_column_pass_over_a_semicolon_file_with_loud_headers(tmp_path):
    df = valid_frame(500, seed=3)
    p = tmp_path / "ids.csv"
    _shouted(df).to_csv(p, index=False, sep=";", decimal=",")
    chunks = list(iter_table(p, chunk_rows=200, columns=["subject_id"], notify=None))
    assert [list(c.columns) for c in chunks] == [["subject_id"]] * 3
    assert pd.concat(chunks)["subject_id"].tolist() == df["subject_id"].tolist()


# --- no record value in any message ----------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_no_record_value_in_notices_hints_or_tables(as_json, tmp_path, cli_runner):
    df = _cohort(100)
    df.loc[1:3, "ppt_baseline_kpa"] = 4.5  # kgf/cm²: a unit-slip hint, never the value
    loud = _shouted(df).rename(columns={"PCS_TOTAL": "pcs"})
    cases = {
        "semi.csv": lambda p: _shouted(df).to_csv(p, index=False, sep=";", decimal=","),
        "near.csv": lambda p: loud.to_csv(p, index=False),
        "tab.csv": lambda p: df.to_csv(p, index=False, sep="\t"),
        "headless.csv": lambda p: df.to_csv(p, index=False, header=False, sep=";", decimal=","),
    }
    for name, write in cases.items():
        p = tmp_path / name
        write(p)
        result = _validate(cli_runner, p, "--rejects", tmp_path / "r.csv", *(["--json"] if as_json else []))
        assert result.exit_code in (1, 2), (name, result.output)
        _no_marker(result.stdout, result.stderr)
        for text in (result.stdout, result.stderr):
            assert "4.5" not in text and "4,5" not in text


def test_unknown_columns_name_the_optional_column_they_look_like(tmp_path, cli_runner):
    p = tmp_path / "c.csv"
    write_table(valid_frame(10, seed=9).rename(columns={"bmi_kg_m2": "BMI", "lactate_mmol_l": "lactate"}), p)
    out = json.loads(_validate(cli_runner, p, "--json").stdout)
    assert out["unknown_columns"] == ["BMI", "lactate"]
    assert out["unknown_column_hints"] == {"BMI": ["bmi_kg_m2"], "lactate": ["lactate_mmol_l"]}
    table = _validate(cli_runner, p).stdout
    assert "unknown columns, not used: BMI (looks like bmi_kg_m2), lactate (looks like lactate_mmol_l)" in table
