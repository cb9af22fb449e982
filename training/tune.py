"""Bounded hyper-parameter search for the XGBoost responder model, with the model's
explanation cost as a tie-breaker, and the out-of-fold calibration check.

Each trial runs K-fold cross-validation with early stopping (xgb.cv on the training
split only). Among trials whose CV log-loss is within `cost_tolerance` (relative) of the
best, the one that is cheapest to explain wins. Exact TreeSHAP costs about
O(trees x leaves x depth^2) per row; the proxy is rounds x classes x 2^depth x depth^2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from scipy.optimize import minimize

from training.config import TrainConfig

K = 3


@dataclass
class Trial:
    number: int
    params: dict
    cv_log_loss: float
    n_rounds: int
    cost: float


def explain_cost(params: dict, n_rounds: int, n_outputs: int = K) -> float:
    d = int(params["max_depth"])
    return float(n_rounds * n_outputs * (2**d) * d * d)


def base_params(cfg: TrainConfig, seed: int) -> dict:
    return {
        "objective": "multi:softprob",
        "num_class": K,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "max_cat_to_onehot": 1,
        "nthread": cfg.nthread,
        "seed": seed,
    }


def dmatrix(X: pd.DataFrame, y: np.ndarray | None = None) -> xgb.DMatrix:
    return xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns), nthread=-1)


def suggest(trial: optuna.Trial, cfg: TrainConfig) -> dict:
    s = cfg.search
    return {
        "max_depth": trial.suggest_int("max_depth", *s.max_depth),
        "learning_rate": trial.suggest_float("learning_rate", *s.learning_rate, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", *s.min_child_weight, log=True),
        "subsample": trial.suggest_float("subsample", *s.subsample),
        "colsample_bytree": trial.suggest_float("colsample_bytree", *s.colsample_bytree),
        "reg_lambda": trial.suggest_float("reg_lambda", *s.reg_lambda, log=True),
        "gamma": trial.suggest_float("gamma", *s.gamma),
    }


def search(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    seed: int,
    on_trial: Callable[[Trial], None] | None = None,
) -> list[Trial]:
    """Run the search; returns every trial (for logging)."""
    dtrain = dmatrix(X, y)
    trials: list[Trial] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(8, cfg.n_trials))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    # a sensible first guess: shallow trees, moderate learning rate
    study.enqueue_trial(
        {"max_depth": 3, "learning_rate": 0.05, "min_child_weight": 8.0, "subsample": 0.8,
         "colsample_bytree": 0.8, "reg_lambda": 1.0, "gamma": 0.0}
    )

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params(cfg, seed), **suggest(trial, cfg)}
        res = xgb.cv(
            params,
            dtrain,
            num_boost_round=cfg.max_rounds,
            folds=folds,
            early_stopping_rounds=cfg.early_stopping_rounds,
            seed=seed,
            verbose_eval=False,
        )
        best = int(res["test-mlogloss-mean"].idxmin())
        ll = float(res["test-mlogloss-mean"].iloc[best])
        t = Trial(trial.number, suggest_params_only(params), ll, best + 1, explain_cost(params, best + 1))
        trials.append(t)
        if on_trial:
            on_trial(t)
        return ll

    study.optimize(objective, n_trials=cfg.n_trials)
    return trials


def suggest_params_only(params: dict) -> dict:
    keep = ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda", "gamma")
    return {k: params[k] for k in keep}


def choose(trials: list[Trial], tolerance: float) -> Trial:
    """Cheapest-to-explain trial among those within `tolerance` of the best CV log-loss."""
    best = min(t.cv_log_loss for t in trials)
    near = [t for t in trials if t.cv_log_loss <= best * (1 + tolerance)]
    return min(near, key=lambda t: (t.cost, t.cv_log_loss, t.number))


def oof_margins(X: pd.DataFrame, y: np.ndarray, folds, params: dict, n_rounds: int) -> np.ndarray:
    """Out-of-fold raw margins of one configuration (for the calibration check)."""
    out = np.zeros((len(X), K))
    for tr, va in folds:
        b = xgb.train(params, dmatrix(X.iloc[tr], y[tr]), num_boost_round=n_rounds)
        out[va] = b.predict(dmatrix(X.iloc[va]), output_margin=True)
    return out


def fit_final(X: pd.DataFrame, y: np.ndarray, params: dict, n_rounds: int) -> xgb.Booster:
    return xgb.train(params, dmatrix(X, y), num_boost_round=n_rounds)


def _softmax(m):
    z = m - m.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _ll(m, y):
    p = _softmax(m)
    return -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1)))


def fit_calibration(margins: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, float, float]:
    """Temperature T and class bias b minimizing log-loss of softmax(m / T + b).

    Returns (T, b, log-loss before, log-loss after). An affine map of the margins keeps
    explanations exact (contributions scale by 1/T, b joins the base value)."""
    before = _ll(margins, y)

    def f(theta):
        T = np.exp(theta[0])
        b = np.array([theta[1], theta[2], 0.0])
        return _ll(margins / T + b, y)

    res = minimize(f, x0=np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    T = float(np.exp(res.x[0]))
    b = np.array([res.x[1], res.x[2], 0.0])
    return T, b, before, float(res.fun)
