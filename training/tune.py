"""Bounded hyper-parameter search for the XGBoost responder model, with the model's
explanation cost as a tie-breaker, and the out-of-fold calibration check.

Each trial runs K-fold cross-validation with early stopping (xgb.cv on the training
split only), scored by the three-class log-loss for both model kinds (the ordinal
model's regression is turned into class probabilities with the fold's residual spread).
Among trials whose CV log-loss is within `cost_tolerance` (relative) of the best, the one
that is cheapest to explain wins. Exact TreeSHAP costs about O(trees x leaves x depth^2)
per row; the proxy is rounds x outputs x 2^depth x depth^2.

The target is the class code (multiclass) or the measured eih_pct (ordinal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from scipy.optimize import minimize

from features import interactions
from features.pipeline import ContractFeatures
from model_runtime.links import NORMAL_SPREAD, ORDINAL, SOFTMAX, MarginCalibration, margins_to_proba
from training import averaging, spline, varying
from training.config import SearchSpace, TrainConfig
from training.metrics import log_loss, ordinal_log_loss

K = 3
CV_METRIC = "class_logloss"


def link(cfg: TrainConfig) -> str:
    """The link of the configured model kind: ORDINAL or SOFTMAX."""
    return ORDINAL if cfg.ordinal else SOFTMAX


def n_outputs(cfg: TrainConfig) -> int:
    """Margins per row: 1 for the ordinal model, 3 for the multiclass one."""
    return 1 if cfg.ordinal else K


@dataclass
class Trial:
    """One search trial: its searched parameters, CV log-loss, best number of rounds and explanation cost."""

    number: int
    params: dict
    cv_log_loss: float
    n_rounds: int
    cost: float


def explain_cost(params: dict, n_rounds: int, n_outputs: int) -> float:
    """The TreeSHAP cost proxy rounds x outputs x 2^depth x depth^2 (relative, not seconds),
    times the fits a seed average merges, plus the distilled trees of a blend."""
    def trees(rounds: int, depth: int) -> int:
        return rounds * n_outputs * (2**depth) * depth * depth

    cost = trees(n_rounds, int(params["max_depth"])) * int(params.get(averaging.KEY, 1))
    if varying.wanted(params) and float(params[varying.WEIGHT]) < 1:
        cost += trees(varying.DISTIL_ROUNDS, varying.DISTIL["max_depth"])
    return float(cost)


MONOTONE: dict[str, int] = {"cpm_pct": 1, "pseq_total": 1, "pcs_total": -1, "csi_score": -1}
"""Firm directions of the expected PPT change (docs/science.md): more efficient CPM and higher
self-efficacy go with more hypoalgesia, more catastrophizing and central sensitization with less.
The simulator's truth moves this way for every person (tests/test_training_e2e.py checks it)."""


def monotone_constraints(cfg: TrainConfig) -> dict[str, int]:
    """XGBoost's `monotone_constraints` by feature name for the expected-change booster ({} when off)."""
    if not (cfg.monotone and cfg.ordinal):
        return {}
    return {f: s for f, s in MONOTONE.items() if f in cfg.predictors}


def interaction_constraints(cfg: TrainConfig) -> list[list[str]] | None:
    """XGBoost's `interaction_constraints` by column name for the configured structure
    (features/interactions.py), None for free trees."""
    if cfg.interactions == interactions.FREE:
        return None
    columns = ContractFeatures(predictors=cfg.predictors, derived=cfg.derived_features).fit(None).get_feature_names_out()
    return interactions.groups(list(columns))


def base_params(cfg: TrainConfig, seed: int) -> dict:
    """The XGBoost parameters every trial shares: hist trees, native categorical splits, the
    objective of the model kind, the interaction structure, and no default eval metric (trials
    are scored by `cv_metric`)."""
    common = {"tree_method": "hist", "max_cat_to_onehot": 1, "nthread": cfg.nthread, "seed": seed}
    if (groups := interaction_constraints(cfg)) is not None:
        common["interaction_constraints"] = groups
    if cfg.ordinal:
        mono = monotone_constraints(cfg)
        return {**common, "objective": "reg:squarederror", "disable_default_eval_metric": 1,
                **({"monotone_constraints": mono} if mono else {})}
    return {**common, "objective": "multi:softprob", "num_class": K, "disable_default_eval_metric": 1}


def cv_metric(cfg: TrainConfig) -> Callable:
    """xgb.cv metric: three-class log-loss of a fold's predictions (lower is better)."""
    t = cfg.label_threshold_pct

    def metric(predt: np.ndarray, dmat: xgb.DMatrix) -> tuple[str, float]:
        label = dmat.get_label()
        if cfg.ordinal:
            return CV_METRIC, ordinal_log_loss(label, predt.reshape(-1), t)
        return CV_METRIC, log_loss(label.astype("int64"), predt.reshape(len(label), K))

    return metric


def dmatrix(X: pd.DataFrame, y: np.ndarray | None = None) -> xgb.DMatrix:
    """A DMatrix of a feature frame (native categoricals, the frame's column names), labelled
    with `y` when given, built on all cores."""
    return xgb.DMatrix(X, label=y, enable_categorical=True, feature_names=list(X.columns), nthread=-1)


def suggest(trial: optuna.Trial, cfg: TrainConfig) -> dict:
    """One trial's tree parameters drawn from `cfg.search` (learning_rate, min_child_weight and
    reg_lambda on a log scale)."""
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


FIRST_GUESS = {"max_depth": 3, "learning_rate": 0.05, "min_child_weight": 8.0, "subsample": 0.8,
               "colsample_bytree": 0.8, "reg_lambda": 1.0, "gamma": 0.0}
"""The search's first trial: shallow trees, a moderate learning rate."""


def first_guess(space: SearchSpace) -> dict:
    """`FIRST_GUESS` moved into `space`'s bounds: a narrowed search never starts outside them."""
    return {k: type(v)(min(max(v, getattr(space, k)[0]), getattr(space, k)[1])) for k, v in FIRST_GUESS.items()}


def search(
    X: pd.DataFrame,
    target: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    seed: int,
    on_trial: Callable[[Trial], None] | None = None,
) -> list[Trial]:
    """Run the search; returns every trial (for logging)."""
    dtrain = dmatrix(X, target)
    metric = cv_metric(cfg)
    trials: list[Trial] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(8, cfg.n_trials))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(first_guess(cfg.search))

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params(cfg, seed), **suggest(trial, cfg)}
        res = xgb.cv(
            params,
            dtrain,
            num_boost_round=cfg.max_rounds,
            folds=folds,
            early_stopping_rounds=cfg.early_stopping_rounds,
            custom_metric=metric,
            seed=seed,
            verbose_eval=False,
        )
        col = res[f"test-{CV_METRIC}-mean"]
        best = int(np.argmin(col.to_numpy()))
        ll = float(col.iloc[best])
        t = Trial(trial.number, suggest_params_only(params), ll, best + 1, explain_cost(params, best + 1, n_outputs(cfg)))
        trials.append(t)
        if on_trial:
            on_trial(t)
        return ll

    if "xgboost" in cfg.families:
        study.optimize(objective, n_trials=cfg.n_trials)
    if "spline" in cfg.families and cfg.ordinal and not cfg.monotone:  # the splines are not constrained
        t = Trial(len(trials), *spline.candidate(X, target, folds, cfg.label_threshold_pct), 0, 0.0)
        trials.append(t)
        if on_trial:
            on_trial(t)
    if not trials:
        raise ValueError("no model family to search: the spline family models the expected change (model ="
                         " distributional or ordinal) and is not searched with monotone = true")
    return trials


def family(params: dict) -> str:
    """The model family of a configuration: "spline" or "xgboost"."""
    return spline.FAMILY if spline.is_spline(params) else "xgboost"


def suggest_params_only(params: dict) -> dict:
    """The searched parameters of a full XGBoost parameter dict (what a `Trial` keeps)."""
    if spline.is_spline(params):
        return dict(params)
    keep = ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda", "gamma")
    return {k: params[k] for k in keep}


def choose(trials: list[Trial], tolerance: float) -> Trial:
    """Cheapest-to-explain trial among those within `tolerance` of the best CV log-loss."""
    best = min(t.cv_log_loss for t in trials)
    near = [t for t in trials if t.cv_log_loss <= best * (1 + tolerance)]
    return min(near, key=lambda t: (t.cost, t.cv_log_loss, t.number))


def oof_margins(X: pd.DataFrame, target: np.ndarray, folds, params: dict, n_rounds: int, n_out: int) -> np.ndarray:
    """Out-of-fold raw margins (n, n_out) of one configuration (for the calibration)."""
    if spline.is_spline(params):
        return spline.oof_margins(X, target, folds, params)
    out = np.zeros((len(X), n_out))
    for tr, va in folds:
        # a fold's model is only predicted: the mean of its seed fits' margins, no merged booster
        dva = dmatrix(X.iloc[va])
        out[va] = np.mean([b.predict(dva, output_margin=True) for b in averaging.fits(
            params, dmatrix(X.iloc[tr], target[tr]), n_rounds)], axis=0).reshape(len(va), n_out)
    return out


def fit_final(X: pd.DataFrame, target: np.ndarray, params: dict, n_rounds: int):
    """A booster trained on all of X for exactly `n_rounds` (no early stopping; the merged seed
    average when `params` asks for one, training/averaging.py; blended with the distilled
    varying-coefficient trees when it asks for that, training/varying.py), or the spline
    family's additive output."""
    if spline.is_spline(params):
        return spline.fit(X, target, params)
    if varying.wanted(params):
        return varying.fit(params, X, target, n_rounds)
    return averaging.fit(params, dmatrix(X, target), n_rounds)


def fit_params(cfg: TrainConfig, seed: int, trial: Trial) -> dict:
    """The parameters every fit of a chosen configuration uses: the shared XGBoost parameters,
    the trial's, and the seed average of `cfg.average_of` fits for a boosted configuration."""
    params = {**base_params(cfg, seed), **trial.params}
    if not spline.is_spline(trial.params) and cfg.average_of > 1:
        params[averaging.KEY] = cfg.average_of
    return params


@dataclass
class Calibration:
    """margin = raw / temperature + bias (temperature: one for all outputs, or one each);
    sigma: the ordinal model's residual spread."""

    temperature: float | np.ndarray
    bias: np.ndarray
    sigma: float | None
    log_loss_before: float  # out of fold, without the correction of the mean
    log_loss_after: float  # with it
    sigma_alone: float | None = None  # ordinal: the spread fitted without temperature and bias
    alone: Calibration | None = None  # distributional: the spread's map fitted without the mean's correction

    def to_runtime(self, applied: bool) -> MarginCalibration:
        """The calibration a model applies at run time."""
        t = self.temperature
        temperature = tuple(float(v) for v in t) if np.ndim(t) else float(t)
        return MarginCalibration(temperature, tuple(float(v) for v in self.bias),
                                 None if self.sigma is None else float(self.sigma), bool(applied))

    def proba(self, raw: np.ndarray, link_kind: str, threshold_pct: float) -> np.ndarray:
        """Class probabilities of raw margins (n, K) under this calibration."""
        return margins_to_proba(raw / self.temperature + self.bias, link_kind, self.sigma, threshold_pct)

    def identity(self) -> Calibration:
        """The same without the correction of the mean (when it is not worth applying)."""
        if self.alone is not None:
            return self.alone
        return Calibration(1.0, np.zeros_like(self.bias), self.sigma_alone, self.log_loss_before, self.log_loss_before,
                           self.sigma_alone)


def _nelder_mead(f, x0):
    return minimize(f, x0=np.asarray(x0, dtype="float64"), method="Nelder-Mead",
                    options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})


def fit_calibration(margins: np.ndarray, y: np.ndarray, link_kind: str, threshold_pct: float,
                    target: np.ndarray | None = None) -> Calibration:
    """Out-of-fold calibration minimizing the three-class log-loss.

    softmax: temperature T and class bias b of softmax(m / T + b) (before = T 1, b 0).
    ordinal: the residual spread sigma always (it is part of the model; started from the
    residual SD of `target`, the measured eih_pct), then T and b of m / T + b on top (before
    = sigma alone). An affine map of the margins keeps explanations exact (contributions
    scale by 1/T, b joins the base value)."""
    if link_kind == SOFTMAX:
        def ll(T, b):
            return log_loss(y, margins_to_proba(margins / T + b, SOFTMAX))

        before = ll(1.0, np.zeros(K))
        res = _nelder_mead(lambda th: ll(np.exp(th[0]), np.array([th[1], th[2], 0.0])), np.zeros(3))
        b = np.array([res.x[1], res.x[2], 0.0])
        return Calibration(float(np.exp(res.x[0])), b, None, before, float(res.fun))

    def ll(T, b, sigma):
        return log_loss(y, margins_to_proba(margins / T + b, ORDINAL, sigma, threshold_pct))

    s0 = float(np.std(target - margins[:, 0])) if target is not None else 15.0
    r1 = _nelder_mead(lambda th: ll(1.0, 0.0, np.exp(th[0])), [np.log(s0)])
    sigma0 = float(np.exp(r1.x[0]))
    r3 = _nelder_mead(lambda th: ll(np.exp(th[0]), th[1], np.exp(th[2])), [0.0, 0.0, np.log(sigma0)])
    return Calibration(float(np.exp(r3.x[0])), np.array([r3.x[1]]), float(np.exp(r3.x[2])), float(r1.fun), float(r3.fun),
                       sigma0)


LOG_T_RANGE = (-4.0, 6.0)


def fit_spread_calibration(margins: np.ndarray, y: np.ndarray, threshold_pct: float) -> Calibration:
    """Out-of-fold calibration of the distributional model (`normal_spread`), minimizing the
    three-class log-loss. `margins` (n, 2): the expected change and the log-variance booster's
    margin. The spread's map log_sd = logvar / T_v + b_v is always fitted (it is part of the
    model; started at log_sd = logvar / 2); the mean's T and b on top of it (before = the
    spread's map alone). Affine maps keep the explanations of both outputs exact."""
    def ll(t_mu, b_mu, t_v, b_v):
        m = np.column_stack([margins[:, 0] / t_mu + b_mu, margins[:, 1] / t_v + b_v])
        return log_loss(y, margins_to_proba(m, NORMAL_SPREAD, None, threshold_pct))

    def temp(log_t: float) -> float:
        # a spread booster with (nearly) one value leaves its temperature unidentified: keep
        # the search where exp() is finite (T up to ~400 means "the booster carries nothing")
        return float(np.exp(np.clip(log_t, *LOG_T_RANGE)))

    r2 = _nelder_mead(lambda th: ll(1.0, 0.0, temp(th[0]), th[1]), [np.log(2.0), 0.0])
    tv0, bv0 = temp(r2.x[0]), float(r2.x[1])
    alone = Calibration(np.array([1.0, tv0]), np.array([0.0, bv0]), None, float(r2.fun), float(r2.fun))
    r4 = _nelder_mead(lambda th: ll(temp(th[0]), th[1], temp(th[2]), th[3]), [0.0, 0.0, np.log(tv0), bv0])
    return Calibration(np.array([temp(r4.x[0]), temp(r4.x[2])]), np.array([r4.x[1], r4.x[3]]), None,
                       float(r2.fun), float(r4.fun), alone=alone)


def spread_params(cfg: TrainConfig, seed: int, base_score: float) -> dict:
    """Parameters of the spread booster: gamma regression (log link) of squared residuals,
    so its margin is the log of the expected squared residual (the variance)."""
    return {"tree_method": "hist", "max_cat_to_onehot": 1, "nthread": cfg.nthread, "seed": seed,
            "objective": "reg:gamma", "base_score": float(base_score), "max_depth": cfg.spread_max_depth,
            "learning_rate": cfg.spread_learning_rate, "min_child_weight": cfg.spread_min_child_weight,
            "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0}


def squared_residuals(target: np.ndarray, mean_margins: np.ndarray) -> np.ndarray:
    """(y - predicted mean)^2, kept away from 0 (gamma regression needs positive labels)."""
    return np.maximum((target - mean_margins.reshape(-1)) ** 2, 1e-3)


def oof_spread(X: pd.DataFrame, r2: np.ndarray, folds, cfg: TrainConfig, seed: int,
               mean_params: dict | None = None) -> tuple[np.ndarray, int, dict]:
    """Out-of-fold log-variance margins of the spread booster, its number of rounds (by early
    stopping on the CV gamma deviance) and its parameters; for a spline-family mean, the
    family's gamma regression instead (0 rounds)."""
    if mean_params is not None and spline.is_spline(mean_params):
        params = {**mean_params, "output": "spread", "seed": seed}
        return spline.oof_margins(X, r2, folds, params)[:, 0], 0, params
    params = spread_params(cfg, seed, float(np.mean(r2)))
    res = xgb.cv(params, dmatrix(X, r2), num_boost_round=cfg.spread_max_rounds, folds=folds,
                 early_stopping_rounds=cfg.early_stopping_rounds, metrics="gamma-deviance", seed=seed, verbose_eval=False)
    n_rounds = max(1, len(res))
    return oof_margins(X, r2, folds, params, n_rounds, 1)[:, 0], n_rounds, params
