"""Batch scoring (`eih score`, serving/batch/): nothing lost, same numbers as the
predictor, local and Dask identical, no finished-looking output after a crash, the
MLflow run and the cohort report.

Most tests use a small model trained here in a second (saved as an MLflow pyfunc
directory, loaded through the same `load_model` path as the registry); the slow tier
adds the Dask engine, killed processes and the session's registered @champion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from data_contracts.fields import RESPONSES
from data_contracts.validate import PROBLEM_COLUMNS, validate_frame
from serving import batch

ROOT = Path(__file__).resolve().parent.parent
N = 3000
CHUNK = 700  # 5 chunks: duplicates and faults cross chunk boundaries


# ------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------
def _fit_predictor(cohort: pd.DataFrame):
    import xgboost as xgb

    from data_contracts.labels import eih_pct, response_codes
    from features.pipeline import ContractFeatures
    from features.reference import build_reference, numeric_reference
    from model_runtime.metadata import ModelMeta
    from model_runtime.predictor import EIHPredictor

    valid = validate_frame(cohort).valid
    y = response_codes(eih_pct(valid), 10.0)
    X = ContractFeatures().fit(None).transform(valid)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 2,
                         "seed": 1}, xgb.DMatrix(X, label=y, enable_categorical=True), num_boost_round=25)
    meta = {
        "contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(X.columns), "outputs": list(RESPONSES),
        "calibration": {"temperature": 1.25, "bias": [0.05, -0.02, 0.1], "applied": True},
        "risk_cutoffs": {"moderate": 0.2, "high": 0.35}, "reference": build_reference(X),
    }
    pred = EIHPredictor(booster, ModelMeta.from_dict(meta))
    ex = pred.explain(valid.iloc[:1500])
    meta["attribution_reference"] = {f"{o}__{f}": numeric_reference(ex.contributions[:, k, j])
                                     for k, o in enumerate(RESPONSES) for j, f in enumerate(pred.fields)}
    return booster, meta


def _save_pyfunc(booster, meta, directory: Path) -> Path:
    import mlflow

    pred_dir = directory / "predictor"  # what EIHPredictor.load reads in the pyfunc's load_context
    pred_dir.mkdir(parents=True)
    booster.save_model(str(pred_dir / "booster.ubj"))
    (pred_dir / "meta.json").write_text(json.dumps(meta))
    model_dir = directory / "model"
    mlflow.pyfunc.save_model(str(model_dir), python_model=str(ROOT / "model_runtime" / "pyfunc_model.py"),
                             artifacts={"predictor": str(pred_dir)}, pip_requirements=[])
    return model_dir


@pytest.fixture(scope="session")
def batch_env(tmp_path_factory, mlflow_store) -> SimpleNamespace:
    """A simulated cohort with planted bad rows (CSV and Parquet), and a small model."""
    from model_runtime.loading import load_model
    from simulation import simulate

    d = tmp_path_factory.mktemp("batch")
    train, _ = simulate(2000, seed=5, n_sites=2)
    booster, meta = _fit_predictor(train)
    model_dir = _save_pyfunc(booster, meta, d / "m1")
    old_dir = d / "m2" / "model"  # the same model, saved as if trained with contract 2.0
    shutil.copytree(model_dir, old_dir)
    meta_file = next(old_dir.rglob("meta.json"))
    meta_file.write_text(json.dumps(dict(json.loads(meta_file.read_text()), contract_version="2.0")))

    cohort, _ = simulate(N, seed=6, n_sites=3)
    cohort = cohort.drop(columns=["ppt_post_kpa"])
    cohort["subject_id"] = cohort["subject_id"].astype(object)
    bad = {}
    cohort.loc[3, "age_years"] = 7.0; bad[3] = "age_years"  # noqa: E702
    cohort.loc[800, "bdnf_ng_ml"] = 2500.0; cohort.loc[800, "bdnf_matrix"] = "serum"; bad[800] = "bdnf_ng_ml"  # noqa: E702
    cohort.loc[1500, "pcs_total"] = np.nan; bad[1500] = "pcs_total"  # noqa: E702
    cohort.loc[2100, "subject_id"] = "bad id!"; bad[2100] = "subject_id"  # noqa: E702
    cohort.loc[2999, "exercise_intensity_pct"] = 0.7; bad[2999] = "exercise_intensity_pct"  # noqa: E702
    # a duplicate across chunks (rows 10 and 2500) and one inside a chunk (rows 20, 21)
    cohort.loc[2500, "subject_id"] = cohort.loc[10, "subject_id"]; bad[10] = bad[2500] = "subject_id"  # noqa: E702
    cohort.loc[21, "subject_id"] = cohort.loc[20, "subject_id"]; bad[20] = bad[21] = "subject_id"  # noqa: E702
    cohort["unexpected_column"] = 1
    pq_path = d / "cohort.parquet"
    cohort.to_parquet(pq_path, index=False)
    csv_path = d / "cohort.csv"
    text = cohort.to_csv(index=False).splitlines()
    # a text value in a numeric column (only possible in CSV): row 1200 (line 1201 + header)
    cells = text[1201].split(",")
    cells[cohort.columns.get_loc("cpm_pct")] = "n/d"
    text[1201] = ",".join(cells)
    csv_path.write_text("\n".join(text) + "\n")
    bad_csv = dict(bad)
    bad_csv[1200] = "cpm_pct"
    loaded = load_model(str(model_dir))
    return SimpleNamespace(dir=d, parquet=pq_path, csv=csv_path, bad=bad, bad_csv=bad_csv, model_dir=model_dir,
                           old_model_dir=old_dir, loaded=loaded, predictor=loaded.predictor, cohort=cohort)


RUNS = {
    # name: (source, output, options)
    "top_csv": ("csv", "top_csv.parquet", {"explain": "top", "log_mlflow": True, "report": True}),
    "top_parquet": ("parquet", "top_pq.parquet", {"explain": "top", "top_k": 4}),
    "full_parquet": ("parquet", "full.parquet", {"explain": "full"}),
    "full_csv": ("csv", "full.csv", {"explain": "full", "report": True}),
    "none_parquet": ("parquet", "none.parquet", {"explain": "none", "report": True}),
}


@pytest.fixture(scope="session")
def scored(batch_env, tmp_path_factory):
    """The standard runs, each scored once (lazily) and shared by the tests below."""
    d = tmp_path_factory.mktemp("scored")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            src, out, kw = RUNS[name]
            (d / name).mkdir()
            cache[name] = _score(batch_env, d / name, src=src, out=out, **kw)
        return cache[name]

    return get


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"subject_id": "str"})


def _score(env, tmp_path, src="csv", out="scores.parquet", report=False, client=None, **options):
    """`score_file` with the test defaults: CHUNK rows per chunk, no MLflow run, no report."""
    options.setdefault("chunk_rows", CHUNK)
    options.setdefault("log_mlflow", False)
    return batch.score_file(getattr(env, src), tmp_path / out, batch.ScoreOptions(**options), report=report,
                            loaded=env.loaded, client=client)


@pytest.fixture
def fail_chunk(monkeypatch):
    """`fail_chunk(i)` makes chunk i fail with a BatchError naming it, through the seam
    `serving.batch.chunk._chunk_hook`: in this process, and with `client=` on every
    Dask worker too (set back to a no-op when the test ends)."""
    from serving.batch import chunk

    def on_workers(index):  # nested, so Dask sends it by value
        from serving.batch import BatchError
        from serving.batch import chunk as worker_chunk

        def hook(i):
            if index is not None and i == index:
                raise BatchError(f"injected fault in chunk {i}")

        worker_chunk._chunk_hook = hook

    armed = []

    def arm(index: int, client=None) -> None:
        def hook(i):
            if i == index:
                raise batch.BatchError(f"injected fault in chunk {i}")

        monkeypatch.setattr(chunk, "_chunk_hook", hook)
        if client is not None:
            client.run(on_workers, index)
            armed.append(client)

    yield arm
    for client in armed:
        client.run(on_workers, None)


def _whole_file_report(path: Path):
    from data_contracts.io import read_table

    return validate_frame(read_table(path))


# ------------------------------------------------------------------------------------
# nothing lost: rejects, counts, order
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("src", ["csv", "parquet"])
def test_planted_bad_rows_end_in_rejects_and_nowhere_else(batch_env, scored, src):
    res = scored("top_csv" if src == "csv" else "top_parquet")
    bad = batch_env.bad_csv if src == "csv" else batch_env.bad
    out = _read(res.out)
    rej = pd.read_csv(res.rejects, dtype={"subject_id": "str"}, keep_default_na=False)
    assert list(rej.columns) == PROBLEM_COLUMNS
    rejected_rows = set(rej["row"] - 1)  # 1-based data rows
    assert rejected_rows == set(bad)
    for row, fieldname in bad.items():
        assert fieldname in set(rej.loc[rej["row"] == row + 1, "field"])
    # counts add up, and the output is every other row, in input order
    assert res.rows_read == N == res.rows_scored + res.rows_rejected
    assert res.rows_rejected == len(bad)
    expected_ids = batch_env.cohort["subject_id"].drop(index=list(bad)).astype(str).tolist()
    assert out["subject_id"].tolist() == expected_ids
    assert len(out) == res.rows_scored
    # the duplicated id is in no output row, and its copies are rejected in both chunks
    dup = batch_env.cohort.loc[10, "subject_id"]
    assert dup not in set(out["subject_id"])
    assert (rej["subject_id"] == dup).sum() == 2
    assert "duplicated subject_id" in rej.loc[rej["row"] == 2501, "problem"].iloc[0]
    # same rejects, same format as whole-file validation (`eih validate --rejects`)
    whole = _whole_file_report(getattr(batch_env, src)).problems.reset_index(drop=True)
    pd.testing.assert_frame_equal(rej, whole.assign(subject_id=whole["subject_id"].astype(str)), check_dtype=False)
    assert res.unknown_columns == ["unexpected_column"]
    assert not list(res.out.parent.glob("*.partial"))


def test_rejects_file_matches_eih_validate(batch_env, scored, tmp_path, cli_runner):
    from eih.cli import app

    res = scored("top_csv")
    r = cli_runner.invoke(app, ["validate", str(batch_env.csv), "--rejects", str(tmp_path / "validate_rejects.csv")])
    assert r.exit_code == 1, r.output
    assert (tmp_path / "validate_rejects.csv").read_bytes() == res.rejects.read_bytes()


def test_scan_ids_finds_duplicates_across_chunks(tmp_path):
    df = pd.DataFrame({"subject_id": ["a", "b", None, "c", "a", "", "d", "b", "nan", "e"]})
    p = tmp_path / "ids.csv"
    df.to_csv(p, index=False)
    n, dups = batch.scan_ids(p, chunk_rows=3)
    assert n == 10
    assert sorted(dups) == ["a", "b"]  # missing ids ("", "nan", empty) are not duplicates
    df["subject_id"] = [f"s{i}" for i in range(10)]
    df.to_parquet(tmp_path / "ids.parquet")
    n, dups = batch.scan_ids(tmp_path / "ids.parquet", chunk_rows=4)
    assert n == 10 and len(dups) == 0


def test_options_are_checked_when_built():
    for bad in ({"explain": "some"}, {"engine": "spark"}, {"top_k": 0}, {"chunk_rows": 0}):
        with pytest.raises(ValueError):
            batch.ScoreOptions(**bad)


def test_all_rows_rejected_gives_empty_output(batch_env, tmp_path):
    df = batch_env.cohort.iloc[:50].copy()
    df["age_years"] = 5.0
    src = tmp_path / "allbad.parquet"
    df.to_parquet(src, index=False)
    options = batch.ScoreOptions(log_mlflow=False, explain="full", chunk_rows=20)
    res = batch.score_file(src, tmp_path / "o.csv", options, loaded=batch_env.loaded, report=False)
    assert (res.rows_read, res.rows_scored, res.rows_rejected) == (50, 0, 50)
    out = pd.read_csv(res.out)
    assert len(out) == 0 and list(out.columns)[:6] == ["subject_id", "p_hypoalgesia", "p_no_change", "p_hyperalgesia",
                                                       "predicted_response", "hyperalgesia_risk"]


# ------------------------------------------------------------------------------------
# the same numbers as the predictor (and so as the HTTP service)
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def reference(batch_env) -> SimpleNamespace:
    """The predictor's own answer for the valid rows of the whole file."""
    from data_contracts.io import read_table

    valid = validate_frame(read_table(batch_env.parquet)).valid
    assert not valid.index.isin(list(batch_env.bad)).any()
    P, ex = batch_env.predictor.predict_and_explain(valid)
    return SimpleNamespace(valid=valid, P=P, ex=ex)


def test_full_explanations_equal_predictor_and_are_additive(batch_env, scored, reference):
    res = scored("full_parquet")
    out = pd.read_parquet(res.out)
    valid, P, ex = reference.valid, reference.P, reference.ex
    pred = batch_env.predictor
    assert out["subject_id"].tolist() == valid["subject_id"].tolist()
    for k, r in enumerate(RESPONSES):
        np.testing.assert_array_equal(out[f"p_{r}"].to_numpy(), P[:, k])
    np.testing.assert_array_equal(out["predicted_response"].to_numpy(), np.asarray(RESPONSES)[P.argmax(axis=1)])
    np.testing.assert_array_equal(out["hyperalgesia_risk"].to_numpy(), pred.risk_level(P[:, 2]))
    for k, o in enumerate(ex.outputs):
        np.testing.assert_array_equal(out[f"margin_{o}"].to_numpy(), ex.margins[:, k])
        np.testing.assert_array_equal(out[f"base_{o}"].to_numpy(), ex.base[:, k])
        cols = [f"contrib_{o}__{f}" for f in ex.fields]
        C = out[cols].to_numpy(dtype="float64")
        np.testing.assert_array_equal(C, ex.contributions[:, k, :])
        # additive: base + contributions = margin (1e-4), read back from the file
        np.testing.assert_allclose(out[f"base_{o}"].to_numpy() + C.sum(axis=1), out[f"margin_{o}"].to_numpy(), atol=1e-4)
    # every contract predictor is explained
    assert len([c for c in out.columns if c.startswith("contrib_")]) == len(ex.outputs) * len(ex.fields)


def test_full_explanations_in_csv_are_additive(batch_env, scored):
    res = scored("full_csv")
    out = pd.read_csv(res.out)
    pred = batch_env.predictor
    for o in pred.outputs:
        C = out[[f"contrib_{o}__{f}" for f in pred.fields]].to_numpy()
        np.testing.assert_allclose(out[f"base_{o}"] + C.sum(axis=1), out[f"margin_{o}"], atol=1e-4)
    margins = out[[f"margin_{o}" for o in pred.outputs]].to_numpy()
    np.testing.assert_allclose(pred.proba(margins), out[[f"p_{r}" for r in RESPONSES]].to_numpy(), atol=1e-9)


def test_one_record_equals_predict_and_explain(batch_env, tmp_path):
    """What the HTTP comparison relies on: a record scored in batch gets exactly the
    numbers `EIHPredictor.predict_and_explain` gives that record alone."""
    from data_contracts.examples import EXAMPLE_RECORD
    from serving.explain import top_fields

    src = tmp_path / "one.csv"
    pd.DataFrame([EXAMPLE_RECORD]).to_csv(src, index=False)
    for explain in ("full", "top"):
        res = batch.score_file(src, tmp_path / f"one_{explain}.parquet",
                               batch.ScoreOptions(log_mlflow=False, explain=explain, top_k=3), loaded=batch_env.loaded,
                               report=False)
        row = pd.read_parquet(res.out).iloc[0]
        P, ex = batch_env.predictor.predict_and_explain(validate_frame(pd.read_csv(src)).valid)
        assert [row[f"p_{r}"] for r in RESPONSES] == list(P[0])
        if explain == "full":
            last = ex.outputs[-1]
            assert row[f"margin_{last}"] == ex.margins[0, -1]
            assert row[f"contrib_{ex.outputs[0]}__cpm_pct"] == ex.contributions[0, 0, ex.fields.index("cpm_pct")]
        else:
            idx, val, tow = top_fields(ex.contributions, 3)
            assert [row[f"top{i + 1}_field"] for i in range(3)] == [ex.fields[j] for j in idx[0]]
            assert [row[f"top{i + 1}_contribution"] for i in range(3)] == list(val[0])
            assert [row[f"top{i + 1}_toward"] for i in range(3)] == [ex.outputs[j] for j in tow[0]]


def test_top_and_none_modes(batch_env, scored, reference):
    from serving.explain import top_fields

    valid, P, ex = reference.valid, reference.P, reference.ex
    pred = batch_env.predictor
    top = pd.read_parquet(scored("top_parquet").out)
    idx, val, tow = top_fields(ex.contributions, 4)
    assert [c for c in top.columns if c.startswith("top")] == [
        f"top{i}_{w}" for i in range(1, 5) for w in ("field", "contribution", "toward")]
    np.testing.assert_array_equal(top["top1_field"].to_numpy(), np.asarray(ex.fields)[idx[:, 0]])
    np.testing.assert_array_equal(top["top4_contribution"].to_numpy(), val[:, 3])
    np.testing.assert_array_equal(top["top2_toward"].to_numpy(), np.asarray(ex.outputs)[tow[:, 1]])
    none = pd.read_parquet(scored("none_parquet").out)
    assert list(none.columns) == ["subject_id", *[f"p_{r}" for r in RESPONSES], "predicted_response",
                                  "hyperalgesia_risk"]
    np.testing.assert_array_equal(none[[f"p_{r}" for r in RESPONSES]].to_numpy(), pred.predict_proba(valid))
    np.testing.assert_allclose(none[[f"p_{r}" for r in RESPONSES]].to_numpy(), P, atol=1e-6)


def test_results_do_not_depend_on_chunk_size(batch_env, scored, tmp_path):
    a = scored("full_parquet")
    b = _score(batch_env, tmp_path, src="parquet", out="b.parquet", explain="full", chunk_rows=3000)
    pd.testing.assert_frame_equal(pd.read_parquet(a.out), pd.read_parquet(b.out))
    assert a.rejects.read_bytes() == b.rejects.read_bytes()
    input_psi = lambda r: r.drift.loc[r.drift["kind"] == "input", "psi"].to_numpy()  # noqa: E731
    np.testing.assert_allclose(input_psi(a), input_psi(b), rtol=1e-12)


# ------------------------------------------------------------------------------------
# crashes leave nothing that looks finished
# ------------------------------------------------------------------------------------
def test_injected_fault_leaves_no_output(batch_env, tmp_path, mlflow_store, fail_chunk):
    from mlflow import MlflowClient

    fail_chunk(2)
    with pytest.raises(batch.BatchError, match="injected fault in chunk 2"):
        batch.score_file(batch_env.csv, tmp_path / "s.parquet",
                         batch.ScoreOptions(chunk_rows=CHUNK, explain="full", experiment="eih-batch-test"),
                         rejects=tmp_path / "r.csv", loaded=batch_env.loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("eih-batch-test").experiment_id],
                                      order_by=["attributes.start_time DESC"], max_results=1)
    assert runs[0].info.status == "FAILED"


def test_fault_keeps_an_earlier_complete_output_untouched(batch_env, tmp_path, fail_chunk):
    out = tmp_path / "s.parquet"
    out.write_bytes(b"an earlier, complete result")
    fail_chunk(1)
    with pytest.raises(batch.BatchError):
        _score(batch_env, tmp_path, src="parquet", out="s.parquet", explain="full")
    assert out.read_bytes() == b"an earlier, complete result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]


# ------------------------------------------------------------------------------------
# MLflow run, drift and the cohort report
# ------------------------------------------------------------------------------------
def test_mlflow_run_report_and_no_record_values(batch_env, scored, mlflow_store):
    from mlflow import MlflowClient

    res = scored("top_csv")
    run = MlflowClient().get_run(res.run_id)
    m, p = run.data.metrics, run.data.params
    assert run.info.status == "FINISHED"
    assert m["rows_read"] == N and m["rows_scored"] + m["rows_rejected"] == N
    assert p["explain"] == "top" and p["engine"] == "local" and p["model_uri"] == str(batch_env.model_dir)
    assert sum(m[f"predicted_{r}_share"] for r in RESPONSES) == pytest.approx(1.0)
    for f in batch_env.predictor.fields:
        assert f"psi_input__{f}" in m or batch_env.predictor.reference[f]["proportions"] == []
    assert "psi_attribution__hyperalgesia__cpm_pct" in m
    arts = {a.path for a in MlflowClient().list_artifacts(res.run_id, "batch")}
    assert {"batch/cohort_report.html", "batch/drift.csv", "batch/summary.json",
            "batch/prediction_histogram.csv", "batch/rejected_by_field_rule.csv"} <= arts
    # no record value in params, tags or the report (ids and the planted values)
    ids = set(batch_env.cohort["subject_id"].astype(str))
    for text in list(p.values()) + list(run.data.tags.values()):
        assert text not in ids
    html = res.report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http://" not in html
    for sid in list(ids)[:300] + [batch_env.cohort.loc[10, "subject_id"]]:
        assert sid not in html
    for word in ("How good is this model", "Counts", "Expected share of each response", "By pain condition",
                 "By protocol", "What drives the predictions", "beeswarm", "Drift"):
        assert word in html
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S)).lower()
    for word in ("margin", "max over outputs", "eih_pct", "log_sd", "log-odds relative"):  # clinical words only
        assert word not in visible
    assert "<h2>By site</h2>" in html  # the fixture cohort has three sites
    assert f"{N:,} read = {res.rows_scored:,} scored + {res.rows_rejected:,} rejected" in html


def test_drift_is_flagged_for_a_shifted_cohort(batch_env, scored, tmp_path):
    df = batch_env.cohort.drop(index=list(batch_env.bad)).copy()
    df["cpm_pct"] = (df["cpm_pct"] + 60).clip(upper=300)
    src = tmp_path / "shifted.parquet"
    df.to_parquet(src, index=False)
    res = batch.score_file(src, tmp_path / "o.parquet", batch.ScoreOptions(log_mlflow=False, explain="top"),
                           loaded=batch_env.loaded, report=False)
    flagged = set(res.drift_flags)
    assert "cpm_pct" in flagged
    assert any(name.endswith("__cpm_pct") for name in flagged)  # its attributions drift too
    assert "cpm_pct" not in set(scored("top_parquet").drift_flags)


def test_explain_none_still_reports_drivers_from_a_sample(scored):
    res = scored("none_parquet")
    html = res.report.read_text()
    assert "random sample of" in html
    att = res.drift[res.drift["kind"] == "attribution"]
    assert att["psi"].notna().any()


# ------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------
def test_cli_score_summary_and_files(batch_env, tmp_path, cli_runner, mlflow_store):
    from eih.cli import app

    out = tmp_path / "s.csv"
    r = cli_runner.invoke(app, ["score", str(batch_env.parquet), "--out", str(out), "--rejects",
                                str(tmp_path / "rej.csv"), "--explain", "top", "--top-k", "2", "--model",
                                str(batch_env.model_dir), "--chunk-rows", "1000", "--no-progress"])
    assert r.exit_code == 0, r.output
    n_bad = len(batch_env.bad)
    assert f"rows read {N:,} = scored {N - n_bad:,} + rejected {n_bad:,}" in r.output
    assert "unexpected_column" in r.output
    assert out.exists() and (tmp_path / "rej.csv").exists() and (tmp_path / "s.report.html").exists()
    assert "top2_field" in out.read_text().splitlines()[0]


def test_cli_help_explains_every_option(cli_runner):
    from eih.cli import app

    r = cli_runner.invoke(app, ["score", "--help"])
    assert r.exit_code == 0
    for opt in ("--out", "--rejects", "--explain", "--top-k", "--engine", "--scheduler", "--model", "--chunk-rows",
                "--workers", "--report"):
        assert opt in r.output


@pytest.mark.parametrize("case", ["no_file", "not_tabular", "missing_column", "no_model", "contract_major",
                                  "bad_out"])
def test_cli_errors_are_one_line_exit_2(batch_env, tmp_path, cli_runner, mlflow_store, case):
    from eih.cli import app

    src, model, out = batch_env.csv, str(batch_env.model_dir), tmp_path / "s.parquet"
    if case == "no_file":
        src = tmp_path / "missing.csv"
    elif case == "not_tabular":
        src = tmp_path / "cohort.txt"
        src.write_text("x")
    elif case == "missing_column":
        src = tmp_path / "cols.csv"
        batch_env.cohort.drop(columns=["cpm_pct"]).head(5).to_csv(src, index=False)
    elif case == "no_model":
        model = "models:/no-such-model@champion"
    elif case == "contract_major":
        model = str(batch_env.old_model_dir)
    elif case == "bad_out":
        out = tmp_path / "s.xlsx"
    r = cli_runner.invoke(app, ["score", str(src), "--out", str(out), "--model", model, "--no-progress"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    expected = {"no_file": "no such file", "not_tabular": "not a CSV or Parquet", "missing_column": "cpm_pct",
                "no_model": "no usable model", "contract_major": "data contract 2.0", "bad_out": ".csv or .parquet"}
    assert expected[case] in lines[0]
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


# ------------------------------------------------------------------------------------
# slow: Dask, killed processes, the registered champion
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_dask_output_identical_to_local(batch_env, scored, tmp_path, dask_client, fmt):
    local = scored("full_csv" if fmt == "csv" else "full_parquet")
    src, out, kw = RUNS["full_csv" if fmt == "csv" else "full_parquet"]
    dask = _score(batch_env, tmp_path, src=src, out=out, **kw, engine="dask", client=dask_client)
    assert len(dask_client.scheduler_info()["workers"]) == 2
    assert local.out.name == dask.out.name and local.out != dask.out
    if fmt == "csv":
        assert local.out.read_bytes() == dask.out.read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(local.out), pd.read_parquet(dask.out), check_exact=True)
    assert local.rejects.read_bytes() == dask.rejects.read_bytes()
    assert (dask.rows_read, dask.rows_scored, dask.rows_rejected) == (local.rows_read, local.rows_scored,
                                                                      local.rows_rejected)
    pd.testing.assert_frame_equal(local.drift, dask.drift, check_exact=True)
    if local.report is not None:  # the same cohort report, but for the engine's name and the time
        strip = lambda s: s.split("Scored ", 1)[1].split(";", 1)[1].replace("engine dask", "engine local")  # noqa: E731
        assert strip(local.report.read_text()) == strip(dask.report.read_text())


@pytest.mark.slow
def test_dask_worker_fault_leaves_no_output(batch_env, tmp_path, dask_client, fail_chunk):
    fail_chunk(3, client=dask_client)
    with pytest.raises(batch.BatchError, match="injected fault in chunk 3"):
        _score(batch_env, tmp_path, src="parquet", out="s.parquet", engine="dask", client=dask_client,
               explain="top")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_dask_engine_from_the_cli_with_a_local_cluster(batch_env, scored, tmp_path, cli_runner, mlflow_store):
    from eih.cli import app

    out = tmp_path / "d.parquet"
    r = cli_runner.invoke(app, ["score", str(batch_env.parquet), "--out", str(out), "--engine", "dask", "--workers",
                                "2", "--model", str(batch_env.model_dir), "--explain", "none", "--no-progress"])
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(scored("none_parquet").out), check_exact=True)


@pytest.mark.slow
def test_dask_engine_on_an_existing_cluster_by_scheduler_address(batch_env, scored, tmp_path, cli_runner):
    """`--scheduler ADDRESS`: a cluster started on its own (a `dask scheduler` and two `dask
    worker` processes on 127.0.0.1, run from another directory without the MLflow store, as
    dask-jobqueue would start them) scores the file exactly as the local engine does; an
    address where no scheduler listens gives one line and no output."""
    from eih.cli import app

    dask_bin = Path(sys.executable).with_name("dask")
    elsewhere = tmp_path / "cluster"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    sched_file = elsewhere / "scheduler.json"
    procs = [subprocess.Popen([str(dask_bin), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], cwd=elsewhere, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen([str(dask_bin), "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                           "--no-dashboard"], cwd=elsewhere, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "d.parquet"
        r = cli_runner.invoke(app, ["score", str(batch_env.parquet), "--out", str(out), "--engine", "dask",
                                    "--scheduler", address, "--model", str(batch_env.model_dir), "--explain", "full",
                                    "--no-progress"])
        assert r.exit_code == 0, r.output
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(scored("full_parquet").out),
                                      check_exact=True)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    # the scheduler is gone now: its address refuses connections
    out2 = tmp_path / "gone.parquet"
    r = cli_runner.invoke(app, ["score", str(batch_env.parquet), "--out", str(out2), "--engine", "dask", "--scheduler",
                                address, "--model", str(batch_env.model_dir), "--no-progress"])
    assert r.exit_code != 0
    assert f"cannot reach the Dask scheduler at {address}" in r.output
    assert not out2.exists() and not list(tmp_path.glob("*.partial"))


def _big_csv(env, path: Path, copies: int) -> Path:
    df = pd.concat([env.cohort] * copies, ignore_index=True)
    df["subject_id"] = [f"K{i:07d}" for i in range(len(df))]
    df.to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_process_leaves_no_finished_output(batch_env, tmp_path, sig):
    src = _big_csv(batch_env, tmp_path / "big.csv", 10)
    out = tmp_path / "s.parquet"
    env = dict(os.environ, MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    proc = subprocess.Popen([sys.executable, "-m", "eih.cli", "score", str(src), "--out", str(out), "--model",
                             str(batch_env.model_dir), "--explain", "full", "--chunk-rows", "500", "--no-progress"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = batch.partial_path(out)
    deadline = time.time() + 120
    while not (partial.exists() and partial.stat().st_size > 0) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not out.exists() and not (tmp_path / "s.rejects.csv").exists() and not (tmp_path / "s.report.html").exists()
    if sig == signal.SIGTERM:  # cleaned up, with a one-line reason
        assert not partial.exists() and not batch.partial_path(tmp_path / "s.rejects.csv").exists()
        assert "interrupted; no output written" in err.decode()


@pytest.mark.slow
def test_champion_scored_by_default_equals_its_predictor(trained_model, tmp_path, cli_runner):
    """Default model URI (@champion): the scores file holds exactly what the registered
    model's EIHPredictor.predict_and_explain gives for the same records."""
    from eih.cli import app
    from model_runtime.loading import load_model

    cohort = trained_model.cohort.frame.drop(columns=["ppt_post_kpa"]).head(400)
    src = tmp_path / "c.csv"
    cohort.to_csv(src, index=False)
    out = tmp_path / "s.parquet"
    r = cli_runner.invoke(app, ["score", str(src), "--out", str(out), "--explain", "full", "--no-progress"])
    assert r.exit_code == 0, r.output
    lm = load_model()
    assert f"version {lm.version}" in r.output
    got = pd.read_parquet(out)
    valid = validate_frame(pd.read_csv(src, dtype={"subject_id": "str", "site": "str"})).valid
    P, ex = lm.predictor.predict_and_explain(valid)
    np.testing.assert_allclose(got[[f"p_{r}" for r in RESPONSES]].to_numpy(), P, rtol=0, atol=1e-12)
    for k, o in enumerate(ex.outputs):
        np.testing.assert_allclose(got[[f"contrib_{o}__{f}" for f in ex.fields]].to_numpy(), ex.contributions[:, k, :],
                                   rtol=0, atol=0)
        np.testing.assert_allclose(got[f"base_{o}"] + got[[f"contrib_{o}__{f}" for f in ex.fields]].sum(axis=1),
                                   got[f"margin_{o}"], atol=1e-4)
