"""Exercise prescription without a server: field timing in the contract and in training, the
grid, vectorized scoring against the one-record path, ranking, constraints (a property
test), the request gate of POST /recommend, models that may not prescribe, and the
directions the literature gives (raising CSI or PCS never makes a higher intensity more
attractive in the oracle, and the model agrees)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import AFTER_BOUT, BEFORE_BOUT_PREDICTORS, BY_NAME, FIELDS, PREDICTORS
from serving.gate import GateError, normalise_record
from serving.recommend import (
    MODALITIES,
    PROTOCOL_FIELDS,
    PROTOCOL_RANGES,
    Constraints,
    GridScorer,
    PrescriptionRefused,
    benefit,
    causal_note,
    default_grid,
    rank,
)
from serving.recommend_api import parse_request
from serving.recommend_batch import ranked
from serving.recommend_route import Recommender
from serving.scoring import Job, Scorer

PERSON = {k: v for k, v in EXAMPLE_RECORD.items() if k not in PROTOCOL_FIELDS}


@pytest.fixture(scope="module")
def loaded(trained_model):
    from model_runtime.loading import load_model

    lm = load_model(trained_model.uri)
    lm.predictor.set_threads(1)
    return lm


@pytest.fixture(scope="module")
def recommender(loaded) -> Recommender:
    return Recommender(loaded.predictor, {"name": loaded.name, "version": loaded.version})


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    from simulation import simulate

    df, _ = simulate(300, seed=404, n_sites=1)
    return df.drop(columns=["ppt_post_kpa"])


def _job(record=PERSON, **body):
    return parse_request(json.dumps({"record": record, **body}).encode())


# ---- timing of fields ------------------------------------------------------------------------
def test_every_field_says_when_it_is_measured():
    after = {f.name for f in FIELDS if f.measured == "after"}
    assert after == {"lactate_mmol_l", "ppt_post_kpa"} == set(AFTER_BOUT)
    assert all(f.measured in ("before", "after") for f in FIELDS)
    assert BEFORE_BOUT_PREDICTORS == tuple(p for p in PREDICTORS if p != "lactate_mmol_l")


def test_default_training_reads_only_before_bout_fields(trained_model, loaded, small_cohort):
    from data_contracts.labels import eih_pct, response_codes
    from training import steps
    from training.config import TrainConfig, load_config

    assert "lactate_mmol_l" not in loaded.predictor.inputs
    assert all(BY_NAME[f].measured == "before" for f in loaded.predictor.inputs)
    assert TrainConfig().predictors == BEFORE_BOUT_PREDICTORS
    research = load_config(None, use_after_bout_fields=True)
    df = small_cohort.frame.iloc[:400]
    prep = steps.prepare(df, response_codes(eih_pct(df)), research, 0)
    assert "lactate_mmol_l" in prep.X.columns


def lactate_predictor(df: pd.DataFrame | None = None):
    """A small model that reads post-bout lactate (a research model)."""
    from features.pipeline import ContractFeatures
    from features.reference import build_reference
    from model_runtime.metadata import ModelMeta
    from model_runtime.predictor import EIHPredictor
    from simulation import simulate

    df = simulate(300, seed=8, n_sites=1)[0] if df is None else df
    X = ContractFeatures().fit_transform(df)
    y = (X["cpm_pct"].to_numpy() > 10).astype(int) + (X["pcs_total"].to_numpy() > 30).astype(int)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns)), 5)
    meta = ModelMeta.from_dict({"contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(X.columns),
                                "reference": build_reference(X)})
    return EIHPredictor(booster, meta)


def test_a_model_reading_an_after_bout_field_is_refused(people):
    p = lactate_predictor(people)
    assert "lactate_mmol_l" in p.inputs
    with pytest.raises(PrescriptionRefused, match="lactate_mmol_l, measured after the bout"):
        GridScorer(p)


# ---- the grid --------------------------------------------------------------------------------
def test_grid_ranges_are_the_simulators_and_inside_the_contract():
    from simulation import params

    assert {m: r[0] for m, r in PROTOCOL_RANGES.items()} == {m: tuple(v) for m, v in params.INTENSITY_RANGE.items()}
    assert {m: r[1] for m, r in PROTOCOL_RANGES.items()} == {m: tuple(v) for m, v in params.DURATION_RANGE.items()}
    g = default_grid()
    assert len(g) == 312 and set(g.modality) == set(MODALITIES)
    i, d = BY_NAME["exercise_intensity_pct"], BY_NAME["exercise_duration_min"]
    assert g.intensity.min() >= i.min and g.intensity.max() <= i.max
    assert g.duration.min() >= d.min and g.duration.max() <= d.max
    for m, ((ilo, ihi), (dlo, dhi)) in PROTOCOL_RANGES.items():
        sel = g.modality == m
        assert g.intensity[sel].min() == ilo and g.intensity[sel].max() == ihi
        assert g.duration[sel].min() == dlo and g.duration[sel].max() == dhi
        assert set(np.diff(np.unique(g.intensity[sel]))) <= {5.0} | {5.0 - (ilo % 5)}
    assert set(g.duration[g.modality == "isometric"]) == {1.0, 5.0, 10.0}
    assert len(default_grid(("hiit",))) == 25


def test_vectorized_grid_scores_equal_the_one_record_path(loaded, people):
    p = loaded.predictor
    gs = GridScorer(p)
    sub = people.iloc[:4]
    P = gs.score(p.frame_matrix(p.transform(sub)))
    g = gs.grid
    rows = sub.loc[sub.index.repeat(len(g))].reset_index(drop=True)
    rows["exercise_modality"] = np.tile(g.modality, len(sub))
    rows["exercise_intensity_pct"] = np.tile(g.intensity, len(sub))
    rows["exercise_duration_min"] = np.tile(g.duration, len(sub))
    np.testing.assert_allclose(P.reshape(-1, 3), p.predict_proba(rows), atol=2e-6)


def test_a_few_people_are_read_from_the_tables_and_agree_with_xgboost(loaded, people):
    """Up to FEW_PEOPLE people (an HTTP request) the grid's margins come from the explanation
    tables; a cohort goes through inplace_predict; both give the same margins to float32 rounding."""
    from model_runtime.protocol_grid import FEW_PEOPLE

    p = loaded.predictor
    gs = GridScorer(p)
    assert gs._grid_cells is not None  # the session model has tables: the fast path is taken
    X = p.frame_matrix(p.transform(people.iloc[: FEW_PEOPLE + 4]))
    few_P, few_m = gs.score_margins(X[:FEW_PEOPLE])
    many_P, many_m = gs.score_margins(X)
    assert few_m.shape == (FEW_PEOPLE, len(gs.grid), len(p.outputs))
    np.testing.assert_allclose(few_m, many_m[:FEW_PEOPLE], rtol=0, atol=2e-4)
    np.testing.assert_allclose(few_P, many_P[:FEW_PEOPLE], rtol=0, atol=2e-6)
    direct = p.meta.calibration.apply(p.raw_margins_matrix(gs.matrix(X[:1])))
    np.testing.assert_allclose(few_m[0], direct, rtol=0, atol=2e-4)


def test_recommendations_carry_the_numbers_predict_gives(loaded, recommender):
    body = json.loads(recommender.run([_job(constraints={"modalities": ["aerobic", "isometric"]})])[0])
    top = body["recommendations"]
    assert [r["rank"] for r in top] == [1, 2, 3]
    assert body["grid"] == {"protocols_scored": 312, "within_constraints": 138}
    records = [normalise_record({**PERSON, **r["protocol"]}) for r in top]
    pred = json.loads(Scorer(loaded).run([Job("predict", records)])[0])["predictions"]
    for r, q in zip(top, pred, strict=True):
        assert r["probabilities"] == q["probabilities"]  # the same bits
        assert r["change_interval_pct"] == q["change_interval_pct"] and r["expected_change_pct"] == q["expected_change_pct"]
        lo80, hi80 = r["change_interval_pct"]["80"]
        lo90, hi90 = r["change_interval_pct"]["90"]
        assert lo90 <= lo80 < r["expected_change_pct"] < hi80 <= hi90
        assert r["benefit"] == pytest.approx(r["probabilities"]["hypoalgesia"] - r["probabilities"]["hyperalgesia"])
        assert {w["field"] for w in r["why"]} <= set(PROTOCOL_FIELDS) | {"exercise_dose_vs_threshold", "exercise_load"}
        assert r["protocol"]["exercise_modality"] in ("aerobic", "isometric")
    # ranked by the pooled benefit (ties: lower risk, then grid order), which the model's pooling defines
    assert np.all(np.diff(np.round([r["ranking_benefit"] for r in top], 9)) <= 0)
    pooling = loaded.predictor.meta.extra["pooling"]
    assert 0.0 <= pooling["shrinkage"] <= 1.0
    assert set(pooling["profiles"]) <= set(BY_NAME["pain_condition"].categories) and len(pooling["profiles"]) >= 4
    assert all(len(v) == 312 for v in pooling["profiles"].values())
    assert body["causal"]["protocols"] == "randomized" and body["causal"]["causal"] is True
    assert body["current"] is None and body["no_recommendation"] is None


def test_current_protocol_is_scored_beside_and_warnings_name_priors(recommender):
    body = json.loads(recommender.run([_job(EXAMPLE_RECORD, top=5)])[0])
    cur = body["current"]
    assert cur["protocol"] == {f: EXAMPLE_RECORD[f] for f in PROTOCOL_FIELDS}
    assert cur["rank"] is None and cur["meets_constraints"] is True
    assert cur["benefit_gap_to_best"] == pytest.approx(body["recommendations"][0]["benefit"] - cur["benefit"])
    assert cur["protocols_with_more_benefit"] >= 0
    hiit = json.loads(recommender.run([_job(constraints={"modalities": ["hiit"]})])[0])["recommendations"]
    assert all(any("priors" in w for w in r["warnings"]) for r in hiit)


def test_no_protocol_within_the_constraints_is_a_clear_answer(recommender):
    body = json.loads(recommender.run([_job(constraints={"max_hyperalgesia": 0.0})])[0])
    assert body["recommendations"] == []
    assert body["no_recommendation"].startswith("No protocol meets the constraints")
    body = json.loads(recommender.run([_job(constraints={"modalities": ["hiit"], "max_intensity": 50})])[0])
    assert body["recommendations"] == [] and "widen" in body["no_recommendation"]


def test_causal_note_depends_on_how_protocols_were_assigned():
    assert causal_note("randomized").startswith("Causal reading supported")
    assert causal_note("observational").startswith("Not a causal recommendation")
    assert "unrecorded" in causal_note("unknown")


# ---- constraints: no protocol outside them is ever returned (property test) -----------------
_constraints = st.builds(
    dict,
    modalities=st.one_of(st.none(), st.lists(st.sampled_from(MODALITIES), min_size=1, max_size=5, unique=True)),
    max_intensity=st.one_of(st.none(), st.integers(0, 100)),
    max_duration=st.one_of(st.none(), st.integers(0, 120)),
    max_hyperalgesia=st.one_of(st.none(), st.floats(0.0, 0.6)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=_constraints, who=st.integers(0, 299), top=st.integers(1, 10))
def test_no_protocol_outside_the_constraints_is_ever_returned(recommender, people, c, who, top):
    from serving.gate import records_from_frame

    person = {k: v for k, v in records_from_frame(people.iloc[[who]])[0].items() if k not in PROTOCOL_FIELDS}
    body = json.loads(recommender.run([_job(person, constraints=c, top=top)])[0])
    recs = body["recommendations"]
    assert len(recs) <= top
    for r in recs:
        pr = r["protocol"]
        assert c["modalities"] is None or pr["exercise_modality"] in c["modalities"]
        assert c["max_intensity"] is None or pr["exercise_intensity_pct"] <= c["max_intensity"]
        assert c["max_duration"] is None or pr["exercise_duration_min"] <= c["max_duration"]
        assert c["max_hyperalgesia"] is None or r["probabilities"]["hyperalgesia"] <= c["max_hyperalgesia"]
    assert (not recs) == (body["no_recommendation"] is not None)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_vectorized_ranking_keeps_the_constraints_and_the_order(data):
    n, G = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    raw = np.asarray(data.draw(st.lists(st.floats(0.01, 1.0), min_size=n * G * 3, max_size=n * G * 3)))
    P = raw.reshape(n, G, 3) / raw.reshape(n, G, 3).sum(axis=2, keepdims=True)
    allowed = np.asarray(data.draw(st.lists(st.booleans(), min_size=n * G, max_size=n * G))).reshape(n, G)
    top = data.draw(st.one_of(st.none(), st.integers(1, 5)))
    score = data.draw(st.one_of(st.none(), st.just(benefit(P) + np.linspace(0, 0.1, G)[None, :])))
    person, r, g = ranked(P, allowed, top, score)
    loop = rank(P, allowed, top, score)
    key = benefit(P) if score is None else score
    for i in range(n):
        mine = g[(person == i) & (r > 0)]
        assert list(mine) == list(loop[i])
        assert allowed[i, mine].all()
        assert ((r[person == i] == 0).any()) == (len(loop[i]) == 0)
        assert np.all(np.diff(np.round(key[i, mine], 9)) <= 0)


def test_pooling_keeps_level_and_profile_and_shrinks_the_personal_part():
    """score = level + profile + shrinkage x deviation: 1 gives the model's benefit back, 0 gives
    everyone of a condition the same order (the condition's profile), and people whose condition
    has no profile keep their own benefit; the factor is 1 for agreeing halves, about 0 for noise."""
    from model_runtime.protocol_grid import deviations, pooled_scores, profiles_over, shrinkage

    rng = np.random.default_rng(0)
    keys = ["a", "b", "c", "d"]
    b = rng.normal(size=(6, 4))
    cond = ["x", "x", "x", "y", "y", None]
    pooling = {"profiles": {"x": dict(zip(keys, [0.1, 0.4, 0.2, 0.0])), "y": dict(zip(keys, [0.3, 0.0, 0.0, 0.1])),
                            "z": {"a": 1.0}}}
    prof = profiles_over(pooling, keys)
    assert set(prof) == {"x", "y"}  # z does not cover the grid
    np.testing.assert_allclose(pooled_scores(b, cond, 1.0, prof), b)
    flat = pooled_scores(b, cond, 0.0, prof)
    assert all(list(np.argsort(-flat[i])) == [1, 2, 0, 3] for i in range(3))
    np.testing.assert_allclose(flat.mean(axis=1), b.mean(axis=1))  # each person's own level is kept
    np.testing.assert_allclose(flat[5], b[5])  # no profile for an unknown condition
    assert pooled_scores(b, cond, 0.3, {}) is b
    signal = rng.normal(size=(400, 20))
    groups = ["x"] * 400
    same = deviations(signal, groups)
    assert shrinkage(same, same) == pytest.approx(1.0)
    noisy = [deviations(rng.normal(size=(400, 20)), groups) for _ in range(2)]
    assert shrinkage(*noisy) < 0.1
    half = [deviations(signal + rng.normal(size=(400, 20)), groups) for _ in range(2)]
    assert 0.5 < shrinkage(*half) < 0.8  # signal 1, half-sample noise 1: 1 / (1 + 1/2) = 0.67


# ---- the request gate ------------------------------------------------------------------------
@pytest.mark.parametrize("body,status,field", [
    (b"{not json", 400, None),
    (b"", 400, None),
    (json.dumps([PERSON]).encode(), 422, None),
    (json.dumps({"record": {**PERSON, "favourite": 1}}).encode(), 422, "favourite"),
    (json.dumps({"record": {**PERSON, "exercise_modality": "aerobic"}}).encode(), 422, "exercise_intensity_pct"),
    (json.dumps({"record": {**PERSON, "age_years": 7}}).encode(), 422, "age_years"),
    (json.dumps({"record": {**PERSON, "age_years": "52"}}).encode(), 422, "age_years"),
    (json.dumps({"record": PERSON, "constraints": {"max_hyperalgesia": 3}}).encode(), 422, "max_hyperalgesia"),
    (json.dumps({"record": PERSON, "constraints": {"modalities": ["swimming"]}}).encode(), 422, "modalities"),
    (json.dumps({"record": PERSON, "constraints": {"modalities": []}}).encode(), 422, "modalities"),
    (json.dumps({"record": PERSON, "top": 0}).encode(), 422, "top"),
    (json.dumps({"record": PERSON, "extra": 1}).encode(), 422, None),
])
def test_gate_answers_like_predict_and_never_quotes_a_value(body, status, field):
    with pytest.raises(GateError) as info:
        parse_request(body)
    err = info.value
    assert err.status == status
    text = json.dumps(err.body())
    assert "swimming" not in text and "favourite\": 1" not in text and '"52"' not in text
    if field is not None:
        assert any(p["field"] == field for p in err.body()["problems"]), err.body()


def test_gate_accepts_a_person_without_protocol_or_with_all_three():
    job = _job()
    assert not job.current and job.top == 3 and job.constraints == Constraints()
    job = _job(EXAMPLE_RECORD, top=4, constraints={"modalities": ["aerobic"], "max_intensity": 70})
    assert job.current and job.top == 4 and job.constraints.modalities == ("aerobic",)


# ---- directions the literature gives --------------------------------------------------------
def _best_intensity_moves(benefit_before: np.ndarray, benefit_after: np.ndarray, grid) -> tuple[int, int]:
    """(people x modalities whose best intensity goes up, ... goes down) after a change."""
    up = down = 0
    for m in MODALITIES:
        idx = np.flatnonzero(grid.modality == m)
        b0 = grid.intensity[idx[np.round(benefit_before[:, idx], 9).argmax(axis=1)]]
        b1 = grid.intensity[idx[np.round(benefit_after[:, idx], 9).argmax(axis=1)]]
        up, down = up + int((b1 > b0).sum()), down + int((b1 < b0).sum())
    return up, down


@pytest.fixture(scope="module")
def prescriber():
    """A model trained in memory on 20,000 simulated people (one search trial), the cohort size
    the prescription aims are stated for: the session's 3,000-person model is too small to learn
    how CSI shifts the best intensity, and at 12,000 people the learned PCS x intensity surface
    still points either way depending on the cohort drawn."""
    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from simulation import simulate
    from training import steps
    from training.config import TrainConfig

    df = validate_frame(simulate(20_000, seed=21, n_sites=1)[0]).valid
    cfg = TrainConfig(n_trials=1, cv_folds=3, bootstrap=10, max_rounds=600, nthread=1)
    trained = steps.run_steps(steps.prepare(df, response_codes(eih_pct(df)).astype("int64"), cfg, 1), cfg, 1)
    return trained.predictor


@pytest.mark.parametrize("field,delta", [("csi_score", 15.0), ("pcs_total", 10.0)])
def test_more_sensitization_never_makes_a_higher_intensity_more_attractive(prescriber, people, field, delta):
    from simulation.oracle import oracle_probabilities
    from simulation.sites import REFERENCE

    p = prescriber
    gs = GridScorer(p)
    g = gs.grid
    base = people[people[field].notna()].copy()
    raised = base.copy()
    raised[field] = np.minimum(raised[field] + delta, BY_NAME[field].max)

    def oracle(df):
        rows = df.loc[df.index.repeat(len(g))].reset_index(drop=True).drop(columns=["lactate_mmol_l"])
        for f, v in zip(PROTOCOL_FIELDS, (g.modality, g.intensity, g.duration), strict=True):
            rows[f] = np.tile(v, len(df))
        return benefit(oracle_probabilities(rows, site=REFERENCE).reshape(len(df), len(g), 3))

    def model(df):
        return benefit(gs.score(p.frame_matrix(p.transform(df))))

    up, down = _best_intensity_moves(oracle(base), oracle(raised), g)
    assert up == 0 and down > 0, (up, down)
    up, down = _best_intensity_moves(model(base), model(raised), g)
    print(f"{field} +{delta:g}: the model's best intensity moves up for {up}, down for {down} (people x modalities)")
    assert down >= 3 * up, (up, down)  # the model agrees: at least 3 of 4 moves go toward lower intensity
