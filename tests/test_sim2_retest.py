"""Test-retest: the same people and protocol on another day, reliability inside Aron 2024."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts import validate_frame
from data_contracts.fields import FIELDS
from eih.cli import app
from simulation import simulate
from simulation.calibration import calibration_report

SAME_DAY_FIELDS = ("ppt_baseline_kpa", "lactate_mmol_l", "ppt_post_kpa")


def test_retest_keeps_the_format_people_and_protocol():
    cohort, oracle, retest = simulate(3000, seed=3, n_sites=2, retest=True)
    assert list(retest.columns) == [f.name for f in FIELDS]
    assert validate_frame(retest).n_rejected == 0
    pd.testing.assert_series_equal(retest["subject_id"], cohort["subject_id"])
    for name in retest.columns:
        if name not in SAME_DAY_FIELDS:
            pd.testing.assert_series_equal(retest[name], cohort[name], obj=name)
    assert (retest["lactate_mmol_l"].isna() == cohort["lactate_mmol_l"].isna()).all()
    assert not np.allclose(retest["ppt_baseline_kpa"], cohort["ppt_baseline_kpa"])
    # asking for the retest never changes the cohort or its oracle
    c2, o2 = simulate(3000, seed=3, n_sites=2)
    pd.testing.assert_frame_equal(c2, cohort)
    pd.testing.assert_frame_equal(o2, oracle)


@pytest.mark.parametrize("seed", [5, 7, 11])
def test_reliability_inside_the_published_ranges(seed):
    cohort, _, retest = simulate(20_000, seed=seed, retest=True)
    rows = {t["id"]: t for t in calibration_report(cohort, retest=retest)["targets"]}
    for id_ in ("14a", "14b", "14c"):
        assert rows[id_]["passed"] is True, (id_, rows[id_]["simulated"])
    assert 0.0 <= rows["14a"]["value"] <= 0.61
    assert 0.01 <= rows["14b"]["value"] <= 0.46
    assert 10.0 <= rows["14c"]["value"] <= 21.0


def test_retest_must_cover_the_cohort():
    cohort, _, retest = simulate(1000, seed=1, retest=True)
    with pytest.raises(ValueError, match="retest file"):
        calibration_report(cohort, retest=retest.iloc[:-5])


def test_cli_writes_the_retest_and_reports_it(cli_runner, tmp_path):
    out, rt = tmp_path / "c.parquet", tmp_path / "r.csv"
    r = cli_runner.invoke(app, ["simulate", "--n", "20000", "--seed", "7", "--out", str(out), "--retest", str(rt)])
    assert r.exit_code == 0, r.output
    back = pd.read_csv(rt)
    assert (back["subject_id"] == pd.read_parquet(out)["subject_id"]).all()
    r = cli_runner.invoke(app, ["calibrate-report", str(out), "--retest", str(rt)])
    assert r.exit_code == 0, r.output
    assert "ICC" in r.output and "kappa" in r.output and "SDC" in r.output and "docs" not in r.output
    r = cli_runner.invoke(app, ["simulate", "--n", "10", "--seed", "1", "--out", str(out), "--retest", str(out)])
    assert r.exit_code == 2 and "--retest must differ" in r.output
