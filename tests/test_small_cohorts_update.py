"""External validation (`eih evaluate`), the `eih score` hint for files with outcomes, and
site updating (`eih update`): the step chosen by cross-validation, the lineage in the
registered version's tags, metadata and card."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import use_store

from training import update_steps

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    from rich.console import Console

    from simulation import simulate
    from training.config import TrainConfig
    from training.train import train

    d = tmp_path_factory.mktemp("update")
    with use_store(f"sqlite:///{d}/mlflow.db"):
        df, _ = simulate(600, seed=4, n_sites=1)
        df.to_csv(d / "dev.csv", index=False)
        site, _ = simulate(1200, seed=6, n_sites=4)
        site = site.loc[site["site"] == "site_02"]
        site.to_csv(d / "site.csv", index=False)
        # a boosted parent (the refit step continues its trees); at 600 people the family choice may go either way
        cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=30, max_rounds=60, validation="holdout", families=("xgboost",))
        res = train(d / "dev.csv", cfg=cfg, seed=0, registered_model="dev", console=Console(quiet=True))
        yield d, f"models:/dev/{res.model_version}"


def test_evaluate_logs_a_run_with_intervals_groups_and_an_html_report(parent):
    from mlflow import MlflowClient

    from training.evaluate_cli import evaluate_file

    d, uri = parent
    run_id, overall, groups = evaluate_file(d / "site.csv", uri, n_boot=50, out=d / "ext.html")
    for k in ("log_loss", "null_log_loss", "paired_log_loss_diff_vs_null", "auroc_macro", "calibration_slope_hyperalgesia",
              "citl_hyperalgesia"):
        assert k in overall and f"{k}_ci_low" in overall, k
    assert overall["log_loss_ci_low"] < overall["log_loss"] < overall["log_loss_ci_high"]
    assert set(groups["group"]) <= {"site", "pain_condition"} and len(groups) >= 1
    run = MlflowClient().get_run(run_id)
    assert "external_log_loss" in run.data.metrics and run.data.tags["kind"] == "external_validation"
    assert {a.path for a in MlflowClient().list_artifacts(run_id, "report")} >= {"report/external_validation.html"}
    assert "Per site and per pain condition" in (d / "ext.html").read_text()
    # the intervals' coverage, overall and per group, with a flag wherever it is off nominal by > 5 points
    assert 0.5 < overall["interval80_coverage"] < overall["interval90_coverage"] <= 1.0
    assert {"interval80_coverage", "interval90_coverage"} <= set(groups.columns)
    assert "external_interval90_coverage" in run.data.metrics


def test_coverage_flags_name_the_group_and_level_off_nominal():
    import pandas as pd

    from training.external import coverage_flags

    groups = pd.DataFrame([{"group": "site", "level": "site_02", "interval80_coverage": 0.71,
                            "interval90_coverage": 0.86},
                           {"group": "pain_condition", "level": "fibromyalgia", "interval80_coverage": 0.79,
                            "interval90_coverage": 0.95}])
    flags = coverage_flags({"interval80_coverage": 0.78, "interval90_coverage": 0.91}, groups)
    assert flags == ["site site_02: the 80% intervals held 71% of measured changes (more than 5% off nominal)"]


def test_score_on_a_file_with_outcomes_points_to_evaluate(parent):
    from typer.testing import CliRunner

    from eih.cli import app

    d, uri = parent
    r = CliRunner().invoke(app, ["score", str(d / "site.csv"), "--out", str(d / "scores.csv"), "--model", uri])
    assert r.exit_code == 0, r.output
    assert "eih evaluate" in r.output


def test_update_chooses_a_step_and_records_the_lineage(parent):
    from mlflow import MlflowClient
    from rich.console import Console

    from model_runtime.loading import load_model
    from training.update import update

    d, uri = parent
    res = update(d / "site.csv", uri, repeats=1, n_boot=50, registered_model="dev", console=Console(quiet=True))
    n_site = len(__import__("pandas").read_csv(d / "site.csv"))
    assert n_site < update_steps.MIN_REFIT_PEOPLE  # a small site: no refit on the ladder
    ladder = (*update_steps.STEPS[:3], update_steps.SHRUNK)
    pooled = {"in_the_large_pooled", "recalibrate_pooled"}
    assert res.step in ladder and set(res.log_loss) == set(ladder) | pooled
    run = MlflowClient().get_run(res.run_id)
    assert run.data.tags["update_step"] == res.step and run.data.tags["parent_version"] == uri.rsplit("/", 1)[1]
    if res.version is not None:
        mv = MlflowClient().get_model_version("dev", res.version)
        assert mv.tags["update_step"] == res.step and mv.tags["parent_model"] == "dev/" + uri.rsplit("/", 1)[1]
        child = load_model(f"models:/dev/{res.version}").predictor
        assert child.meta.extra["lineage"]["step"] == res.step
        ex = child.explain(__import__("pandas").read_csv(d / "site.csv").head(20))
        assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4  # explanations stay exact


def test_each_step_is_an_exact_model_of_the_same_boosters(parent):
    import pandas as pd

    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from model_runtime.loading import load_model

    d, uri = parent
    p = load_model(uri).predictor
    site = validate_frame(pd.read_csv(d / "site.csv")).valid
    y = response_codes(eih_pct(site), 10.0).astype("int64")
    for step in (*update_steps.STEPS, update_steps.SHRUNK):
        child = update_steps.fit_step(step, p, site, y)
        ex = child.explain(site.head(30))
        assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4, step
    big = update_steps.fit_step("in_the_large", p, site, y)
    assert np.allclose(big.temperature, p.temperature) and big.bias[1] == pytest.approx(p.bias[1])


def test_the_shrunk_recalibration_weighs_the_parent_as_1600_people(parent):
    """At 200 people the shrunk step's margins are 8/9 x the parent's + 1/9 x the full
    recalibration's, for both outputs, and a proven step's 0.5 x + 0.5 x; with no step proven
    the shrunk step is taken only when its out-of-fold log-loss is not above the parent's."""
    import pandas as pd

    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from model_runtime.loading import load_model

    d, uri = parent
    p = load_model(uri).predictor
    site = validate_frame(pd.read_csv(d / "site.csv")).valid.iloc[:200]
    y = response_codes(eih_pct(site), 10.0).astype("int64")
    full = update_steps.fit_step("recalibrate", p, site, y)
    shrunk = update_steps.fit_step(update_steps.SHRUNK, p, site, y)
    assert np.allclose(shrunk.margins(site), (8 * p.margins(site) + full.margins(site)) / 9, atol=1e-9)
    assert not np.allclose(full.margins(site), p.margins(site), atol=1e-3)  # the weight is visible
    # a proven calibration step is registered pooled halfway (the parent as 200 people) at 200 people
    proven = update_steps.fit_update("recalibrate", p, site, y)
    assert np.allclose(proven.margins(site), 0.5 * p.margins(site) + 0.5 * full.margins(site), atol=1e-9)
    large = update_steps.fit_step("in_the_large", p, site, y)
    assert np.allclose(update_steps.fit_update("in_the_large", p, site, y).margins(site),
                       0.5 * p.margins(site) + 0.5 * large.margins(site), atol=1e-9)
    assert update_steps.fit_update(update_steps.SHRUNK, p, site, y).margins(site) == pytest.approx(shrunk.margins(site))
    per = {"none": 0.90, "in_the_large": 0.91, "recalibrate": 0.95, "refit_offset": 0.97}  # none proven
    oof = {s: np.zeros((1, 4, 3)) for s in (*update_steps.STEPS, update_steps.SHRUNK)}
    for s, v in per.items():  # each person's probability of the observed class gives that log-loss
        oof[s][0, :, 0] = np.exp(-v)
    yy = np.zeros(4, dtype="int64")
    oof[update_steps.SHRUNK][0, :, 0] = np.exp(-0.899)
    assert update_steps.choose(oof, yy, n_boot=20)[0] == update_steps.SHRUNK
    oof[update_steps.SHRUNK][0, :, 0] = np.exp(-0.901)
    assert update_steps.choose(oof, yy, n_boot=20)[0] == "none"


def test_a_boosted_parent_is_refitted_only_from_500_people(parent):
    """Below MIN_REFIT_PEOPLE the ladder stops at recalibration (its cross-validation never
    fits the offset trees); from there on the refit is a step like the others."""
    import pandas as pd

    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from model_runtime.loading import load_model

    d, uri = parent
    p = load_model(uri).predictor
    assert update_steps.MIN_REFIT_PEOPLE == 500
    assert update_steps.ladder(p, 499) == ("none", "in_the_large", "recalibrate", update_steps.SHRUNK)
    assert update_steps.ladder(p, 500) == (*update_steps.STEPS, update_steps.SHRUNK)
    site = validate_frame(pd.read_csv(d / "site.csv")).valid.iloc[:120]
    y = response_codes(eih_pct(site), 10.0).astype("int64")
    oof = update_steps.out_of_fold(p, site, y, repeats=1, folds=3, seed=0)
    assert "refit_offset" not in oof and set(oof) == {"none", "in_the_large", "recalibrate", update_steps.SHRUNK,
                                                      "in_the_large_pooled", "recalibrate_pooled"}
    assert update_steps.choose(oof, y, n_boot=20)[0] != "refit_offset"
