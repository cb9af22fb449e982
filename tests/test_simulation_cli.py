"""`eih simulate` and `eih calibrate-report` through the real command-line app."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_contracts import validate_frame
from data_contracts.fields import RESPONSES
from eih.cli import app
from simulation import oracle_probabilities

P_COLUMNS = [f"p_{r}" for r in RESPONSES]
SITE_COLUMNS = [f"p_site_{r}" for r in RESPONSES]


def _run(cli_runner, *args):
    return cli_runner.invoke(app, [str(a) for a in args])


def test_simulate_parquet_with_default_oracle_path_same_bytes(cli_runner, tmp_path):
    out = tmp_path / "cohort.parquet"
    r = _run(cli_runner, "simulate", "--n", 3000, "--seed", 5, "--out", out)
    assert r.exit_code == 0, r.output
    oracle_path = tmp_path / "cohort.oracle.parquet"
    assert out.exists() and oracle_path.exists()
    assert "3000 rows" in r.output
    cohort, oracle = pd.read_parquet(out), pd.read_parquet(oracle_path)
    assert list(oracle.columns) == ["subject_id", *P_COLUMNS, *SITE_COLUMNS]
    assert validate_frame(cohort).n_rejected == 0
    np.testing.assert_allclose(oracle[P_COLUMNS].to_numpy(), oracle_probabilities(cohort), atol=1e-12)
    first = (out.read_bytes(), oracle_path.read_bytes())
    r = _run(cli_runner, "simulate", "--n", 3000, "--seed", 5, "--out", out)
    assert r.exit_code == 0, r.output
    assert (out.read_bytes(), oracle_path.read_bytes()) == first


def test_simulate_csv_with_sites_and_oracle_out(cli_runner, tmp_path):
    out, orc = tmp_path / "c.csv", tmp_path / "truth.csv"
    r = _run(cli_runner, "simulate", "--n", 800, "--seed", 2, "--out", out, "--oracle-out", orc, "--sites", 3)
    assert r.exit_code == 0, r.output
    cohort = pd.read_csv(out)
    assert cohort["site"].nunique() == 3
    oracle = pd.read_csv(orc)
    assert (oracle["subject_id"] == cohort["subject_id"]).all()
    np.testing.assert_allclose(oracle[P_COLUMNS].sum(axis=1), 1.0, atol=1e-9)
    before = out.read_bytes()
    _run(cli_runner, "simulate", "--n", 800, "--seed", 2, "--out", out, "--oracle-out", orc, "--sites", 3)
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n", 0, "--seed", 1, "--out", "x.csv"], "--n must be at least 1"),
        (["--n", -3, "--seed", 1, "--out", "x.csv"], "--n must be at least 1"),
        (["--n", 10, "--seed", 1, "--out", "x.txt"], "unknown suffix"),
        (["--n", 10, "--seed", 1, "--out", "x.csv", "--oracle-out", "o.json"], "unknown suffix"),
        (["--n", 10, "--seed", 1, "--out", "x.csv", "--sites", 0], "--sites must be at least 1"),
        (["--n", 2, "--seed", 1, "--out", "x.csv", "--sites", 3], "--sites cannot exceed --n"),
    ],
)
def test_simulate_bad_arguments_one_line_error(cli_runner, tmp_path, args, needle):
    args = [str(tmp_path / a) if isinstance(a, str) and a.endswith((".csv", ".txt", ".json")) else a for a in args]
    r = _run(cli_runner, "simulate", *args)
    assert r.exit_code == 2
    assert needle in r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1
    assert not any(tmp_path.iterdir())


def test_help_texts_on_every_option(cli_runner):
    for command, options in (
        ("simulate", ["--n", "--seed", "--out", "--oracle-out", "--sites", "--world", "--retest"]),
        ("calibrate-report", ["--json", "--retest", "--world"]),
    ):
        r = _run(cli_runner, command, "--help")
        assert r.exit_code == 0
        for opt in options:
            assert opt in r.output
    import inspect

    import typer

    from simulation import cli

    for fn in (cli.simulate_cmd, cli.calibrate_report_cmd):
        for p in inspect.signature(fn).parameters.values():
            info = p.default
            assert isinstance(info, (typer.models.OptionInfo, typer.models.ArgumentInfo))
            assert info.help and len(info.help) > 20, p.name


@pytest.fixture(scope="module")
def calibrated_file(tmp_path_factory):
    from simulation import simulate

    d = tmp_path_factory.mktemp("calib")
    cohort, _ = simulate(20_000, seed=7)
    path = d / "cohort.parquet"
    cohort.to_parquet(path, index=False)
    return path, cohort


def test_calibrate_report_table(cli_runner, calibrated_file):
    path, _ = calibrated_file
    r = _run(cli_runner, "calibrate-report", path)
    assert r.exit_code == 0, r.output
    for needle in ("pain-free, isometric", "virtual crossover", "AUROC", "R² everything",
                   "person alone", "all targets pass", "class shares by label threshold", "30 %"):
        assert needle in r.output
    assert r.output.count("pass") >= 14


def test_calibrate_report_json(cli_runner, calibrated_file):
    path, _ = calibrated_file
    r = _run(cli_runner, "calibrate-report", path, "--json")
    assert r.exit_code == 0
    report = json.loads(r.output)
    assert report["all_passed"] is True
    ids = [t["id"] for t in report["targets"]]
    assert ids == ["1", "2", "3", "4", "5", "6", "7", "8", "9a", "9b", "10", "11", "12", "13",
                   "14a", "14b", "14c", "15", "16a", "16b", "17", "18a", "18b"]
    for t in report["targets"]:
        assert {"published", "tolerance", "simulated", "passed", "method"} <= set(t)
    assert 0.65 <= report["oracle_auroc_macro"] <= 0.80
    # class shares by label threshold: each row sums to 1, no change grows as the threshold widens
    by_t = report["class_shares_by_threshold"]
    assert list(by_t) == ["5", "10", "15", "20", "30"]
    assert by_t["10"] == pytest.approx(report["class_shares"])
    assert all(sum(row.values()) == pytest.approx(1.0) for row in by_t.values())
    no_change = [row["no_change"] for row in by_t.values()]
    assert no_change == sorted(no_change) and no_change[-1] > no_change[0] + 0.2
    assert report["r2_everything"] <= 0.40


def test_calibrate_report_exit_1_when_a_target_fails(cli_runner, calibrated_file, tmp_path):
    _, cohort = calibrated_file
    bad = cohort.copy()
    fm = bad["pain_condition"] == "fibromyalgia"
    bad.loc[fm, "ppt_post_kpa"] = bad.loc[fm, "ppt_baseline_kpa"] * 1.3  # FM responds like controls
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    r = _run(cli_runner, "calibrate-report", path, "--json")
    assert r.exit_code == 1
    by_id = {t["id"]: t for t in json.loads(r.output)["targets"]}
    assert by_id["7"]["passed"] is False


def test_calibrate_report_unusable_file(cli_runner, tmp_path, calibrated_file):
    r = _run(cli_runner, "calibrate-report", tmp_path / "missing.parquet")
    assert r.exit_code == 2 and "no such file" in r.output and "Traceback" not in r.output
    _, cohort = calibrated_file
    p = tmp_path / "no_outcome.csv"
    cohort.drop(columns=["ppt_post_kpa"]).head(50).to_csv(p, index=False)
    r = _run(cli_runner, "calibrate-report", p)
    assert r.exit_code == 2 and "ppt_post_kpa" in r.output and "Traceback" not in r.output


def test_calibrate_report_on_a_tiny_cohort_fails_cleanly(cli_runner, tmp_path):
    out = tmp_path / "tiny.csv"
    assert _run(cli_runner, "simulate", "--n", 25, "--seed", 1, "--out", out).exit_code == 0
    r = _run(cli_runner, "calibrate-report", out, "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    report = json.loads(r.output)  # valid JSON: undefined figures are null, not NaN
    assert report["all_passed"] is False
    r = _run(cli_runner, "calibrate-report", out)
    assert r.exit_code == 1 and "fail" in r.output
