"""Model updating for a new site (Steyerberg, Clinical Prediction Models, ch. 20), as pure
functions on a parent distributional model and the site's people with outcomes:

- `none`: the parent as it is;
- `in_the_large`: a new bias of the expected change (the site's mean response differs);
- `recalibrate`: a new temperature and bias of both outputs, the expected change and the log
  spread (the site's effects are weaker or stronger, its readings noisier);
- `refit_offset`: the parent's mean booster continued by a few shallow trees fitted to the
  site's measured change with the parent's margin as the offset, then recalibrated.

- `recalibrate_shrunk`: the recalibration pulled toward the parent: margins = (1 - w) x the
  parent's + w x the recalibrated ones, w = n / (n + PRIOR_PEOPLE) (0.11 at 200 people).

The calibration steps are new affine `MarginCalibration`s of the same boosters and
`refit_offset` adds trees to the same booster, so exact explanations stay exact.

Choosing (`choose`): a step up the ladder is proven when, in repeated cross-validation on the
site's people, it beats the step below with a paired 95 % interval; `refit_offset` is open only
from `MIN_REFIT_PEOPLE` people (its trees have about as many leaf values as 200 people can pin
down; on 32 simulated sites it was proven once on 200 people and then lost 0.24 of capture on
that site's fresh people). When none is proven, the shrunk recalibration is taken if its
out-of-fold log-loss is not above the parent's.

Fitting (`fit_update`): no calibration the site's people fit is taken in full. A proof shows
that the site differs, not by how much: 200 local people can be a skewed sample of their site
(one site's 200 had 57 % hypoalgesia against the site's 48 %), and on simulated sites a proven
full recalibration lost 0.11 of capture on the site's next patients while its fit pulled
halfway toward the parent gained 0.05. So a proven calibration step is pooled with the parent
counted as `PROVEN_PRIOR_PEOPLE` people, and the unproven shrunk recalibration with the parent
counted as `PRIOR_PEOPLE`. Both weights were chosen on simulated sites (benchmarks/small_cohort_bench.py; RESULTS.md
"Small cohorts"). 200 for proven steps, against taking them in full, on 16 sites (worst change in
capture on the site's fresh people -0.004 against -0.110), confirmed on 24 others. 1,600 as
the smaller of 800 / 1,600 with which the update never lost more than 0.02 on 112 sites (800:
-0.024 at one of them; earlier, always taking the shrunk recalibration on 32 of them at 200 / 400 /
800 / 1,600: worst -0.054 / -0.029 / -0.015 / -0.008), then confirmed on 80 sites seen by
neither choice: worst -0.006, mean lift +0.033 (800: -0.012, +0.046). The site's own fit gets
weight 0.11 at 200 people and 0.38 at 1,000.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.optimize import minimize_scalar
from sklearn.model_selection import StratifiedKFold

from data_contracts.labels import eih_pct
from model_runtime.links import NORMAL_SPREAD, MarginCalibration, margins_to_proba
from model_runtime.predictor import EIHPredictor
from training import metrics, tune

STEPS = ("none", "in_the_large", "recalibrate", "refit_offset")
"""The ladder of closed testing, in order."""
SHRUNK = "recalibrate_shrunk"
PRIOR_PEOPLE = 1600
PROVEN_PRIOR_PEOPLE = 200
MIN_REFIT_PEOPLE = 500
OFFSET_ROUNDS, OFFSET_PARAMS = 20, {"objective": "reg:squarederror", "max_depth": 2, "learning_rate": 0.05,
                                    "min_child_weight": 20.0, "reg_lambda": 10.0, "tree_method": "hist",
                                    "max_cat_to_onehot": 1, "nthread": 2}


def ladder(parent: EIHPredictor, n_people: int) -> tuple[str, ...]:
    """The steps open to a parent updated on `n_people` (the closed-testing ladder, then the
    shrunk recalibration): `refit_offset` continues a booster, so a spline-family parent
    (additive outputs) climbs only as far as `recalibrate`, as does any parent below
    `MIN_REFIT_PEOPLE` people."""
    refit = not parent.additive and n_people >= MIN_REFIT_PEOPLE
    return (*(STEPS if refit else STEPS[:3]), SHRUNK)


def _with(parent: EIHPredictor, cal: MarginCalibration, boosters=None) -> EIHPredictor:
    meta = replace(parent.meta, calibration=cal, extra=dict(parent.meta.extra))
    return EIHPredictor(list(boosters or parent.boosters), meta)


def in_the_large(parent: EIHPredictor, raw: np.ndarray, y: np.ndarray) -> EIHPredictor:
    """A new bias of the expected change: the parent's temperatures kept."""
    c, t = parent.meta.calibration, parent.threshold_pct
    T, b = c.temperature_array(raw.shape[1]), c.bias_array(raw.shape[1])

    def ll(shift: float) -> float:
        m = raw / T + b
        m[:, 0] += shift
        return metrics.log_loss(y, margins_to_proba(m, NORMAL_SPREAD, None, t))

    shift = minimize_scalar(ll, bounds=(-60, 60), method="bounded").x
    bias = b.copy()
    bias[0] += shift
    return _with(parent, MarginCalibration(tuple(T), tuple(float(v) for v in bias), None, True))


def recalibrate(parent: EIHPredictor, raw: np.ndarray, y: np.ndarray, boosters=None) -> EIHPredictor:
    """A new temperature and bias of both outputs, fitted to the site's people."""
    fitted = tune.fit_spread_calibration(raw, y, parent.threshold_pct)
    return _with(parent, fitted.to_runtime(True), boosters)


def shrunk(parent: EIHPredictor, recalibrated: EIHPredictor, n: int, prior_people: int = PRIOR_PEOPLE) -> EIHPredictor:
    """A calibration step fitted on n people (`recalibrate`, `in_the_large`) pulled toward the
    parent's: the mean of the two calibrated margins weighted n : prior_people, itself one affine
    map of the raw margins."""
    pc, full, k = parent.meta.calibration, recalibrated.meta.calibration, len(parent.outputs)
    w = n / (n + prior_people)
    inv_t = (1 - w) / pc.temperature_array(k) + w / full.temperature_array(k)
    bias = (1 - w) * pc.bias_array(k) + w * full.bias_array(k)
    return _with(parent, MarginCalibration(tuple(float(v) for v in 1 / inv_t), tuple(float(v) for v in bias), None, True))


def refit_offset(parent: EIHPredictor, X: pd.DataFrame, target: np.ndarray, y: np.ndarray) -> EIHPredictor:
    """The parent's mean booster continued on the site's measured change, then recalibrated."""
    mean = xgb.train(OFFSET_PARAMS, tune.dmatrix(X, target), num_boost_round=OFFSET_ROUNDS,
                     xgb_model=copy.deepcopy(parent.boosters[0]))
    boosters = [mean, *parent.boosters[1:]]
    trial = _with(parent, parent.meta.calibration, boosters)
    return recalibrate(parent, trial.raw_margins(X), y, boosters)


def fit_step(step: str, parent: EIHPredictor, df: pd.DataFrame, y: np.ndarray) -> EIHPredictor:
    """The parent updated by `step` on the people `df` (labels `y`)."""
    if step == "none":
        return parent
    X = parent.transform(df)
    raw = parent.raw_margins(X)
    if step == "in_the_large":
        return in_the_large(parent, raw, y)
    if step == "recalibrate":
        return recalibrate(parent, raw, y)
    if step == SHRUNK:
        return shrunk(parent, recalibrate(parent, raw, y), len(y))
    return refit_offset(parent, X, eih_pct(df).to_numpy(dtype="float64"), y)


POOLED_STEPS = ("in_the_large", "recalibrate")
"""The calibration steps an update takes pooled with the parent when proven."""


def registered(step: str) -> str:
    """The key of `out_of_fold`'s predictions of the model an update registers for `step`."""
    return f"{step}_pooled" if step in POOLED_STEPS else step


def pool(step: str, parent: EIHPredictor, fitted: EIHPredictor, n: int) -> EIHPredictor:
    """What an update registers for `step` given its full fit on n people: a calibration step
    pooled with the parent (weight n : PROVEN_PRIOR_PEOPLE), any other step as fitted."""
    return shrunk(parent, fitted, n, PROVEN_PRIOR_PEOPLE) if step in POOLED_STEPS else fitted


def fit_update(step: str, parent: EIHPredictor, df: pd.DataFrame, y: np.ndarray) -> EIHPredictor:
    """The model an update registers for the chosen `step` (`pool` of its full fit)."""
    return pool(step, parent, fit_step(step, parent, df, y), len(y))


def out_of_fold(parent: EIHPredictor, df: pd.DataFrame, y: np.ndarray, repeats: int, folds: int,
                seed: int) -> dict[str, np.ndarray]:
    """(repeats, n, 3) out-of-fold probabilities of every step of the parent's ladder on the site's
    people (the proofs), and of the pooled form of each calibration step (what `fit_update`
    registers, under `registered(step)`)."""
    n = len(df)
    steps = ladder(parent, n)
    out = {s: np.zeros((repeats, n, 3)) for s in (*steps, *map(registered, POOLED_STEPS))}
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + 1000 * (r + 1))
        for tr, te in skf.split(np.zeros(n), y):
            fitted = {s: fit_step(s, parent, df.iloc[tr], y[tr]) for s in steps if s != SHRUNK}
            fitted[SHRUNK] = shrunk(parent, fitted["recalibrate"], len(tr))  # the same fold's recalibration
            for s in POOLED_STEPS:
                fitted[registered(s)] = pool(s, parent, fitted[s], len(tr))
            for s, child in fitted.items():
                out[s][r, te] = child.predict_proba(df.iloc[te])
    return out


def _person_ll(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(n,) each person's log-loss averaged over the repeats."""
    return np.mean([-np.log(np.clip(P[r][np.arange(len(y)), y], 1e-15, 1.0)) for r in range(P.shape[0])], axis=0)


def choose(oof: dict[str, np.ndarray], y: np.ndarray, n_boot: int = 500, seed: int = 0) -> tuple[str, dict[str, float]]:
    """Up the ladder one step at a time (closed testing, after Vergouwe et al. 2017): a more
    complex step replaces the chosen one only if the upper 95 % bound of their paired
    out-of-fold log-loss difference (people resampled) is below 0. When none is proven, the
    shrunk recalibration (when computed) is taken if its mean out-of-fold log-loss is not above
    the parent's. Returns (step, the mean out-of-fold log-loss of every step)."""
    per = {s: _person_ll(y, P) for s, P in oof.items()}
    ll = {s: float(v.mean()) for s, v in per.items()}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y), (n_boot, len(y)))
    chosen = STEPS[0]
    for s in [s for s in STEPS[1:] if s in oof]:
        d = (per[s] - per[chosen])[draws].mean(axis=1)
        if np.quantile(d, 0.975) < 0:
            chosen = s
    if chosen == STEPS[0] and SHRUNK in ll and ll[SHRUNK] <= ll[STEPS[0]]:
        chosen = SHRUNK
    return chosen, ll
