"""Session fixtures: one small simulated cohort and one trained, registered model in a
temporary MLflow store, shared by the training, serving and batch tests.

The whole test session points MLFLOW_TRACKING_URI at that temporary store, so no test
touches the project's own mlruns/. mlflow.set_tracking_uri and set_registry_uri (which
training calls) export MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI and keep a process-wide
URI: `use_store` and the autouse `_store_restored` put all of them back after a test or a
module that moved to a store of its own, so a later MlflowClient never reads a stale registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

N_ROWS = 3000
SEED = 11


STORE_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "EIH_STORE_RULE")


def _restore_store(saved: dict[str, str | None]) -> None:
    """Put the store variables back as `saved` and mlflow's process-wide URIs with them."""
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        uri = saved["MLFLOW_TRACKING_URI"]
        if uri and mlflow.get_tracking_uri() != uri:
            mlflow.set_tracking_uri(uri)
        if uri and mlflow.get_registry_uri() != (saved["MLFLOW_REGISTRY_URI"] or uri):
            mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"] or uri)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def use_store(uri: str) -> Iterator[str]:
    """Point this process at the MLflow store `uri`, and back at the previous one on exit."""
    saved = {k: os.environ.get(k) for k in STORE_VARS}
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ.pop("EIH_STORE_RULE", None)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield uri
    finally:
        _restore_store(saved)


@pytest.fixture(autouse=True)
def _store_restored() -> Iterator[None]:
    """Whatever store a test moved to (monkeypatch, configure_mlflow, train), the next test
    starts where this one did."""
    saved = {k: os.environ.get(k) for k in STORE_VARS}
    yield
    _restore_store(saved)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("mlflow-store")
    with use_store(f"sqlite:///{d / 'mlflow.db'}") as uri:
        yield SimpleNamespace(dir=d, tracking_uri=uri)


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
