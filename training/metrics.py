"""Probabilistic metrics for the three-class response, with bootstrap intervals.

All functions take integer labels y (0 hypoalgesia, 1 no_change, 2 hyperalgesia) and
probabilities P of shape (n, 3).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from data_contracts.fields import RESPONSES
from data_contracts.labels import response_codes
from model_runtime.links import ORDINAL, margins_to_proba

K = len(RESPONSES)
_EPS = 1e-15


def log_loss(y: np.ndarray, P: np.ndarray) -> float:
    """Mean negative log-probability of the observed class (probabilities clipped at 1e-15)."""
    p = np.clip(P[np.arange(len(y)), y], _EPS, 1.0)
    return float(-np.mean(np.log(p)))


def ordinal_log_loss(target: np.ndarray, mu: np.ndarray, threshold_pct: float) -> float:
    """Three-class log-loss of an expected change `mu` of the measured change `target`, read
    through the normal link with the residual spread (how the search scores an expected-change
    model on a fold)."""
    sigma = float(np.sqrt(np.mean((target - mu) ** 2)))
    return log_loss(response_codes(target, threshold_pct), margins_to_proba(mu[:, None], ORDINAL, sigma, threshold_pct))


def brier(y: np.ndarray, P: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of the squared distance between P and the
    one-hot label (0 best, 2 worst)."""
    onehot = np.eye(K)[y]
    return float(np.mean(np.sum((P - onehot) ** 2, axis=1)))


def auroc_per_class(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC of each class, shape (3,); NaN for a class absent from y or the only one in it."""
    out = np.full(K, np.nan)
    for k in range(K):
        yk = y == k
        if 0 < yk.sum() < len(y):
            out[k] = roc_auc_score(yk, P[:, k])
    return out


def auroc_macro(y: np.ndarray, P: np.ndarray) -> float:
    """Mean of the per-class AUROCs that are defined."""
    return float(np.nanmean(auroc_per_class(y, P)))


def ece(y: np.ndarray, P: np.ndarray, n_bins: int = 10) -> float:
    """Class-wise expected calibration error (equal-width bins), averaged over classes."""
    total = 0.0
    for k in range(K):
        p = P[:, k]
        hit = (y == k).astype("float64")
        b = np.minimum((p * n_bins).astype(int), n_bins - 1)
        conf = np.bincount(b, weights=p, minlength=n_bins)
        acc = np.bincount(b, weights=hit, minlength=n_bins)
        total += np.sum(np.abs(acc - conf)) / len(y)
    return float(total / K)


def balanced_accuracy(y: np.ndarray, P: np.ndarray) -> float:
    """Mean recall of the most probable class, over the classes present in y."""
    pred = P.argmax(axis=1)
    recalls = [np.mean(pred[y == k] == k) for k in range(K) if np.any(y == k)]
    return float(np.mean(recalls))


def calibration_slope_intercept(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: logistic recalibration y_k ~ a + b * logit(p_k); b is the slope (1 ideal),
    a the intercept (0 ideal). Newton iterations on two parameters."""
    slopes, intercepts = np.full(K, np.nan), np.full(K, np.nan)
    for k in range(K):
        p = np.clip(P[:, k], 1e-6, 1 - 1e-6)
        x = np.log(p / (1 - p))
        t = (y == k).astype("float64")
        if t.min() == t.max():
            continue
        X = np.column_stack([np.ones_like(x), x])
        w = np.array([0.0, 1.0])
        for _ in range(50):
            eta = np.clip(X @ w, -30, 30)
            mu = 1 / (1 + np.exp(-eta))
            g = X.T @ (t - mu)
            H = (X * (mu * (1 - mu))[:, None]).T @ X + 1e-9 * np.eye(2)
            step = np.linalg.solve(H, g)
            w = w + step
            if np.max(np.abs(step)) < 1e-8:
                break
        intercepts[k], slopes[k] = w
    return slopes, intercepts


def point_metrics(y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """log_loss, auroc_macro, brier, ece and balanced_accuracy, plus auroc_<class>,
    calibration_slope_<class> and calibration_intercept_<class> for each response."""
    per = auroc_per_class(y, P)
    slopes, intercepts = calibration_slope_intercept(y, P)
    out = {
        "log_loss": log_loss(y, P),
        "auroc_macro": float(np.nanmean(per)),
        "brier": brier(y, P),
        "ece": ece(y, P),
        "balanced_accuracy": balanced_accuracy(y, P),
    }
    for k, name in enumerate(RESPONSES):
        out[f"auroc_{name}"] = float(per[k])
        out[f"calibration_slope_{name}"] = float(slopes[k])
        out[f"calibration_intercept_{name}"] = float(intercepts[k])
    return out


BOOTSTRAPPED = ("log_loss", "auroc_macro", "brier", "ece", "balanced_accuracy")


def bootstrap_intervals(
    y: np.ndarray, P: np.ndarray, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the headline metrics (resampling rows)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = {m: [] for m in BOOTSTRAPPED}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        yb, Pb = y[idx], P[idx]
        draws["log_loss"].append(log_loss(yb, Pb))
        draws["auroc_macro"].append(auroc_macro(yb, Pb))
        draws["brier"].append(brier(yb, Pb))
        draws["ece"].append(ece(yb, Pb))
        draws["balanced_accuracy"].append(balanced_accuracy(yb, Pb))
    a = (1 - level) / 2
    return {m: (float(np.nanquantile(v, a)), float(np.nanquantile(v, 1 - a))) for m, v in draws.items()}


def oracle_capture(null_ll: float, model_ll: float, oracle_ll: float) -> float:
    """Share of the truth's log-loss improvement over the class prior that the model earns."""
    gap = null_ll - oracle_ll
    return float((null_ll - model_ll) / gap) if gap > 0 else float("nan")
