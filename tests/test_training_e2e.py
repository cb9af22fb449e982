"""End-to-end training on a simulated cohort into a temporary MLflow store, read back
through the MLflow client; model-behaviour tests against the simulator's oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts.fields import BEFORE_BOUT_PREDICTORS, CONTRACT_VERSION, PREDICTORS, RESPONSES
from features.derived import EXERCISE_DOSE, EXERCISE_LOAD

pytestmark = pytest.mark.slow

REQUIRED_METRICS = [
    "test_log_loss", "test_auroc_macro", "test_brier", "test_ece", "baseline_logreg_test_log_loss",
    "baseline_cpm_rule_test_log_loss", "null_test_log_loss", "oracle_test_log_loss", "oracle_test_auroc_macro",
    "oracle_capture", "baseline_psychosocial_rule_test_log_loss", "test_balanced_accuracy",
    "test_auroc_hyperalgesia", "test_calibration_slope_hyperalgesia", "test_calibration_intercept_hypoalgesia",
    "test_log_loss_ci_low", "test_log_loss_ci_high", "explain_rows_per_s",
]


@pytest.fixture(scope="module")
def client(trained_model):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=trained_model.store.tracking_uri, registry_uri=trained_model.store.tracking_uri)


def test_run_metrics_tags_params_and_dataset(trained_model, client):
    run = client.get_run(trained_model.result.run_id)
    m = run.data.metrics
    for key in REQUIRED_METRICS:
        assert key in m, key
    assert run.data.tags["contract_version"] == CONTRACT_VERSION
    assert run.data.tags["label_threshold_pct"] == "10"
    assert run.data.params["n_trials"] == "3" and run.data.params["model"] == "distributional"
    assert m["spread_rounds"] >= 1 and "residual_sigma_pct" not in m  # each person has a spread of their own
    assert int(run.data.params["n_train"]) + int(run.data.params["n_test"]) == int(run.data.params["n_rows"])
    lo, hi = m["test_log_loss_ci_low"], m["test_log_loss_ci_high"]
    assert lo < m["test_log_loss"] < hi
    # the metrics are what the model card and the result say
    assert m["test_log_loss"] == pytest.approx(trained_model.result.metrics["test_log_loss"])
    assert m["oracle_capture"] == pytest.approx(
        (m["null_test_log_loss"] - m["test_log_loss"]) / (m["null_test_log_loss"] - m["oracle_test_log_loss"])
    )
    # the truth beats the class prior
    assert m["oracle_test_log_loss"] < m["null_test_log_loss"]
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest
    # no record value in params or tags: only settings, counts and names
    frame = trained_model.cohort.frame
    values = set(frame["subject_id"].astype(str).head(200))
    for text in list(run.data.params.values()) + list(run.data.tags.values()):
        assert text not in values


def test_nested_search_runs(trained_model, client):
    run = client.get_run(trained_model.result.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    # the searched boosted configurations and the penalized spline candidate, one nested run each
    assert len(children) == trained_model.cfg.n_trials + 1
    assert all("cv_log_loss" in c.data.metrics for c in children)
    splines = [c for c in children if c.data.params.get("family") == "spline"]
    assert len(splines) == 1 and all("max_depth" in c.data.params for c in children if c not in splines)
    assert run.data.tags["model_family"] in ("xgboost", "spline")
    assert {"family_log_loss_xgboost", "family_log_loss_spline"} <= set(run.data.metrics)


def test_artifacts_and_model_card(trained_model, client, tmp_path):
    run_id = trained_model.result.run_id
    names = {a.path for a in client.list_artifacts(run_id, "report")}
    for expected in ("report/shap_summary_eih_pct.png", "report/calibration_curves.png",
                     "report/confusion_matrix.png", "report/model_card.md", "report/subgroup_metrics.csv",
                     "report/learning_curve.png", "report/learning_curve.csv"):
        assert expected in names
    # the held-out split's learning curve: a quarter, a half and all of the training split
    curve = pd.read_csv(client.download_artifacts(run_id, "report/learning_curve.csv", str(tmp_path)))
    n_train = int(client.get_run(run_id).data.params["n_train"])
    assert list(curve["n_train"]) == [n_train // 4, n_train // 2, n_train]
    assert curve["log_loss"].iloc[-1] == pytest.approx(trained_model.result.metrics["test_log_loss"])
    assert (curve["log_loss"] < curve["null_log_loss"] + 0.02).all()
    card = open(client.download_artifacts(run_id, "report/model_card.md", str(tmp_path))).read()
    for section in ("Intended use", "synthetic", "Outcome", "threshold 10 %", "Predictors", "Missing data",
                    "Performance", "95 % bootstrap CI", "Subgroups", "Limitations", f"contract {CONTRACT_VERSION}"):
        assert section in card, section
    # the derived features are named, described in clinical words and their honesty note given
    assert "exercise_dose_vs_threshold (exercise dose relative to the EIH threshold, from exercise_modality" in card
    assert "exercise_load (exercise load relative to the modality's heaviest, from exercise_modality" in card
    assert "expect less from them on real cohorts" in card
    # TRIPOD+AI items: sample size, outcome measurement, timing, embedded plots, utility, update plan, the statement
    for section in ("(TRIPOD+AI)", "## Sample size", "Riley et al. 2020", "smallest detectable change",
                    "## Timing of the predictors", "![Calibration", "## Uncertainty and clinical utility",
                    "![Decision curves", "## Update plan", "must be validated on real patient data",
                    "## TRIPOD+AI checklist", "age_band", "## Subgroup calibration", "fibromyalgia, high load"):
        assert section in card, section
    for expected in ("report/decision_curves.png", "report/decision_curves.csv", "report/subgroup_calibration.csv"):
        assert expected in names


def test_intervals_and_risk_cutoffs_are_earned(trained_model, client):
    m = client.get_run(trained_model.result.run_id).data.metrics
    for level in (80, 90):  # conformal intervals on the 600-person test split, near nominal
        assert abs(m[f"test_interval{level}_coverage"] - level / 100) < 0.06
        assert 20 < m[f"test_interval{level}_median_width"] < 150
    from model_runtime.loading import load_model

    meta = load_model(trained_model.uri).predictor.meta
    assert set(meta.conformal["levels"]) == {"80", "90"} and "_all" in meta.conformal["levels"]["80"]
    assert meta.risk_cutoffs["high"] > meta.risk_cutoffs["moderate"] and "noise alone" in meta.risk_cutoffs_reason


def test_registered_version_alias_and_signature(trained_model, client):
    import mlflow

    mv = client.get_model_version_by_alias("eih-responder", "champion")
    assert str(mv.version) == trained_model.result.model_version
    assert mv.tags["contract_version"] == CONTRACT_VERSION
    info = mlflow.models.get_model_info(trained_model.uri)
    names = [c["name"] for c in info.signature.inputs.to_dict()]
    assert set(PREDICTORS) <= set(names)
    assert [c["name"] for c in info.signature.outputs.to_dict()] == [f"p_{r}" for r in RESPONSES]


def test_pyfunc_and_predictor_agree_and_explanations_are_exact(trained_model):
    import mlflow
    import shap

    from model_runtime.loading import load_model

    df = trained_model.cohort.frame.head(300)
    pyfunc = mlflow.pyfunc.load_model(trained_model.uri)
    # pyfunc's schema enforcement takes strings for categories (as JSON clients send them)
    plain = df[list(PREDICTORS)].astype({c: object for c in PREDICTORS if isinstance(df[c].dtype, pd.CategoricalDtype)})
    out = pyfunc.predict(plain)
    loaded = load_model(trained_model.uri)
    pred = loaded.predictor
    P, ex = pred.predict_and_explain(df)
    assert np.allclose(out.to_numpy(), P, atol=1e-6)
    # contributions + base value = margin, to 1e-4
    assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4
    # agree with shap.TreeExplainer on the same rows (shap's axes: (n, F, K); ours are the calibrated
    # contributions, i.e. the booster's divided by the temperature)
    import xgboost as xgb

    X = pred.transform(df)  # native categoricals need a DMatrix that says so
    sv = np.asarray(shap.TreeExplainer(pred.booster).shap_values(xgb.DMatrix(X, enable_categorical=True)))
    # the expected change's booster: one column per contract predictor plus the derived dose and load
    assert pred.outputs == ("eih_pct", "log_sd") and sv.shape == (len(df), len(BEFORE_BOUT_PREDICTORS) + 2)
    assert pred.fields == BEFORE_BOUT_PREDICTORS + (EXERCISE_DOSE, EXERCISE_LOAD)
    assert np.abs(sv / pred.temperature[0] - ex.contributions[:, 0, :]).max() < 1e-4
    sv_spread = np.asarray(shap.TreeExplainer(pred.boosters[1]).shap_values(xgb.DMatrix(X, enable_categorical=True)))
    assert np.abs(sv_spread / pred.temperature[1] - ex.contributions[:, 1, :]).max() < 1e-4


def test_same_data_and_seed_give_same_metrics(trained_model, tmp_path):
    from rich.console import Console

    from training.train import train

    again = train(trained_model.cohort.path, oracle=trained_model.cohort.oracle_path, cfg=trained_model.cfg,
                  seed=11, experiment="eih-repeat", registered_model="eih-repeat", console=Console(quiet=True))
    for key in ("test_log_loss", "test_auroc_macro", "test_brier", "test_ece", "baseline_logreg_test_log_loss",
                "oracle_capture"):
        assert again.metrics[key] == pytest.approx(trained_model.result.metrics[key], abs=1e-9), key


def test_champion_gate_keeps_better_champion(trained_model, client):
    """A worse model (a single search trial on a quarter of the data) does not take @champion."""
    from rich.console import Console

    from training.config import TrainConfig
    from training.train import train

    small = trained_model.cohort.frame.iloc[:800]
    path = trained_model.store.dir / "small.parquet"
    small.to_parquet(path, index=False)
    before = client.get_model_version_by_alias("eih-responder", "champion").version
    # same test rows are not guaranteed, but a tiny model should lose on its own test split
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=20, max_rounds=3, early_stopping_rounds=1, validation="holdout",
                      search=TrainConfig().search.__class__(max_depth=(1, 1), learning_rate=(0.02, 0.021)),
                      families=("xgboost",))
    res = train(path, cfg=cfg, seed=1, console=Console(quiet=True))
    after = client.get_model_version_by_alias("eih-responder", "champion").version
    assert res.promoted is False and after == before
    assert "does not beat champion" in res.gate_message
    run = client.get_run(res.run_id)
    assert run.data.tags["gate_decision"] == "kept_champion"
    assert run.data.metrics["gate_champion_test_log_loss"] <= run.data.metrics["gate_new_test_log_loss"]


@pytest.mark.parametrize(
    "field,delta,output,sign",
    [("cpm_pct", 30.0, 0, +1), ("pseq_total", 20.0, 0, +1), ("pcs_total", 20.0, 2, +1), ("csi_score", 30.0, 2, +1)],
)
def test_model_moves_with_the_oracle(trained_model, field, delta, output, sign):
    """Directional checks: raising CPM or PSEQ must not lower P(hypoalgesia), raising PCS or CSI must not
    lower P(hyperalgesia), in the oracle (per record) and in the model (on average over the cohort)."""
    from data_contracts.fields import BY_NAME
    from model_runtime.loading import load_model
    from simulation import oracle_probabilities

    df = trained_model.cohort.frame.sample(1500, random_state=0).reset_index(drop=True)
    f = BY_NAME[field]
    base = df.copy()
    base[field] = base[field].clip(upper=f.max - delta)
    if field == "csi_score":
        base[field] = base[field].fillna(30.0)
    up = base.copy()
    up[field] = up[field] + delta
    o0, o1 = oracle_probabilities(base), oracle_probabilities(up)
    assert np.all(sign * (o1[:, output] - o0[:, output]) >= -1e-9)
    pred = load_model(trained_model.uri).predictor
    m0, m1 = pred.predict_proba(base), pred.predict_proba(up)
    assert sign * (m1[:, output] - m0[:, output]).mean() > 0


def test_cli_train_rejects_bad_input(tmp_path, cli_runner):
    from eih.cli import app

    no_outcome = tmp_path / "x.csv"
    pd.DataFrame({"subject_id": ["a"]}).to_csv(no_outcome, index=False)
    r = cli_runner.invoke(app, ["train", "--data", str(no_outcome)])
    assert r.exit_code == 2
    assert "missing required column" in r.output
    r = cli_runner.invoke(app, ["train", "--data", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = cli_runner.invoke(app, ["train", "--data", str(no_outcome), "--model", "forest"])
    assert r.exit_code == 2 and "model must be one of distributional, ordinal, multiclass" in r.output


def test_multiclass_kind_trains_a_softmax_model_with_exact_explanations(trained_model, client):
    """`model = "multiclass"` (one softmax margin per class) is the comparison kind: it trains,
    registers under its own name, and serves probabilities that are the softmax of its
    explained margins."""
    from rich.console import Console

    from model_runtime.links import softmax
    from model_runtime.loading import load_model
    from training.config import TrainConfig
    from training.train import train

    cfg = TrainConfig(model="multiclass", n_trials=2, cv_folds=3, bootstrap=20, max_rounds=200, validation="holdout")
    res = train(trained_model.cohort.path, oracle=trained_model.cohort.oracle_path, cfg=cfg, seed=5,
                experiment="eih-multiclass", registered_model="eih-multiclass", console=Console(quiet=True))
    run = client.get_run(res.run_id)
    assert run.data.params["model"] == "multiclass" and "residual_sigma_pct" not in run.data.metrics
    pred = load_model("models:/eih-multiclass@champion").predictor
    assert pred.link == "softmax" and pred.outputs == tuple(RESPONSES)
    df = trained_model.cohort.frame.head(200)
    P, ex = pred.predict_and_explain(df)
    assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4
    assert np.allclose(P, softmax(ex.margins), atol=1e-12) and np.allclose(P.sum(axis=1), 1)
    assert {a.path for a in client.list_artifacts(res.run_id, "report")} >= {
        "report/shap_summary_hyperalgesia.png", "report/shap_summary_hypoalgesia.png"}


def test_training_without_an_oracle_when_the_cheaper_candidate_wins(trained_model, client):
    """A user's own cohort has no oracle: training still completes and logs no oracle metric,
    also when the cost rule picks a cheaper candidate than the best one (a regression once)."""
    from rich.console import Console

    from training.config import TrainConfig
    from training.train import train

    cfg = TrainConfig(n_trials=3, cv_folds=3, bootstrap=20, max_rounds=200, cost_tolerance=1.0, validation="holdout")
    res = train(trained_model.cohort.path, oracle=None, cfg=cfg, seed=11, experiment="eih-no-oracle",
                registered_model="eih-no-oracle", console=Console(quiet=True))
    logged = client.get_run(res.run_id).data.metrics
    assert "best_cv_candidate_test_log_loss" in logged  # the cheaper candidate was chosen
    assert not [k for k in logged if "oracle" in k and "best_cv_candidate_test" not in k]
    assert logged["test_log_loss"] < logged["null_test_log_loss"]
