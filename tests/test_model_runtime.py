"""The model runtime's own parts: typed metadata, links and calibration, the matrix
builder, input checks, the store rule, and loading that pins an alias to one version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import PREDICTORS, RESPONSES
from features.derived import EXERCISE_DOSE
from features.pipeline import ContractFeatures
from model_runtime import links
from model_runtime.interpret import InputChecks, risk_level
from model_runtime.matrix import ModelMatrix
from model_runtime.metadata import ContractVersionError, ModelMeta

ROOT = Path(__file__).resolve().parent.parent


def _meta(**kw) -> ModelMeta:
    base = {"contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(PREDICTORS), "link": "ordinal_normal",
            "outputs": ["eih_pct"], "calibration": {"temperature": 1.5, "bias": [0.25], "sigma": 18.0, "applied": True}}
    return ModelMeta.from_dict({**base, **kw})


def test_metadata_round_trips_and_keeps_unknown_keys():
    meta = _meta(future_key={"a": 1})
    again = ModelMeta.from_json(meta.to_json())
    assert again == meta and again.extra == {"future_key": {"a": 1}}
    d = json.loads(meta.to_json())
    assert d["calibration"] == {"temperature": 1.5, "bias": [0.25], "sigma": 18.0, "applied": True}
    assert d["features"] == list(PREDICTORS) and meta.sigma == 18.0


def test_metadata_refuses_another_contract_major():
    _meta().check_contract()
    with pytest.raises(ContractVersionError, match="data contract 2.0"):
        _meta(contract_version="2.0").check_contract()


def test_calibration_is_an_affine_map_and_ordinal_probabilities_add_up():
    cal = links.MarginCalibration(2.0, (1.0,), 15.0, True)
    assert np.allclose(cal.apply(np.array([4.0, -2.0])), [[3.0], [0.0]])
    P = links.margins_to_proba(np.array([[-30.0], [0.0], [30.0]]), links.ORDINAL, 15.0, 10.0)
    assert np.allclose(P.sum(axis=1), 1.0)
    assert P[0, 2] > 0.9 and P[2, 0] > 0.9 and P[1, 0] == pytest.approx(P[1, 2])
    assert links.MarginCalibration.from_dict(cal.to_dict()) == cal
    S = links.margins_to_proba(np.array([[1.0, 1.0, 1.0]]), links.SOFTMAX)
    assert np.allclose(S, 1 / 3)


def test_the_matrix_is_the_same_from_records_and_from_a_frame():
    feats = ContractFeatures(derived=(EXERCISE_DOSE,)).fit(None)
    recs = [dict(EXAMPLE_RECORD), {**EXAMPLE_RECORD, "subject_id": "x2", "bdnf_ng_ml": None, "sex": "male",
                                   "exercise_modality": "isometric", "exercise_duration_min": 2.0}]
    X = feats.transform(pd.DataFrame(recs))
    builder = ModelMatrix(tuple(X.columns), len(feats.predictors), feats.categories_)
    a, b = builder.from_records(recs), builder.from_frame(X)
    assert a.shape == (2, len(X.columns)) and np.array_equal(a, b, equal_nan=True)
    assert EXERCISE_DOSE in X.columns and np.isnan(a[1, list(X.columns).index("bdnf_ng_ml")])
    with pytest.raises(ValueError, match="model's order"):
        builder.from_frame(X[list(X.columns)[::-1]])


def test_risk_levels_and_input_checks():
    assert list(risk_level(np.array([0.1, 0.2, 0.35, 0.9]), {"moderate": 0.2, "high": 0.35})) == [
        "low", "moderate", "high", "high"]
    ref = {"age_years": {"kind": "number", "min": 20.0, "max": 60.0},
           "sex": {"kind": "category", "categories": ["female", "male"], "proportions": [1.0, 0.0]}}
    fields = ("age_years", "sex", "bmi_kg_m2")
    checks = InputChecks(fields, fields, ref, {"sex": ["female", "male"]})
    X = np.array([[30.0, 0.0, np.nan], [70.0, 1.0, 25.0]])
    assert checks.missing_optional_matrix(X) == [["bmi_kg_m2"], []]
    assert checks.range_warnings_matrix(X) == [[], ["age_years is outside the range seen in training (20 to 60)",
                                                     "sex has a category not seen in training"]]
    df = pd.DataFrame({"age_years": [30.0, 70.0], "sex": ["female", "male"], "bmi_kg_m2": [np.nan, 25.0]})
    assert checks.range_warnings(df) == checks.range_warnings_matrix(X)
    assert checks.missing_optional(df) == checks.missing_optional_matrix(X)


@pytest.mark.parametrize(("env", "expect"), [
    ({}, "{root}/mlruns/mlflow.db"),
    ({"EIH_HOME": "{tmp}/home"}, "{tmp}/home/mlruns/mlflow.db"),
    ({"EIH_STORE_DIR": "{tmp}/store"}, "{tmp}/store/mlflow.db"),
])
def test_the_store_does_not_depend_on_the_working_directory(tmp_path, env, expect):
    code = "from model_runtime.settings import tracking_uri; print(tracking_uri())"
    clean = {k: v for k, v in __import__("os").environ.items()
             if k not in ("MLFLOW_TRACKING_URI", "EIH_HOME", "EIH_STORE_DIR")}
    clean.update({k: v.format(tmp=tmp_path) for k, v in env.items()})
    elsewhere = tmp_path / "some" / "other" / "folder"
    elsewhere.mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=clean, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sqlite:///" + expect.format(root=ROOT, tmp=tmp_path)
    assert not (elsewhere / "mlruns").exists()


@pytest.mark.slow
def test_an_alias_that_moves_while_loading_cannot_split_served_and_reported_version(trained_model, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from model_runtime.loading import load_model

    client = MlflowClient()
    name = "eih-responder"
    v1 = client.get_model_version_by_alias(name, "champion")
    v2 = client.create_model_version(name, source=v1.source, run_id=v1.run_id)
    real, calls = mlflow.pyfunc.load_model, []

    def moving(uri, *args, **kwargs):
        client.set_registered_model_alias(name, "champion", v2.version)  # a promotion lands mid-load
        calls.append(uri)
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(mlflow.pyfunc, "load_model", moving)
    try:
        lm = load_model(f"models:/{name}@champion")
    finally:
        client.set_registered_model_alias(name, "champion", v1.version)
    assert calls == [f"models:/{name}/{v1.version}"]
    assert lm.version == str(v1.version) and lm.uri == f"models:/{name}@champion"
    assert lm.predictor.outputs and set(RESPONSES) <= {"hypoalgesia", "no_change", "hyperalgesia"}


def test_a_missing_model_is_one_line_that_says_where_and_what_to_run(tmp_path, monkeypatch):
    from model_runtime.loading import ModelNotAvailable, load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(ModelNotAvailable) as err:
        load_model()
    text = str(err.value)
    assert "\n" not in text and f"{tmp_path}/empty.db" in text and "eih train" in text
