"""The varying-coefficient part of the boosted model of the expected change: a regression whose
protocol effects vary with the person (training/coefficients.py), distilled into trees and
blended with the searched trees in one booster.

Why. The literature describes the response to a bout as a dose-response whose slope depends on
the person: hypoalgesia grows with the dose of the bout when pain modulation works, and heavy
loads sensitize some people (docs/science.md). A regression in which the coefficients of each
modality's dose and load are linear in the person fields holds that shape with a few hundred
coefficients, where trees fitted to single noisy re-tests approximate every product of a person
field and the protocol by steps. The two make different errors, and their blend is closer to the
truth than either (benchmarks/RESULTS.md, issue 14).

How.
- Regression: training/coefficients.py, its rank and penalty by the search's CV folds.
- Distillation: the regression's expected change for the training people, under their own
  protocol and under the protocols of `COPIES` random other people, is fitted by boosted trees
  with the configured interaction structure. The target has no measurement noise, so these
  trees follow the regression closely; every term of the regression joins one person field to
  the protocol, which the interaction structure allows.
- Blend: weight w on the average of the searched trees, 1 - w on the distilled trees, merged
  into one XGBoost booster (`averaging.merge`), so TreeSHAP, the explanation tables, the grid
  and the batch path see one booster and the explanations stay exact. w minimizes the
  out-of-fold three-class log-loss (0 to 1 in steps of 0.1): cross-validation decides, and
  w = 1 is the trees alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from features.interactions import protocol_columns
from training import averaging, coefficients, tune
from training.config import TrainConfig
from training.metrics import ordinal_log_loss

WEIGHT, RANK, ALPHA = "varying_weight", "varying_rank", "varying_alpha"
"""Keys of a parameter dict that ask `fit`/`oof` for the blend (not XGBoost parameters)."""
WEIGHTS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))
COPIES = 3
DISTIL = {"max_depth": 3, "learning_rate": 0.3, "min_child_weight": 1.0, "reg_lambda": 1.0,
          "subsample": 1.0, "colsample_bytree": 1.0, "gamma": 0.0}
DISTIL_ROUNDS = 1200
"""The distilled trees fit a noise-free target, so they may learn fast and long without
overfitting; on 20,000 fresh simulated people their expected change is about 1 %-point (root
mean square) from the rank-1 regression's (seed 42: 0.96 at learning rate 0.3, 1.27 at 0.1;
3,000 rounds reach 0.81 and gain about 0.0007 in capture for 1,800 more trees). Depth 3 keeps
every tree within the explanation tables' cell budget (`model_runtime.shap_tables.MAX_CELLS`;
depth-4 distilled trees reach 5,760 cells and 500,000 in all) at a cost of about 0.0006 in
capture against depth 4 (benchmarks/RESULTS.md)."""
SEARCHED = ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda", "gamma",
            "monotone_constraints")


def wanted(params: dict) -> bool:
    """Whether a parameter dict asks for the blend."""
    return WEIGHT in params


def applies(cfg: TrainConfig, params: dict, n_rows: int) -> bool:
    """Whether training blends the chosen configuration `params` on `n_rows` training rows:
    configured on, at least `varying_min_rows` rows, a boosted expected-change model without
    monotone constraints (neither the regression nor the splines are constrained)."""
    return (cfg.varying and n_rows >= cfg.varying_min_rows and cfg.ordinal and not cfg.monotone
            and tune.family(params) == "xgboost")


def own(params: dict) -> dict:
    """The parameters without the blend's keys."""
    return {k: v for k, v in params.items() if k not in (WEIGHT, RANK, ALPHA)}


def with_other_protocols(X: pd.DataFrame, seed: int) -> pd.DataFrame:
    """X, then `COPIES` copies whose protocol columns are those of randomly permuted rows."""
    rng = np.random.default_rng(seed)
    protocol = protocol_columns(list(X.columns))
    copies = [X]
    for _ in range(COPIES):
        Xc = X.copy()
        order = rng.permutation(len(X))
        for c in protocol:
            Xc[c] = X[c].iloc[order].to_numpy()
            if isinstance(X[c].dtype, pd.CategoricalDtype):
                Xc[c] = pd.Categorical(Xc[c], categories=X[c].cat.categories)
        copies.append(Xc)
    return pd.concat(copies, ignore_index=True)


def distil(regression: coefficients.Regression, X: pd.DataFrame, params: dict) -> xgb.Booster:
    """Boosted trees fitted to the regression's expected change of X's people under their own and
    other people's protocols, with `params`' objective, structure and seed."""
    Xa = with_other_protocols(X, int(params.get("seed", 0)))
    base = {k: v for k, v in averaging.split_params(own(params))[0].items() if k not in SEARCHED}
    return xgb.train({**base, **DISTIL}, tune.dmatrix(Xa, regression.predict(Xa)), num_boost_round=DISTIL_ROUNDS)


def component(X: pd.DataFrame, target: np.ndarray, params: dict) -> xgb.Booster:
    """The distilled varying-coefficient trees of one training set."""
    return distil(coefficients.fit(X, target, int(params[RANK]), float(params[ALPHA])), X, params)


def fit(params: dict, X: pd.DataFrame, target: np.ndarray, n_rounds: int) -> xgb.Booster:
    """The blended booster: weight w on the searched trees (their seed average), 1 - w on the
    distilled varying-coefficient trees."""
    w = float(params[WEIGHT])
    if w <= 0.0:
        return component(X, target, params)
    trees = averaging.fits(own(params), tune.dmatrix(X, target), n_rounds)
    if w >= 1.0:
        return averaging.merge(trees)
    k = len(trees)
    return averaging.merge(trees + [component(X, target, params)], [w / k] * k + [1.0 - w])


def oof(X: pd.DataFrame, target: np.ndarray, folds, params: dict) -> np.ndarray:
    """Out-of-fold expected change of the distilled component alone."""
    out = np.zeros(len(X))
    for tr, va in folds:
        out[va] = component(X.iloc[tr], target[tr], params).predict(tune.dmatrix(X.iloc[va]), output_margin=True)
    return out


def blend(X: pd.DataFrame, target: np.ndarray, folds, params: dict, trees_oof: np.ndarray,
          threshold_pct: float) -> tuple[dict, np.ndarray, dict]:
    """The blend's parameters (the regression's rank and penalty, and the weight, chosen out of
    fold), the blended out-of-fold expected change (n, 1) and each weight's out-of-fold
    log-loss (for the run's record)."""
    rank, alpha = coefficients.choose(X, target, folds)
    with_alpha = {**params, RANK: int(rank), ALPHA: float(alpha)}
    vc = oof(X, target, folds, with_alpha)
    trees = trees_oof[:, 0]
    scores = {float(w): ordinal_log_loss(target, w * trees + (1 - w) * vc, threshold_pct) for w in WEIGHTS}
    w = min(scores, key=lambda v: (scores[v], -v))
    return {**with_alpha, WEIGHT: float(w)}, (w * trees + (1 - w) * vc)[:, None], scores
