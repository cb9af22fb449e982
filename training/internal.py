"""Internal validation that stays honest at small n: repeated cross-validation of the whole
fitting procedure after the search, and paired bootstrap comparisons on the same rows.

Below `TrainConfig.resampling_below` rows (5,000 by default) one held-out split wastes
people and gives a noisy estimate: a 20 % test split of 300 people is 60 people, and its
log-loss moves by more than the differences between models. There, the search runs on all
rows, then `cv_repeats` x `outer_folds` cross-validation (`outer_folds_small` folds below
`small_below` rows) refits the calibration and the final fit of the tuned configuration in
every fold and predicts the left-out fold; the
final model is fitted on all rows. The search itself is not repeated in each fold, a small
remaining optimism the card states.

With the simulator's truth (an oracle file), `oracle_capture_expected` is the oracle capture
computed from expected log-losses (each person's response drawn from the truth's
probabilities): the same quantity as `oracle_capture` on realized labels, without their
noise, which at a few hundred people is larger than the differences being measured.

Size correction: every fold's model learns from (k-1)/k of the people, the final model from
all of them, so cross-validation describes a slightly smaller cohort. At a few hundred people
that costs several points of capture (10 folds of 300: 270 people per fold). The model's
log-loss is moved along the learning curve from the fold size to n (`size_correction`:
linear in log n through the curve's two largest sizes, never upward), in the headline
log-loss and both captures; the paired comparisons behind the gate stay uncorrected, which
only makes the gate stricter.

Intervals: rows (people) are resampled `bootstrap` times; each draw averages the metric over
the repeats' out-of-fold predictions of the drawn rows, and the 2.5 / 97.5 % quantiles
are the 95 % interval. Paired differences (model - comparator) are computed on the same
drawn rows, so the comparison's noise largely cancels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from training import baselines, metrics, steps, tune
from training.config import TrainConfig
from training.split import Split, cv_folds

HEADLINE = ("log_loss", "auroc_macro", "ece", "calibration_slope_hyperalgesia", "calibration_slope_mean")


@dataclass
class OutOfFold:
    """Out-of-fold predictions of every repeat on the same rows, and the comparators'."""

    P: np.ndarray  # (R, n, 3) the model
    margins: np.ndarray  # (n, K) calibrated margins of the first repeat
    baselines: dict[str, np.ndarray]  # name -> (R, n, 3), "null" included
    description: str

    def first(self) -> dict[str, np.ndarray]:
        """The first repeat's baseline probabilities (n, 3) by name."""
        return {k: v[0] for k, v in self.baselines.items()}


def use_resampling(n_rows: int, cfg: TrainConfig) -> bool:
    """Whether a cohort of `n_rows` is validated by repeated cross-validation (else a held-out split)."""
    if cfg.validation == "holdout":
        return False
    return cfg.validation == "repeated_cv" or n_rows < cfg.resampling_below


def prepare_all(df: pd.DataFrame, y: np.ndarray, cfg: TrainConfig, seed: int) -> steps.Prepared:
    """A `Prepared` whose training part is every row (the search folds span all rows) and whose
    'test' part is also every row: it is only evaluated through out-of-fold predictions."""
    base = steps.prepare(df, y, replace(cfg, test_fraction=0.2), seed)
    idx = np.arange(len(df))
    desc = (f"no held-out split: {cfg.cv_repeats} x {cfg.n_outer_folds(len(df))}-fold repeated cross-validation of"
            " calibration"
            f" and final fit (stratified by response, people resampled), final model fitted on all {len(df):,} rows")
    return replace(base, split=Split(idx, idx, "repeated_cv", desc), folds=cv_folds(df, y, cfg.cv_folds, seed))


def _fold_prep(prep: steps.Prepared, tr: np.ndarray, te: np.ndarray, cfg: TrainConfig, seed: int) -> steps.Prepared:
    folds = cv_folds(prep.df.iloc[tr], prep.y[tr], cfg.cv_folds, seed)
    return replace(prep, split=Split(tr, te, "cv", ""), folds=folds)


def fit_fold(prep: steps.Prepared, chosen, tr: np.ndarray, te: np.ndarray, cfg: TrainConfig, seed: int):
    """Calibrate and fit the chosen configuration on rows `tr`; (P, margins) of rows `te`."""
    fp = _fold_prep(prep, tr, te, cfg, seed)
    calib = steps.calibrate(fp, chosen, cfg, seed)
    pred = steps.fit(fp, chosen, calib, cfg, seed, reference=False)
    m = pred.margins(prep.df.iloc[te])
    return pred.proba(m), m


def out_of_fold(prep: steps.Prepared, chosen, cfg: TrainConfig, seed: int,
                baselines_of: OutOfFold | None = None) -> OutOfFold:
    """`cv_repeats` x `outer_folds` out-of-fold predictions of the model and of every baseline
    (taken from `baselines_of` when given: the same folds' baselines of another candidate)."""
    n, R = len(prep.df), cfg.cv_repeats
    P = np.zeros((R, n, 3))
    margins = np.zeros((n, 2 if prep.link == "normal_spread" else prep.n_out))
    base: dict[str, np.ndarray] = {}
    for r in range(R):
        skf = StratifiedKFold(n_splits=cfg.n_outer_folds(n), shuffle=True, random_state=seed + 1000 * (r + 1))
        for tr, te in skf.split(np.zeros(n), prep.y):
            P[r, te], m = fit_fold(prep, chosen, tr, te, cfg, seed)
            if r == 0:
                margins[te] = m
            if baselines_of is not None:
                continue
            fitted = baselines.fit_baselines(prep.df.iloc[tr], prep.y[tr], prep.df.iloc[te], seed, cfg.derived_features,
                                             cfg.predictors)
            for name, Q in fitted.items():
                base.setdefault(name, np.zeros((R, n, 3)))[r, te] = Q
    return OutOfFold(P, margins, baselines_of.baselines if baselines_of is not None else base, prep.split.description)


def mean_log_loss(y: np.ndarray, P: np.ndarray) -> float:
    """Log-loss of (R, n, 3) out-of-fold probabilities, averaged over the repeats."""
    return float(np.mean([metrics.log_loss(y, P[r]) for r in range(P.shape[0])]))


def choose_family(prep: steps.Prepared, found: steps.SearchResult, cfg: TrainConfig,
                  seed: int) -> tuple[steps.SearchResult, OutOfFold]:
    """The model family by repeated cross-validation: each family's best candidate of the search
    is refitted fold by fold (the same folds), and the lower out-of-fold log-loss wins. Returns
    the search result with that candidate chosen, and its out-of-fold predictions."""
    candidates = [t for fam in ("xgboost", "spline") if (t := found.best_of(fam)) is not None]
    oofs: dict[str, OutOfFold] = {}
    for t in candidates:
        oofs[tune.family(t.params)] = out_of_fold(prep, t, cfg, seed, next(iter(oofs.values()), None))
    scores = {fam: mean_log_loss(prep.y, o.P) for fam, o in oofs.items()}
    fam = min(scores, key=scores.get)
    chosen = next(t for t in candidates if tune.family(t.params) == fam)
    criterion = (f"out-of-fold log-loss of {cfg.cv_repeats} x {cfg.n_outer_folds(len(prep.y))}-fold repeated"
                 " cross-validation")
    return replace(found, chosen=chosen, family_scores=scores, criterion=criterion), oofs[fam]


def _point(y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    slopes, _ = metrics.calibration_slope_intercept(y, P)
    return {"log_loss": metrics.log_loss(y, P), "auroc_macro": metrics.auroc_macro(y, P), "ece": metrics.ece(y, P),
            "calibration_slope_hyperalgesia": float(slopes[2]), "calibration_slope_mean": float(np.nanmean(slopes))}


def _draw(y, P, base, oracle_P, champion_P, idx, shift: float = 0.0) -> dict[str, float]:
    """Every figure on rows `idx`, each averaged over the repeats; `shift` (`size_correction`) is
    added to the model's log-loss in the headline figure and the captures, not in paired differences."""
    yi, R = y[idx], P.shape[0]
    out = {k: float(np.mean([_point(yi, P[r, idx])[k] for r in range(R)])) for k in HEADLINE}
    out["log_loss"] += shift
    ll = np.array([metrics.log_loss(yi, P[r, idx]) for r in range(R)])
    for name, Q in base.items():
        bl = np.array([metrics.log_loss(yi, Q[r, idx]) for r in range(R)])
        out[f"{name}_log_loss"] = float(bl.mean())
        out[f"paired_log_loss_diff_vs_{name}"] = float((ll - bl).mean())
    if champion_P is not None:
        cl = metrics.log_loss(yi, champion_P[idx])
        out["champion_log_loss"] = cl
        out["paired_log_loss_diff_vs_champion"] = float(ll.mean() - cl)
    if oracle_P is not None:
        oi = oracle_P[idx]
        ol = metrics.log_loss(yi, oi)
        out["oracle_log_loss"] = ol
        out["oracle_capture"] = metrics.oracle_capture(out["null_log_loss"], out["log_loss"], ol)
        model_e = float(np.mean([expected_log_loss(oi, P[r, idx]) for r in range(R)]))
        null_e = float(np.mean([expected_log_loss(oi, base["null"][r, idx]) for r in range(R)]))
        truth_e = expected_log_loss(oi, oi)
        out["oracle_capture_expected"] = metrics.oracle_capture(null_e, model_e + shift, truth_e)
        out["oracle_capture_expected_uncorrected"] = metrics.oracle_capture(null_e, model_e, truth_e)
    return out


def expected_log_loss(truth: np.ndarray, P: np.ndarray) -> float:
    """Mean log-loss of P when each person's response is drawn from the truth's probabilities
    (cross-entropy): the realized labels' log-loss without their noise."""
    return float(np.mean(-(truth * np.log(np.clip(P, 1e-15, 1.0))).sum(axis=1)))


@dataclass
class Summary:
    """Point estimates, 95 % intervals and the best baseline by point log-loss."""

    point: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    best_baseline: str

    def paired(self, comparator: str) -> tuple[float, float, float]:
        """(point, low, high) of the paired log-loss difference model - comparator."""
        k = f"paired_log_loss_diff_vs_{comparator}"
        return self.point[k], *self.intervals[k]


def summarize(y: np.ndarray, P: np.ndarray, base: dict[str, np.ndarray], n_boot: int, seed: int,
              oracle_P: np.ndarray | None = None, champion_P: np.ndarray | None = None,
              shift: float = 0.0) -> Summary:
    """Point figures on all rows and percentile-bootstrap 95 % intervals (people resampled).
    `P` and each baseline are (R, n, 3) (R = 1 for a held-out split); `champion_P` (n, 3);
    `shift` is the model's `size_correction`."""
    n = len(y)
    point = _draw(y, P, base, oracle_P, champion_P, np.arange(n), shift)
    rng = np.random.default_rng(seed)
    draws = [_draw(y, P, base, oracle_P, champion_P, rng.integers(0, n, n), shift) for _ in range(n_boot)]
    frame = pd.DataFrame(draws)
    intervals = {k: (float(frame[k].quantile(0.025)), float(frame[k].quantile(0.975))) for k in frame.columns}
    best = min(base, key=lambda k: point[f"{k}_log_loss"])
    return Summary(point, intervals, best)


def as_run_metrics(s: Summary, prefix: str = "test_") -> dict[str, float]:
    """The summary as flat run metrics: `test_<figure>` with `_ci_low` / `_ci_high`, the
    baselines under their usual names, and `best_baseline_*` for the gate."""
    out: dict[str, float] = {}
    for k, v in s.point.items():
        name = (f"{prefix}{k}" if k in HEADLINE else k if k.startswith(("paired_", "oracle_capture"))
                else "null_test_log_loss" if k == "null_log_loss" else f"oracle_{prefix}log_loss"
                if k == "oracle_log_loss" else f"gate_{k}" if k == "champion_log_loss" else f"baseline_{k[:-9]}_test_log_loss")
        out[name] = v
        if k in s.intervals:
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = s.intervals[k]
    pt, lo, hi = s.paired(s.best_baseline)
    out.update(best_baseline_paired_diff=pt, best_baseline_paired_diff_ci_low=lo, best_baseline_paired_diff_ci_high=hi)
    return out


def learning_curve(prep: steps.Prepared, chosen, cfg: TrainConfig, seed: int,
                   fractions: tuple[float, ...] = (0.3, 0.6, 1.0)) -> pd.DataFrame:
    """Out-of-fold log-loss of the model and the class prior when each fold's training part is
    cut to a share of its rows (one repeat of the outer folds; shares below 100 rows skipped)."""
    n, rows = len(prep.df), []
    skf = StratifiedKFold(n_splits=cfg.n_outer_folds(n), shuffle=True, random_state=seed + 7)
    folds = list(skf.split(np.zeros(n), prep.y))
    rng = np.random.default_rng(seed)
    for f in fractions:
        m = int(f * len(folds[0][0]))
        if m < 100:
            continue
        P, null = np.zeros((n, 3)), np.zeros((n, 3))
        for tr, te in folds:
            sub = np.sort(rng.choice(tr, size=min(m, len(tr)), replace=False))
            P[te], _ = fit_fold(prep, chosen, sub, te, cfg, seed)
            null[te] = baselines.null_probs(prep.y[sub], len(te))
        rows.append({"n_train": m, "log_loss": metrics.log_loss(prep.y, P), "null_log_loss": metrics.log_loss(prep.y, null),
                     "auroc_macro": metrics.auroc_macro(prep.y, P)})
    return pd.DataFrame(rows)


def size_correction(curve: pd.DataFrame, n: int) -> float:
    """The change in log-loss (<= 0) from the learning curve's largest training size to `n`
    people: linear in log(size) through its two largest sizes, 0 when the curve rises (more people
    cannot be expected to hurt) or has fewer than two sizes."""
    if len(curve) < 2:
        return 0.0
    (n1, l1), (n2, l2) = curve.sort_values("n_train")[["n_train", "log_loss"]].to_numpy()[-2:]
    slope = min((l2 - l1) / np.log(n2 / n1), 0.0)
    return float(slope * np.log(max(n, n2) / n2))


def holdout_learning_curve(trained: steps.Trained, cfg: TrainConfig, seed: int,
                           fractions: tuple[float, ...] = (0.25, 0.5)) -> pd.DataFrame:
    """Test-split log-loss of the chosen configuration fitted on shares of the training split
    (the whole split is the model itself), beside the class prior of the same rows: whether
    more people would still help (`learning_curve`'s columns)."""
    prep, ev = trained.prep, trained.evaluation
    tr, te = prep.tr, prep.te
    rng = np.random.default_rng(seed)
    rows = []
    for f in fractions:
        m = int(f * len(tr))
        if m < 100:
            continue
        sub = np.sort(rng.choice(tr, size=m, replace=False))
        P, _ = fit_fold(prep, trained.search.chosen, sub, te, cfg, seed)
        rows.append({"n_train": m, "P": P, "prior": prep.y[sub]})
    rows.append({"n_train": len(tr), "P": ev.P, "prior": prep.y[tr]})
    y = prep.y[te]
    return pd.DataFrame([{"n_train": r["n_train"], "log_loss": metrics.log_loss(y, r["P"]),
                          "null_log_loss": metrics.log_loss(y, baselines.null_probs(r["prior"], len(te))),
                          "auroc_macro": metrics.auroc_macro(y, r["P"])} for r in rows])


def run_resampled(prep: steps.Prepared, cfg: TrainConfig, seed: int, oracle_P: np.ndarray | None = None,
                  champion_P: np.ndarray | None = None, on_trial=None, on_step=None) -> steps.Trained:
    """search -> calibrate -> fit (all rows) -> evaluate by repeated cross-validation -> finalize.
    The evaluation's metrics are the repeats' averages with bootstrap intervals; its `extra`
    holds the `Summary` ("summary"), the out-of-fold predictions ("oof") and the learning curve."""
    hook = on_step or (lambda _step, _result: None)

    def step(name, fn):
        hook(name, None)
        result = fn()
        hook(name, result)
        return result

    searched = step("search", lambda: steps.search(prep, cfg, seed, on_trial))
    found, oof = step("choose", lambda: choose_family(prep, searched, cfg, seed))
    calib = step("calibrate", lambda: steps.calibrate(prep, found.chosen, cfg, seed))
    predictor = step("fit", lambda: steps.fit(prep, found.chosen, calib, cfg, seed, family_choice=found.family_choice()))

    def _evaluate() -> steps.Evaluation:
        ev = steps.evaluate(prep, predictor, cfg, seed, oracle_P, oof=oof)
        curve = learning_curve(prep, found.chosen, cfg, seed)
        shift = size_correction(curve, len(prep.y))
        s = summarize(prep.y, oof.P, oof.baselines, cfg.bootstrap, seed, oracle_P, champion_P, shift)
        apply_summary(ev, s)
        ev.metrics["validation_repeats"] = cfg.cv_repeats
        ev.metrics["validation_folds"] = cfg.n_outer_folds(len(prep.y))
        ev.metrics["size_correction_log_loss"] = shift
        ev.extra.update(oof=oof, learning_curve=curve)
        steps.finalize(prep, predictor, ev)
        return ev

    ev = step("evaluate", _evaluate)
    return steps.Trained(prep, found, calib, predictor, ev)


def apply_summary(ev: steps.Evaluation, s: Summary) -> None:
    """Put the summary's figures into the evaluation (they replace the single-split ones)."""
    ev.metrics.update(as_run_metrics(s))
    ev.intervals.update({k: s.intervals[k] for k in HEADLINE})
    ev.extra["summary"] = s


def summarize_holdout(trained: steps.Trained, cfg: TrainConfig, seed: int,
                      champion_P: np.ndarray | None = None) -> Summary:
    """The same summary on a held-out test split (one 'repeat'), paired against the baselines
    and the champion (`champion_P`: its probabilities of the test rows)."""
    prep, ev = trained.prep, trained.evaluation
    base = {k: v[None] for k, v in ev.baselines.items()}
    s = summarize(prep.y[prep.te], ev.P[None], base, cfg.bootstrap, seed, ev.oracle_P, champion_P)
    keep = {k: v for k, v in as_run_metrics(s).items() if k.startswith(("paired_", "best_baseline", "gate_"))}
    ev.metrics.update(keep)
    ev.extra["summary"] = s
    return s


def resummarizer(trained: steps.Trained, cfg: TrainConfig, seed: int):
    """`P -> Summary`: the new model's summary recomputed with a champion's probabilities `P` of the
    evaluated rows (the same rows, the same bootstrap draws)."""
    prep, ev = trained.prep, trained.evaluation

    def again(champion_P: np.ndarray) -> Summary:
        if "oof" in ev.extra:
            oof = ev.extra["oof"]
            return summarize(prep.y, oof.P, oof.baselines, cfg.bootstrap, seed, ev.oracle_P, champion_P,
                             ev.metrics.get("size_correction_log_loss", 0.0))
        base = {k: v[None] for k, v in ev.baselines.items()}
        return summarize(prep.y[prep.te], ev.P[None], base, cfg.bootstrap, seed, ev.oracle_P, champion_P)

    return again
