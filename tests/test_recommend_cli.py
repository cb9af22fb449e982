"""`eih recommend`, `eih oracle` and `eih train --protocols` through the real command line, on
the session's trained model (tests/model_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_contracts.fields import RESPONSES
from eih.cli import app
from serving.recommend import PROTOCOL_FIELDS, default_grid

COLUMNS = ["subject_id", "rank", "exercise_modality", "exercise_intensity_pct", "exercise_duration_min",
           "p_hypoalgesia", "p_no_change", "p_hyperalgesia", "benefit", "ranking_benefit", "expected_change_pct",
           "change_sd_pct", "change_lo80_pct", "change_hi80_pct", "change_lo90_pct", "change_hi90_pct", "warnings"]


def _run(cli_runner, *args):
    return cli_runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def people_file(trained_model, tmp_path_factory):
    """60 people without a protocol (the columns left out), one of them out of range."""
    from simulation import simulate

    d = tmp_path_factory.mktemp("recommend")
    df, _ = simulate(60, seed=606, n_sites=1)
    df = df.drop(columns=[*PROTOCOL_FIELDS, "ppt_post_kpa"])
    df.loc[7, "age_years"] = 7.0
    path = d / "people.csv"
    df.to_csv(path, index=False)
    return path


def test_recommend_top3_counts_rejects_and_mlflow(cli_runner, trained_model, people_file, tmp_path):
    from mlflow import MlflowClient

    out = tmp_path / "rec.parquet"
    r = _run(cli_runner, "recommend", people_file, "--out", out, "--model", trained_model.uri, "--no-progress",
             "--max-hyperalgesia", "0.25")
    assert r.exit_code == 0, r.output
    assert "rows read 60 = recommended for 59 + rejected 1" in r.output
    assert "Causal reading supported" in r.output
    rec = pd.read_parquet(out)
    assert list(rec.columns) == COLUMNS
    rejects = pd.read_csv(tmp_path / "rec.rejects.csv")
    assert list(rejects["field"]) == ["age_years"] and "7" not in rejects["problem"].iloc[0]
    assert rec["subject_id"].nunique() == 59
    got = rec.dropna(subset=["rank"])
    assert got.groupby("subject_id")["rank"].apply(list).map(lambda x: x == list(range(1, len(x) + 1))).all()
    assert (got.groupby("subject_id").size() <= 3).all()
    assert (got["p_hyperalgesia"] <= 0.25).all()
    np.testing.assert_allclose(got[[f"p_{r}" for r in RESPONSES]].sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(got["benefit"], got["p_hypoalgesia"] - got["p_hyperalgesia"], atol=1e-12)
    assert (got["change_lo90_pct"] <= got["change_lo80_pct"]).all() and (got["change_hi80_pct"] <= got["change_hi90_pct"]).all()
    assert (got["change_lo80_pct"] < got["expected_change_pct"]).all() and (got["expected_change_pct"] < got["change_hi80_pct"]).all()
    assert (got.groupby("subject_id")["ranking_benefit"].apply(lambda b: np.all(np.diff(b.to_numpy()) <= 1e-12))).all()
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("eih-recommend").experiment_id],
                                      max_results=1)
    run = runs[0]
    assert run.data.tags["protocols"] == "randomized" and run.data.metrics["rows_rejected"] == 1
    assert run.data.params["max_hyperalgesia"] == "0.25"
    logged = " ".join(list(run.data.params.values()) + list(run.data.tags.values()))
    assert "P0000001" not in logged


def test_recommend_top_all_lists_every_protocol_within_the_constraints(cli_runner, trained_model, people_file, tmp_path):
    out = tmp_path / "all.csv"
    r = _run(cli_runner, "recommend", people_file, "--out", out, "--model", trained_model.uri, "--no-progress",
             "--top", "all", "--modalities", "aerobic,isometric", "--max-intensity", "70", "--max-duration", "20")
    assert r.exit_code == 0, r.output
    rec = pd.read_csv(out)
    g = default_grid(("aerobic", "isometric"))
    allowed = int(((g.intensity <= 70) & (g.duration <= 20)).sum())
    assert (rec.groupby("subject_id").size() == allowed).all()
    assert set(rec["exercise_modality"]) <= {"aerobic", "isometric"}
    assert rec["exercise_intensity_pct"].max() <= 70 and rec["exercise_duration_min"].max() <= 20
    first = rec[rec["rank"] == 1].set_index("subject_id")["ranking_benefit"]
    assert (rec.groupby("subject_id")["ranking_benefit"].max() == first).all()


def test_recommend_refusals_exit_2(cli_runner, trained_model, people_file, tmp_path, monkeypatch):
    r = _run(cli_runner, "recommend", people_file, "--out", tmp_path / "x.txt", "--model", trained_model.uri)
    assert r.exit_code == 2 and "csv or .parquet" in r.output
    r = _run(cli_runner, "recommend", people_file, "--out", tmp_path / "x.csv", "--top", "zero")
    assert r.exit_code == 2
    r = _run(cli_runner, "recommend", people_file, "--out", tmp_path / "x.csv", "--modalities", "swimming")
    assert r.exit_code == 2 and "aerobic" in r.output

    from types import SimpleNamespace

    from test_recommend import lactate_predictor

    import model_runtime.loading as loading

    fake = SimpleNamespace(predictor=lactate_predictor(), uri="models:/research/1", name="research", version="1",
                           run_id=None)
    monkeypatch.setattr(loading, "load_model", lambda uri=None: fake)
    r = _run(cli_runner, "recommend", people_file, "--out", tmp_path / "x.csv", "--no-progress")
    assert r.exit_code == 2 and "measured after the bout" in r.output
    assert not (tmp_path / "x.csv").exists()


def test_oracle_command_gives_the_simulators_truth(cli_runner, small_cohort, tmp_path):
    src = tmp_path / "cohort.parquet"
    small_cohort.frame.iloc[:200].to_parquet(src, index=False)
    out = tmp_path / "truth.csv"
    r = _run(cli_runner, "oracle", src, "--out", out)
    assert r.exit_code == 0, r.output
    truth = pd.read_csv(out)
    assert list(truth.columns) == ["subject_id", *[f"p_{x}" for x in RESPONSES]]
    o = small_cohort.oracle.iloc[:200]
    assert (truth["subject_id"] == o["subject_id"]).all()
    site = [f"p_site_{x}" for x in RESPONSES]
    np.testing.assert_allclose(truth.iloc[:, 1:].to_numpy(), o[site].to_numpy(), atol=1e-12)
    r = _run(cli_runner, "oracle", src, "--out", out, "--site", "new")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(pd.read_csv(out).iloc[:, 1:].to_numpy(), o[[f"p_{x}" for x in RESPONSES]].to_numpy(),
                               atol=1e-12)
    r = _run(cli_runner, "oracle", src, "--out", out, "--before-bout")
    assert r.exit_code == 0 and "before-bout fields only" in r.output
    lac = small_cohort.frame.iloc[:200]["lactate_mmol_l"].notna().to_numpy()
    changed = np.abs(pd.read_csv(out).iloc[:, 1:].to_numpy() - o[site].to_numpy()).max(axis=1) > 1e-9
    assert not changed[~lac].any() and changed[lac].mean() > 0.5  # lactate matters where the protocol has a dose
    assert _run(cli_runner, "oracle", src, "--out", out, "--site", "moon").exit_code == 2


def test_train_records_how_protocols_were_assigned(cli_runner, trained_model, tmp_path):
    from mlflow import MlflowClient

    from model_runtime.loading import load_model
    from training.train import resolve_protocols

    assert resolve_protocols(None, synthetic=True) == "randomized"
    assert resolve_protocols(None, synthetic=False) == "observational"
    assert resolve_protocols("observational", synthetic=True) == "observational"
    with pytest.raises(ValueError, match="randomized, observational"):
        resolve_protocols("random", synthetic=False)
    run = MlflowClient().get_run(trained_model.result.run_id)
    assert run.data.tags["protocols"] == "randomized" and run.data.tags["after_bout_fields"] == "false"
    assert load_model(trained_model.uri).predictor.meta.extra["protocols"] == "randomized"
    local = MlflowClient().download_artifacts(trained_model.result.run_id, "report/model_card.md", str(tmp_path))
    text = Path(local).read_text()
    assert "## Choosing a protocol" in text and "assigned independently of the person (randomized" in text
    lam = load_model(trained_model.uri).predictor.meta.extra["pooling"]["shrinkage"]
    assert f"personal part of the model's protocol differences is shrunk by {lam:.2f}" in text
    r = _run(cli_runner, "train", "--data", trained_model.cohort.path, "--protocols", "sometimes")
    assert r.exit_code == 2 and "protocols must be one of randomized, observational" in r.output
