"""`eih template`: a blank CSV with exactly the contract's header, and a data dictionary
beside it with one row per field."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from test_contract_support import valid_frame

from data_contracts import validate_frame
from data_contracts.fields import FIELDS, KNOWN_COLUMNS
from data_contracts.io import read_header, read_table
from data_contracts.template import DICTIONARY_COLUMNS, data_dictionary, dictionary_path, write_template
from data_contracts.validate import ContractFileError
from eih.cli import app


def _rows(path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_template_is_exactly_the_contract_header(tmp_path):
    template, dictionary = write_template(tmp_path / "cohort.csv")
    assert template == tmp_path / "cohort.csv"
    assert dictionary == tmp_path / "cohort.dictionary.csv" == dictionary_path(template)
    assert _rows(template) == [list(KNOWN_COLUMNS)]  # the header, no rows
    header = read_header(template)
    assert header.columns == list(KNOWN_COLUMNS) and header.notices == []


def test_dictionary_has_one_row_per_field_in_contract_order(tmp_path):
    _, path = write_template(tmp_path / "cohort.csv")
    d = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(d.columns) == DICTIONARY_COLUMNS
    assert d["field"].tolist() == list(KNOWN_COLUMNS) and len(d) == len(FIELDS)
    for f, row in zip(FIELDS, d.to_dict(orient="records"), strict=True):
        assert row["kind"] == f.kind and row["unit"] == f.unit and row["label"]
        assert row["rule"].startswith(f"{f.name} is {f.rule}")
        if f.required:
            assert row["required"] == "required"
        else:
            assert row["required"].startswith(("optional", "required when "))
        if f.kind == "number":
            assert row["allowed"].startswith(f"{f.min:g} to {f.max:g}")
        elif f.kind == "category":
            assert row["allowed"].split(" | ") == list(f.categories)
        for hint in f.hints:
            assert hint.message in row["unit_slips"]
    by = d.set_index("field")
    assert by.loc["bdnf_matrix", "required"] == "required when bdnf_ng_ml is given"
    assert by.loc["ppt_post_kpa", "role"] == "outcome (training data only)"
    assert "pain_free requires pain_duration_months = 0" in by.loc["pain_duration_months", "rule"]


def test_a_filled_template_is_a_valid_cohort(tmp_path):
    template, _ = write_template(tmp_path / "cohort.csv")
    rows = valid_frame(25, seed=6)
    rows[list(KNOWN_COLUMNS)].to_csv(template, mode="a", header=False, index=False)
    report = validate_frame(read_table(template))
    assert (report.n_valid, report.n_rejected, report.unknown_columns) == (25, 0, [])


def test_template_never_replaces_a_file_unless_asked(tmp_path):
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("keep me\n")
    with pytest.raises(ContractFileError, match="already exists"):
        write_template(cohort)
    assert cohort.read_text() == "keep me\n"
    write_template(cohort, overwrite=True)
    assert _rows(cohort) == [list(KNOWN_COLUMNS)]
    with pytest.raises(ContractFileError, match=r"\.csv file"):
        write_template(tmp_path / "cohort.parquet")


def test_cli_template(tmp_path, cli_runner):
    out = tmp_path / "new" / "t.csv"
    result = cli_runner.invoke(app, ["template", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "t.dictionary.csv" in result.stdout
    assert _rows(out) == [list(KNOWN_COLUMNS)]
    assert len(_rows(dictionary_path(out))) == 1 + len(FIELDS)
    again = cli_runner.invoke(app, ["template", "--out", str(out)])
    assert again.exit_code == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    assert cli_runner.invoke(app, ["template", "--out", str(out), "--force"]).exit_code == 0
    assert cli_runner.invoke(app, ["template", "--out", str(tmp_path / "t.xlsx")]).exit_code == 2


def test_data_dictionary_matches_fields():
    d = data_dictionary()
    assert d["field"].tolist() == [f.name for f in FIELDS]
    assert d.notna().all().all()
