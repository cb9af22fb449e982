"""The derived dose and load features: values at the published thresholds, the same in
every path, and explained exactly beside the contract fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import PREDICTORS
from features.derived import DERIVED, EXERCISE_DOSE, EXERCISE_LOAD
from features.pipeline import ContractFeatures
from features.reference import build_reference
from model_runtime.metadata import ModelMeta
from model_runtime.predictor import EIHPredictor
from serving.explain import statement, top_contributions
from training.config import TrainConfig, load_config

DOSE = DERIVED[EXERCISE_DOSE]
LOAD = DERIVED[EXERCISE_LOAD]


def _rec(modality, intensity, duration) -> dict:
    return {**EXAMPLE_RECORD, "exercise_modality": modality, "exercise_intensity_pct": intensity,
            "exercise_duration_min": duration}


@pytest.mark.parametrize(
    "modality, intensity, duration, expected",
    [
        ("aerobic", 69, 30, 0.0),  # 50 % VO2max = 69 % HRmax (Swain 1994): no EIH whatever the duration
        ("aerobic", 85, 8, 0.0),  # under ~10 minutes: none
        ("aerobic", 85, 30, 1.0),  # Hoffman 2004: clear at 75 % VO2max (85 % HRmax) for 30 min
        ("aerobic", 77, 30, 0.5),  # halfway up the intensity ramp (62.5 % VO2max)
        ("aerobic", 85, 17.5, 0.5),  # halfway up the duration ramp
        ("aerobic", 95, 60, 1.0),  # capped at the dose that reliably relieves
        ("isometric", 25, 1, 0.5),  # a 1-minute hold: half of the ~2-minute hold
        ("isometric", 80, 3, 1.0),
        ("dynamic_resistance", 45, 10, 0.5),
        ("dynamic_resistance", 25, 30, 0.0),
        ("hiit", 90, 10, 0.5),
        ("mind_body", 30, 40, 1.0),
        ("mind_body", 30, 5, 0.0),
    ],
)
def test_dose_fraction_at_the_published_thresholds(modality, intensity, duration, expected):
    assert DOSE.from_record(_rec(modality, intensity, duration)) == pytest.approx(expected)


def test_dose_is_missing_when_the_modality_or_a_needed_value_is():
    assert DOSE.from_record(_rec(None, 70, 30)) is None
    assert DOSE.from_record(_rec("aerobic", None, 30)) is None
    # the isometric formula does not need the intensity
    assert DOSE.from_record(_rec("isometric", None, 3)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "modality, intensity, duration, expected",
    [
        ("aerobic", 65.8, 60, 0.0),  # 45 % VO2max (Swain 1994): no load that provokes pain
        ("aerobic", 94.6, 40, 1.0),  # 90 % VO2max for 40 min: the heaviest
        ("aerobic", 94.6, 10, 0.5),  # ... for 10 min: half of it
        ("aerobic", 80.2, 40, 0.5 ** 1.3),  # halfway up the intensity ramp (67.5 % VO2max), raised to 1.3
        ("isometric", 20, 1, 0.6 * 0.7),  # a light, short hold still loads a sensitized muscle
        ("isometric", 80, 5, 1.0),
        ("isometric", 50, 3, 0.8 * 0.85),
        ("dynamic_resistance", 40, 10, 0.5),  # light loads: half
        ("dynamic_resistance", 67.5, 10, 0.75),
        ("dynamic_resistance", 90, 10, 1.0),
        ("hiit", 80, 10, 0.5),
        ("hiit", 100, 10, 1.0),
        ("mind_body", 30, 20, 0.5),
        ("mind_body", 30, 5, 0.0),
    ],
)
def test_load_share_by_modality(modality, intensity, duration, expected):
    assert LOAD.from_record(_rec(modality, intensity, duration)) == pytest.approx(expected, abs=2e-3)


def test_load_rises_with_intensity_and_is_missing_without_what_it_needs():
    for modality in ("aerobic", "isometric", "dynamic_resistance", "hiit"):
        vals = [LOAD.from_record(_rec(modality, i, 20)) for i in range(20, 101, 5)]
        assert all(b >= a for a, b in zip(vals, vals[1:], strict=False)) and vals[-1] > vals[0], modality
    assert LOAD.from_record(_rec(None, 70, 30)) is None
    assert LOAD.from_record(_rec("aerobic", 70, None)) is None
    # the resistance load needs no duration, the mind-body load no intensity
    assert LOAD.from_record(_rec("dynamic_resistance", 60, None)) == pytest.approx(0.5 + 0.5 * 10 / 35)
    assert LOAD.from_record(_rec("mind_body", None, 30)) == pytest.approx(1.0)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mods = np.asarray(["aerobic", "isometric", "dynamic_resistance", "hiit", "mind_body"], dtype=object)
    rows = []
    for i in range(n):
        r = dict(EXAMPLE_RECORD)
        r["subject_id"] = f"S{i}"
        r["cpm_pct"] = float(rng.normal(10, 20))
        r["exercise_modality"] = str(mods[i % 5])
        r["exercise_intensity_pct"] = float(rng.uniform(20, 100))
        r["exercise_duration_min"] = float(rng.uniform(1, 60))
        rows.append(r)
    df = pd.DataFrame(rows)
    df.loc[5, "exercise_intensity_pct"] = np.nan  # an aerobic row without intensity: dose missing
    return df


def test_pipeline_appends_the_dose_after_the_contract_fields_and_matches_one_record():
    df = _frame(60)
    f = ContractFeatures(derived=(EXERCISE_DOSE,)).fit(df)
    X = f.transform(df)
    assert list(X.columns) == list(PREDICTORS) + [EXERCISE_DOSE]
    assert list(f.get_feature_names_out()) == list(PREDICTORS) + [EXERCISE_DOSE]
    assert X[EXERCISE_DOSE].between(0, 1).sum() == len(df) - 1 and np.isnan(X.loc[5, EXERCISE_DOSE])
    one = [DOSE.from_record(r) for r in df.to_dict("records")]
    assert np.allclose(X[EXERCISE_DOSE].to_numpy(), np.array([np.nan if v is None else v for v in one]), equal_nan=True)


def test_pipeline_rejects_unknown_derived_features_and_missing_inputs():
    with pytest.raises(ValueError, match="unknown derived features: bogus"):
        ContractFeatures(derived=("bogus",)).fit(None)
    with pytest.raises(ValueError, match="needs exercise_duration_min"):
        ContractFeatures(predictors=("cpm_pct", "exercise_modality", "exercise_intensity_pct"),
                         derived=(EXERCISE_DOSE,)).fit(None)


def _predictor(df: pd.DataFrame) -> EIHPredictor:
    X = ContractFeatures(derived=(EXERCISE_DOSE,)).fit_transform(df)
    # eih_pct driven by the dose times CPM: the booster must use the derived column
    y = 20 * X[EXERCISE_DOSE].fillna(0).to_numpy() * (X["cpm_pct"].to_numpy() > 10) - 5
    dm = xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns))
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3, "seed": 0}, dm, 30)
    meta = {"contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(X.columns), "link": "ordinal_normal",
            "outputs": ["eih_pct"], "calibration": {"temperature": 1.0, "bias": [0.0], "sigma": 15.0},
            "risk_cutoffs": {"moderate": 0.2, "high": 0.35}, "reference": build_reference(X)}
    return EIHPredictor(booster, ModelMeta.from_dict(meta))


def test_predictor_explains_the_dose_exactly_and_the_fast_path_agrees():
    df = _frame(300)
    p = _predictor(df)
    assert p.inputs == PREDICTORS and p.fields[-1] == EXERCISE_DOSE
    _, ex = p.predict_and_explain(df)
    assert ex.contributions.shape == (300, 1, len(PREDICTORS) + 1)
    assert np.abs(ex.base + ex.contributions.sum(axis=2) - ex.margins).max() < 1e-4
    # the dose carries real weight in this toy outcome
    assert np.abs(ex.contributions[:, 0, -1]).mean() > 1.0
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
               for r in df.to_dict("records")]
    X = p.matrix(records)
    assert np.allclose(X[:, -1], p.transform(df)[EXERCISE_DOSE].to_numpy(), equal_nan=True)
    fast = p.explain_matrix(X)
    assert np.array_equal(fast.contributions, ex.contributions)
    # predictions never list a derived feature as a missing input, nor warn about it
    assert all(EXERCISE_DOSE not in m for m in p.missing_optional_matrix(X))
    assert all(EXERCISE_DOSE not in w for ws in p.range_warnings_matrix(X) for w in ws)


def test_top_contributions_report_the_dose_with_its_computed_value():
    df = _frame(300)
    p = _predictor(df)
    rec = _rec("aerobic", 85, 30)
    ex = p.explain_records([rec])
    tops = top_contributions([rec], p.fields, ex.contributions, k=len(p.fields))[0]
    dose = [t for t in tops if t["field"] == EXERCISE_DOSE]
    assert len(dose) == 1 and dose[0]["value"] == pytest.approx(1.0)
    assert dose[0]["statement"].startswith(
        "Exercise dose relative to the EIH threshold of 1.00 (at or above the dose that reliably gives EIH)")
    assert "below the threshold for EIH" in statement(EXERCISE_DOSE, 0.0, "hyperalgesia")
    assert "40% of the dose" in statement(EXERCISE_DOSE, 0.4, "hypoalgesia")
    assert "of 0.75 (75% of the modality's heaviest load) raises the risk of hyperalgesia" in statement(
        EXERCISE_LOAD, 0.75, "hyperalgesia")
    assert "(no load that provokes pain)" in statement(EXERCISE_LOAD, 0.0, "hypoalgesia")


def test_config_names_the_derived_features_and_rejects_unknown_ones(tmp_path):
    assert TrainConfig().derived_features == (EXERCISE_DOSE, EXERCISE_LOAD)
    f = tmp_path / "c.toml"
    f.write_text("derived_features = []\n")
    assert load_config(f).derived_features == ()
    assert load_config(f).flat()["derived_features"] == "none"
    f.write_text('derived_features = ["dose_of_fun"]\n')
    with pytest.raises(ValueError, match="unknown derived features: dose_of_fun"):
        load_config(f)
