"""Training as a chain of pure steps, each returning a typed result:

    prepare (split, features, folds) -> search -> calibrate -> fit -> evaluate

No step touches MLflow, the registry or the console: progress and logging come in as
callbacks, and `run_steps` trains a model in memory from a validated frame and its
labels (tests do exactly that with no tracking store). `training.train` adds the edges:
reading the file, the MLflow run, the artifacts and card, the registry gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from data_contracts.fields import CONTRACT_VERSION, RESPONSES
from data_contracts.labels import eih_pct
from features.pipeline import ContractFeatures
from features.reference import build_reference, numeric_reference
from model_runtime.links import NORMAL_SPREAD, ORDINAL_OUTPUT, SPREAD_OUTPUT, MarginCalibration
from model_runtime.metadata import ModelMeta
from model_runtime.predictor import EIHPredictor, Explanation
from training import averaging, baselines, decision, metrics, tune, varying
from training.config import TrainConfig
from training.pooling import fit_pooling
from training.split import Split, cv_folds, holdout_split
from training.subgroups import subgroup_calibration, subgroup_metrics
from training.uncertainty import calibrate_uncertainty, interval_metrics, risk_band_metrics


@dataclass
class Prepared:
    """The split, the feature frame and what the booster learns."""

    df: pd.DataFrame
    y: np.ndarray
    split: Split
    X: pd.DataFrame
    target: np.ndarray  # measured eih_pct (ordinal, distributional) or the class code (multiclass)
    folds: list[tuple[np.ndarray, np.ndarray]]
    link: str  # the model's link (model_runtime.links)
    n_out: int  # outputs of the first booster (the expected change, or the class margins)

    @property
    def tr(self) -> np.ndarray:
        return self.split.train_idx

    @property
    def te(self) -> np.ndarray:
        return self.split.test_idx


def prepare(df: pd.DataFrame, y: np.ndarray, cfg: TrainConfig, seed: int) -> Prepared:
    """Hold out the test split, build the features, and the CV folds of the training split."""
    split = holdout_split(df, y, cfg.test_fraction, seed)
    X = ContractFeatures(predictors=cfg.predictors, derived=cfg.derived_features).fit(df).transform(df)
    target = eih_pct(df).to_numpy(dtype="float64") if cfg.ordinal else y.astype("float64")
    folds = cv_folds(df.iloc[split.train_idx], y[split.train_idx], cfg.cv_folds, seed)
    link = NORMAL_SPREAD if cfg.distributional else tune.link(cfg)
    return Prepared(df, y, split, X, target, folds, link, tune.n_outputs(cfg))


@dataclass
class SearchResult:
    """Every trial, the chosen one and the best by CV log-loss, and how the model family was
    chosen: each family's best figure under `criterion`."""

    trials: list[tune.Trial]
    chosen: tune.Trial
    best: tune.Trial
    family_scores: dict[str, float] = field(default_factory=dict)
    criterion: str = "the search's cross-validated log-loss"

    def best_of(self, family: str) -> tune.Trial | None:
        """The best trial of one model family (None when the family was not searched)."""
        own = [t for t in self.trials if tune.family(t.params) == family]
        return min(own, key=lambda t: t.cv_log_loss) if own else None

    def family_choice(self) -> dict:
        """The chosen family, the criterion and every family's figure (model metadata, card)."""
        return {"family": tune.family(self.chosen.params), "criterion": self.criterion,
                "log_loss": {k: round(v, 5) for k, v in self.family_scores.items()}}


def search(prep: Prepared, cfg: TrainConfig, seed: int,
           on_trial: Callable[[tune.Trial], None] | None = None) -> SearchResult:
    """The bounded hyper-parameter search on the training split (both model families' candidates)."""
    tr = prep.tr
    trials = tune.search(prep.X.iloc[tr], prep.target[tr], prep.folds, cfg, seed, on_trial=on_trial)
    found = SearchResult(trials, tune.choose(trials, cfg.cost_tolerance), min(trials, key=lambda t: t.cv_log_loss))
    for fam in ("xgboost", "spline"):
        if (t := found.best_of(fam)) is not None:
            found.family_scores[fam] = t.cv_log_loss
    return found


@dataclass
class SpreadFit:
    """The spread booster's training target (out-of-fold squared residuals), rounds and parameters."""

    r2: np.ndarray
    n_rounds: int
    params: dict


@dataclass
class Calibrated:
    """One configuration's out-of-fold margins and the calibration fitted on them."""

    params: dict
    n_rounds: int
    oof: np.ndarray  # (n_train, K) raw margins of every output
    fitted: tune.Calibration  # as fitted
    cal: tune.Calibration  # as applied (identity when the gain is too small)
    applied: bool
    ece_before: float
    ece_after: float
    spread: SpreadFit | None = None
    blend_log_loss: dict[float, float] | None = None  # out-of-fold log-loss by weight on the searched trees

    def runtime(self) -> MarginCalibration:
        """The calibration the predictor applies at run time (`cal`, flagged `applied`)."""
        return self.cal.to_runtime(self.applied)

    def metrics(self) -> dict[str, float]:
        """Out-of-fold log-loss and ECE before and after calibration, the temperature and, for
        the ordinal model, the residual sigma in %-points."""
        out = {"oof_log_loss_uncalibrated": self.fitted.log_loss_before, "oof_log_loss_calibrated": self.cal.log_loss_after,
               "oof_ece_uncalibrated": self.ece_before, "oof_ece_calibrated": self.ece_after}
        t = np.atleast_1d(self.cal.temperature)
        out["calibration_temperature"] = float(t[0])
        if len(t) > 1:
            out["calibration_temperature_spread"] = float(t[1])
        if self.cal.sigma is not None:
            out["residual_sigma_pct"] = self.cal.sigma
        if self.spread is not None:
            out["spread_rounds"] = self.spread.n_rounds
        if varying.wanted(self.params):
            out["varying_weight_on_trees"] = float(self.params[varying.WEIGHT])
            out["varying_rank"] = int(self.params[varying.RANK])
            out["varying_penalty"] = float(self.params[varying.ALPHA])
            out["oof_log_loss_trees_alone"] = self.blend_log_loss[1.0]
        return out


def calibrate(prep: Prepared, trial: tune.Trial, cfg: TrainConfig, seed: int) -> Calibrated:
    """Out-of-fold margins of `trial` and the calibration of the margins (applied only when
    it gains at least `cfg.calibration_min_gain` in log-loss)."""
    tr, ytr, t = prep.tr, prep.y[prep.tr], cfg.label_threshold_pct
    params = tune.fit_params(cfg, seed, trial)
    Xtr = prep.X.iloc[tr]
    oof = tune.oof_margins(Xtr, prep.target[tr], prep.folds, params, trial.n_rounds, prep.n_out)
    blended = None
    if varying.applies(cfg, params, len(tr)):
        params, oof, blended = varying.blend(Xtr, prep.target[tr], prep.folds, params, oof, t)
    spread = None
    if prep.link == NORMAL_SPREAD:
        r2 = tune.squared_residuals(prep.target[tr], oof)
        oof_v, v_rounds, v_params = tune.oof_spread(Xtr, r2, prep.folds, cfg, seed, params)
        spread, oof = SpreadFit(r2, v_rounds, v_params), np.column_stack([oof[:, 0], oof_v])
        fitted = tune.fit_spread_calibration(oof, ytr, t)
    else:
        fitted = tune.fit_calibration(oof, ytr, prep.link, t, target=prep.target[tr])
    apply = (fitted.log_loss_before - fitted.log_loss_after) >= cfg.calibration_min_gain
    cal = fitted if apply else fitted.identity()
    return Calibrated(params, trial.n_rounds, oof, fitted, cal, bool(apply),
                      metrics.ece(ytr, fitted.identity().proba(oof, prep.link, t)),
                      metrics.ece(ytr, cal.proba(oof, prep.link, t)), spread, blended)


def fit(prep: Prepared, chosen: tune.Trial, calib: Calibrated, cfg: TrainConfig, seed: int,
        reference: bool = True, family_choice: dict | None = None) -> EIHPredictor:
    """The final booster (or additive outputs) on the whole training split, wrapped with its
    metadata (and the explanations' reference for drift unless `reference` is False: a
    validation fold's model); `family_choice` (`SearchResult.family_choice`) is stored with it."""
    tr = prep.tr
    Xtr, ytr = prep.X.iloc[tr], prep.y[tr]
    boosters = [tune.fit_final(Xtr, prep.target[tr], calib.params, calib.n_rounds)]
    outputs = (ORDINAL_OUTPUT,) if prep.n_out == 1 else RESPONSES
    family = tune.family(chosen.params)
    shape = {"family": family, "n_outputs": prep.n_out}
    if family == "xgboost":  # the cost of what is fitted: the chosen configuration times its seed average
        shape.update(max_depth=chosen.params["max_depth"], n_rounds=chosen.n_rounds,
                     average_of=int(calib.params.get(averaging.KEY, 1)), interactions=cfg.interactions,
                     explain_cost_proxy=tune.explain_cost(calib.params, chosen.n_rounds, prep.n_out))
        if varying.wanted(calib.params):
            shape.update(varying_weight_on_trees=float(calib.params[varying.WEIGHT]),
                         varying_rank=int(calib.params[varying.RANK]), varying_penalty=float(calib.params[varying.ALPHA]))
    else:
        shape.update(explain_cost_proxy=chosen.cost, n_knots=chosen.params["n_knots"])
    if calib.spread is not None:
        boosters.append(tune.fit_final(Xtr, calib.spread.r2, calib.spread.params, calib.spread.n_rounds))
        outputs += (SPREAD_OUTPUT,)
        if family == "xgboost":
            shape.update(spread_max_depth=cfg.spread_max_depth, spread_n_rounds=calib.spread.n_rounds)
    unc = calibrate_uncertainty(ytr, prep.target[tr], calib.oof, calib.cal, prep.link,
                                prep.df["pain_condition"].iloc[tr], cfg)
    meta = ModelMeta(
        contract_version=CONTRACT_VERSION,
        label_threshold_pct=cfg.label_threshold_pct,
        features=tuple(prep.X.columns),
        link=prep.link,
        outputs=outputs,
        calibration=calib.runtime(),
        risk_cutoffs=unc.cutoffs,
        risk_cutoffs_reason=unc.reason,
        conformal=unc.conformal,
        reference=build_reference(Xtr),
        class_prior=tuple(float(v) for v in np.bincount(ytr, minlength=3) / len(ytr)),
        model_shape=shape,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seed=seed,
    )
    predictor = EIHPredictor(boosters, meta)
    if not reference:
        return predictor
    if family_choice is not None:
        meta.extra["family_choice"] = family_choice
    pooling = fit_pooling(predictor, prep.X, prep.target, prep.df, tr, calib.params, calib.n_rounds, seed)
    if pooling is not None:  # how /recommend ranks protocols (model_runtime/protocol_grid.py)
        meta.extra["pooling"] = pooling
    # reference of the explanations, for the drift of explanations in batch scoring
    ref_ex = predictor.explain(prep.df.iloc[tr[: min(len(tr), 5000)]])
    meta.attribution_reference = {
        f"{o}__{f}": numeric_reference(ref_ex.contributions[:, k, j], n_bins=10)
        for k, o in enumerate(predictor.outputs) for j, f in enumerate(predictor.fields)
    }
    return predictor


@dataclass
class Evaluation:
    """The test split's probabilities, explanations, metrics and comparisons."""

    P: np.ndarray
    explanation: Explanation
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    baselines: dict[str, np.ndarray]
    subgroups: pd.DataFrame
    calibration_cells: pd.DataFrame  # condition x modality x intensity band
    decision_curves: pd.DataFrame
    oracle_P: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def evaluate(prep: Prepared, predictor: EIHPredictor, cfg: TrainConfig, seed: int,
             oracle_P: np.ndarray | None = None, oof=None) -> Evaluation:
    """Metrics with bootstrap intervals on the test split, the baselines beside them, and the
    truth's figures when the oracle's probabilities of the rows are given. With `oof`
    (training.internal.OutOfFold, 'test' = every row) the figures come from its first repeat's
    out-of-fold predictions and baselines; the explanations stay the final model's."""
    te, tr = prep.te, prep.tr
    dte, yte = prep.df.iloc[te], prep.y[te]
    P, ex = predictor.predict_and_explain(dte)
    if oof is not None:
        P = oof.P[0]
    logged = {f"test_{k}": v for k, v in metrics.point_metrics(yte, P).items()}
    ci = metrics.bootstrap_intervals(yte, P, n_boot=cfg.bootstrap, seed=seed)
    for k, (lo, hi) in ci.items():
        logged[f"test_{k}_ci_low"], logged[f"test_{k}_ci_high"] = lo, hi
    base = oof.first() if oof is not None else baselines.fit_baselines(prep.df.iloc[tr], prep.y[tr], dte, seed,
                                                                       cfg.derived_features, cfg.predictors)
    for name, Q in base.items():
        logged[f"{name}_test_log_loss" if name == "null" else f"baseline_{name}_test_log_loss"] = metrics.log_loss(yte, Q)
        if name != "null":
            logged[f"baseline_{name}_test_auroc_macro"] = metrics.auroc_macro(yte, Q)
    oP = oracle_P[te] if oracle_P is not None else None
    if oP is not None:
        logged.update(oracle_metrics(yte, oP, logged))
    subgroups = subgroup_metrics(yte, P, dte, max(50, cfg.bootstrap // 2), seed)
    for r in subgroups.dropna().itertuples(index=False):
        logged[f"test_log_loss__{r.group}_{r.level}"] = r.log_loss
        logged[f"test_auroc_macro__{r.group}_{r.level}"] = r.auroc_macro
    cells = subgroup_calibration(yte, P, dte, cfg.bootstrap, seed, oP)
    logged.update(high_load_metrics(cells))
    conditions = dte["pain_condition"]
    X = predictor.frame_matrix(predictor.transform(dte))
    margins = oof.margins if oof is not None else ex.margins
    logged.update(interval_metrics(prep.target[te], predictor.intervals_matrix(X, margins), conditions))
    logged.update(risk_band_metrics(P, predictor.risk_level(P[:, 2]), conditions))
    return Evaluation(P, ex, logged, ci, base, subgroups, cells, decision.curves(yte, P, conditions), oP)


def high_load_metrics(cells: pd.DataFrame) -> dict[str, float]:
    """The fibromyalgia high-load group's calibration as run metrics."""
    row = cells.iloc[0]
    keys = ("n", "predicted_hyperalgesia", "observed_hyperalgesia", "slope_hyperalgesia", "oracle_hyperalgesia")
    return {f"fibro_high_load_{k}": float(row[k]) for k in keys if k in row and pd.notna(row[k])}


def oracle_metrics(y: np.ndarray, oP: np.ndarray, logged: dict[str, float]) -> dict[str, float]:
    """The truth's figures on the test split and the model's share of its gain."""
    out = {"oracle_test_log_loss": metrics.log_loss(y, oP), "oracle_test_auroc_macro": metrics.auroc_macro(y, oP),
           "oracle_test_brier": metrics.brier(y, oP), "oracle_test_ece": metrics.ece(y, oP)}
    null, oracle = logged["null_test_log_loss"], out["oracle_test_log_loss"]
    out["oracle_capture"] = metrics.oracle_capture(null, logged["test_log_loss"], oracle)
    out["auroc_ratio_to_oracle"] = logged["test_auroc_macro"] / out["oracle_test_auroc_macro"]
    out["baseline_logreg_oracle_capture"] = metrics.oracle_capture(null, logged["baseline_logreg_test_log_loss"], oracle)
    return out


def best_candidate_metrics(prep: Prepared, best: tune.Trial, cfg: TrainConfig, seed: int,
                           logged: dict[str, float]) -> dict[str, float]:
    """What the chosen model gives up against the best CV candidate, fitted the same way."""
    calib = calibrate(prep, best, cfg, seed)
    bP = fit(prep, best, calib, cfg, seed).predict_proba(prep.df.iloc[prep.te])
    out = {"best_cv_candidate_test_log_loss": metrics.log_loss(prep.y[prep.te], bP)}
    if "oracle_test_log_loss" in logged:
        out["best_cv_candidate_oracle_capture"] = metrics.oracle_capture(
            logged["null_test_log_loss"], out["best_cv_candidate_test_log_loss"], logged["oracle_test_log_loss"])
    return out


def explain_rows_per_s(predictor: EIHPredictor, df: pd.DataFrame, repeats: int = 3) -> float:
    """Exact explanations per second of the model on up to 2,000 rows (median of repeats)."""
    sample = df.iloc[: min(len(df), 2000)]
    predictor.explain(sample.iloc[:10])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.explain(sample)
        times.append(time.perf_counter() - t0)
    return float(len(sample) / np.median(times))


def finalize(prep: Prepared, predictor: EIHPredictor, ev: Evaluation) -> None:
    """Store the measured explanation speed and the test metrics in the model's metadata."""
    rps = explain_rows_per_s(predictor, prep.df.iloc[prep.te])
    ev.metrics["explain_rows_per_s"] = rps
    predictor.meta.model_shape["explain_rows_per_s_measured"] = rps
    predictor.meta.training_metrics = {k: v for k, v in ev.metrics.items()
                                       if not k.startswith("test_log_loss__") and "auroc_macro__" not in k}


@dataclass
class Trained:
    """Everything the chain of steps produced."""

    prep: Prepared
    search: SearchResult
    calibration: Calibrated
    predictor: EIHPredictor
    evaluation: Evaluation


StepHook = Callable[[str, object], None]
"""Told `(step, None)` when a step starts and `(step, result)` when it ends."""


def run_steps(prep: Prepared, cfg: TrainConfig, seed: int, oracle_P: np.ndarray | None = None,
              on_trial: Callable[[tune.Trial], None] | None = None, on_step: StepHook | None = None) -> Trained:
    """search -> calibrate -> fit -> evaluate -> finalize on a prepared cohort, in memory
    (no tracking store, no files)."""
    hook = on_step or (lambda _step, _result: None)

    def step(name: str, fn: Callable[[], object]):
        hook(name, None)
        result = fn()
        hook(name, result)
        return result

    found = step("search", lambda: search(prep, cfg, seed, on_trial))
    calib = step("calibrate", lambda: calibrate(prep, found.chosen, cfg, seed))
    predictor = step("fit", lambda: fit(prep, found.chosen, calib, cfg, seed, family_choice=found.family_choice()))

    def _evaluate() -> Evaluation:
        ev = evaluate(prep, predictor, cfg, seed, oracle_P)
        if found.best.number != found.chosen.number:
            ev.metrics.update(best_candidate_metrics(prep, found.best, cfg, seed, ev.metrics))
        finalize(prep, predictor, ev)
        return ev

    ev = step("evaluate", _evaluate)
    return Trained(prep, found, calib, predictor, ev)
