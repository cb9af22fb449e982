"""Training as pure steps: the chain trains a model in memory, with no tracking store and
no files, and each step's typed result holds what the next one needs."""

from __future__ import annotations

import numpy as np
import pytest

from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from training import steps
from training.config import TrainConfig


@pytest.fixture(scope="module")
def cohort():
    from simulation import simulate

    df, oracle = simulate(1500, seed=3, n_sites=1)
    valid = validate_frame(df).valid
    y = response_codes(eih_pct(valid), 10.0).astype("int64")
    oP = oracle.set_index("subject_id").loc[valid["subject_id"], ["p_hypoalgesia", "p_no_change", "p_hyperalgesia"]]
    return valid, y, oP.to_numpy()


@pytest.mark.slow
def test_the_chain_trains_in_memory_without_a_tracking_store(cohort, monkeypatch, tmp_path):
    valid, y, oP = cohort
    # a tracking store that cannot be created: any MLflow call would fail loudly
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/missing/dir/that/is/not/there.db")
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(n_trials=2, cv_folds=3, bootstrap=20, max_rounds=120)
    seen = []
    prep = steps.prepare(valid, y, cfg, seed=1)
    trained = steps.run_steps(prep, cfg, 1, oP, on_step=lambda step, result: seen.append((step, result is None)))

    assert seen == [("search", True), ("search", False), ("calibrate", True), ("calibrate", False),
                    ("fit", True), ("fit", False), ("evaluate", True), ("evaluate", False)]
    # two searched boosted configurations and the penalized spline candidate
    assert len(trained.search.trials) == 3 and trained.search.chosen in trained.search.trials
    assert [t.params.get("family") for t in trained.search.trials].count("spline") == 1
    assert set(trained.search.family_scores) == {"xgboost", "spline"}
    assert len(prep.tr) + len(prep.te) == len(valid) and not set(prep.tr) & set(prep.te)
    ev = trained.evaluation
    assert ev.P.shape == (len(prep.te), 3) and np.allclose(ev.P.sum(axis=1), 1.0)
    # the model beats knowing nothing and cannot beat the truth by much on this split
    assert ev.metrics["test_log_loss"] < ev.metrics["null_test_log_loss"]
    assert 0.0 < ev.metrics["oracle_capture"] < 1.2
    meta = trained.predictor.meta
    assert meta.training_metrics["test_log_loss"] == ev.metrics["test_log_loss"]
    assert meta.model_shape["explain_rows_per_s_measured"] > 0 and meta.attribution_reference
    assert not list(tmp_path.iterdir())  # nothing written: no store, no mlruns/


@pytest.mark.slow
@pytest.mark.parametrize(("model", "n_margins", "extra"), [("ordinal", 1, "residual_sigma_pct"),
                                                         ("distributional", 2, "spread_rounds")])
def test_calibrated_step_exposes_the_runtime_calibration(cohort, model, n_margins, extra):
    valid, y, _ = cohort
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=20, max_rounds=80, model=model)
    prep = steps.prepare(valid, y, cfg, seed=2)
    found = steps.search(prep, cfg, 2)
    calib = steps.calibrate(prep, found.chosen, cfg, 2)
    rt = calib.runtime()
    assert rt.applied == calib.applied and calib.oof.shape == (len(prep.tr), n_margins)
    assert set(calib.metrics()) >= {"oof_log_loss_uncalibrated", "oof_ece_calibrated", extra}
    if model == "ordinal":
        assert rt.sigma == pytest.approx(calib.cal.sigma)
    else:  # one temperature per output; the spread's map is always fitted
        assert rt.sigma is None and len(rt.temperature) == 2 and calib.spread.n_rounds >= 1
        assert calib.cal.log_loss_after <= calib.fitted.log_loss_before + 1e-12


@pytest.mark.slow
def test_the_distributional_model_gives_each_person_a_spread(cohort):
    valid, y, _ = cohort
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=20, max_rounds=80)
    prep = steps.prepare(valid, y, cfg, seed=4)
    trained = steps.run_steps(prep, cfg, 4)
    pred = trained.predictor
    assert pred.outputs == ("eih_pct", "log_sd") and len(pred.boosters) == 2
    ex = pred.explain(valid.iloc[:200])
    # exact for both outputs: base + contributions = calibrated margin (XGBoost's float32 sums
    # over the averaged fits' trees: 1e-5), and the margins give the probabilities
    assert np.allclose(ex.base + ex.contributions.sum(axis=2), pred.margins(valid.iloc[:200]), atol=1e-4)
    sd = np.exp(ex.margins[:, 1])
    assert sd.min() > 3 and sd.max() < 80 and sd.std() > 0  # per person, in %-points
    assert np.allclose(pred.proba(ex.margins), pred.predict_proba(valid.iloc[:200]), atol=1e-6)
    assert ex.reasons().shape == (200, 1, len(pred.fields))


@pytest.mark.slow
def test_monotone_option_makes_the_expected_change_follow_the_literature(cohort):
    """With `monotone`, every person's expected change rises with CPM and PSEQ and falls with
    PCS and CSI over each field's whole range (the spread booster stays free)."""
    import json

    from data_contracts.fields import BY_NAME
    from training.tune import MONOTONE

    valid, y, _ = cohort
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=20, max_rounds=150, monotone=True, families=("xgboost",))
    prep = steps.prepare(valid, y, cfg, seed=4)
    pred = steps.run_steps(prep, cfg, 4).predictor
    trained_with = json.loads(pred.boosters[0].save_config())["learner"]["gradient_booster"]["tree_train_param"]
    signs = dict(zip(pred.fields, (int(v) for v in trained_with["monotone_constraints"].strip("()").split(","))))
    assert {f: s for f, s in signs.items() if s} == MONOTONE
    people = valid.iloc[:40].reset_index(drop=True)
    for field, sign in MONOTONE.items():
        f = BY_NAME[field]
        changes = np.column_stack([pred.change_of(pred.margins(people.assign(**{field: v})))[0]
                                   for v in np.linspace(f.min, f.max, 9)])
        assert (np.diff(changes, axis=1) * sign >= -1e-4).all(), field
        if field == "cpm_pct":  # the constraint binds a model that still learns the effect
            assert (changes[:, -1] - changes[:, 0]).mean() > 1.0


@pytest.mark.slow
def test_the_final_booster_is_the_seed_average_the_config_asks_for(cohort):
    valid, y, _ = cohort
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=20, max_rounds=60, families=("xgboost",), average_of=3)
    prep = steps.prepare(valid, y, cfg, seed=5)
    found = steps.search(prep, cfg, 5)
    calib = steps.calibrate(prep, found.chosen, cfg, 5)
    pred = steps.fit(prep, found.chosen, calib, cfg, 5, reference=False)
    shape = pred.meta.model_shape
    assert shape["average_of"] == 3 and shape["n_rounds"] == found.chosen.n_rounds
    assert pred.booster.num_boosted_rounds() == 3 * found.chosen.n_rounds
    assert shape["explain_cost_proxy"] == pytest.approx(3 * found.chosen.cost)
    # the spread booster is one fit; the explanations add up to the margins (float32 sums: 1e-5)
    ex = pred.explain(valid.iloc[:50])
    assert pred.boosters[1].num_boosted_rounds() == calib.spread.n_rounds
    np.testing.assert_allclose(ex.base + ex.contributions.sum(axis=2), pred.margins(valid.iloc[:50]), atol=1e-4)


def test_the_first_trial_stays_inside_a_narrowed_search_space(cohort):
    """The search starts from a shallow first guess; when the space excludes it, the guess is
    moved to the nearest bound instead of a trial outside the space the user asked for."""
    from training import tune
    from training.config import SearchSpace

    assert tune.first_guess(SearchSpace()) == tune.FIRST_GUESS
    narrow = SearchSpace(max_depth=(5, 6), gamma=(0.5, 1.0), learning_rate=(0.01, 0.02))
    guess = tune.first_guess(narrow)
    assert guess["max_depth"] == 5 and isinstance(guess["max_depth"], int)
    assert guess["gamma"] == 0.5 and guess["learning_rate"] == 0.02 and guess["subsample"] == 0.8
    valid, y, _ = cohort
    cfg = TrainConfig(n_trials=1, cv_folds=3, max_rounds=20, search=narrow, families=("xgboost",))
    prep = steps.prepare(valid, y, cfg, seed=0)
    (first,) = steps.search(prep, cfg, 0).trials
    assert first.params["max_depth"] == 5 and first.params["gamma"] == 0.5
