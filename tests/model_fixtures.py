"""Session fixtures: one small simulated cohort and one trained, registered model in a
temporary MLflow store, shared by the training, serving and batch tests.

The whole test session points MLFLOW_TRACKING_URI at that temporary store, so no test
touches the project's own mlruns/.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

N_ROWS = 3000
SEED = 11


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield SimpleNamespace(dir=d, tracking_uri=uri)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> SimpleNamespace:
    from simulation import simulate

    d = tmp_path_factory.mktemp("cohort")
    cohort, oracle = simulate(N_ROWS, seed=SEED, n_sites=1)
    path, opath = d / "cohort.parquet", d / "cohort.oracle.parquet"
    cohort.to_parquet(path, index=False)
    oracle.to_parquet(opath, index=False)
    return SimpleNamespace(path=Path(path), oracle_path=Path(opath), frame=cohort, oracle=oracle)


@pytest.fixture(scope="session")
def trained_model(mlflow_store, small_cohort) -> SimpleNamespace:
    """A model trained on the small cohort (3 search trials), registered and @champion."""
    from rich.console import Console

    from training.config import TrainConfig
    from training.train import train

    # a held-out test split, as at 5,000 rows and more: the tests of this model read its test
    # split; repeated cross-validation of small cohorts has tests of its own
    cfg = TrainConfig(n_trials=3, cv_folds=3, bootstrap=50, max_rounds=400, validation="holdout")
    result = train(small_cohort.path, oracle=small_cohort.oracle_path, cfg=cfg, seed=SEED,
                   console=Console(quiet=True))
    return SimpleNamespace(result=result, uri="models:/eih-responder@champion", cfg=cfg,
                           store=mlflow_store, cohort=small_cohort)
