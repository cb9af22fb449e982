"""Figures logged with every training run (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from data_contracts.fields import RESPONSES  # noqa: E402


def _numeric(X: pd.DataFrame) -> np.ndarray:
    cols = []
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cols.append(np.where(s.cat.codes.to_numpy() < 0, np.nan, s.cat.codes.to_numpy()).astype("float64"))
        else:
            cols.append(s.to_numpy(dtype="float64"))
    return np.column_stack(cols)


def shap_summary(contributions: np.ndarray, base: np.ndarray, X: pd.DataFrame, output: int, title: str, path: str,
                 max_display: int = 15) -> None:
    """Beeswarm of exact per-field contributions to one output's margin (drawn by shap)."""
    import shap

    exp = shap.Explanation(
        values=contributions[:, output, :],
        base_values=base[:, output],
        data=_numeric(X),
        feature_names=list(X.columns),
    )
    plt.figure()
    shap.plots.beeswarm(exp, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close("all")


def calibration_curves(y: np.ndarray, P: np.ndarray, path: str, n_bins: int = 10, extra: dict | None = None) -> None:
    """Reliability diagram per class (quantile bins), with the model and optional others."""
    series = {"model": P, **(extra or {})}
    fig, axes = plt.subplots(1, len(RESPONSES), figsize=(12, 4))
    for k, ax in enumerate(axes):
        for label, Q in series.items():
            p = Q[:, k]
            edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
            b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
            cnt = np.bincount(b, minlength=len(edges) - 1)
            ok = cnt > 0
            conf = np.bincount(b, weights=p, minlength=len(edges) - 1)[ok] / cnt[ok]
            obs = np.bincount(b, weights=(y == k), minlength=len(edges) - 1)[ok] / cnt[ok]
            ax.plot(conf, obs, marker="o", label=label)
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        lim = max(0.05, float(np.max(P[:, k])) * 1.1)
        ax.set_xlim(0, lim)
        ax.set_ylim(0, lim)
        ax.set_title(RESPONSES[k])
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.legend(fontsize=8)
    fig.suptitle("Calibration on the held-out test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(y: np.ndarray, P: np.ndarray, path: str) -> np.ndarray:
    """Draw the confusion matrix (rows observed, columns the most probable class) to `path`
    and return its counts, shape (3, 3)."""
    pred = P.argmax(axis=1)
    K = len(RESPONSES)
    cm = np.zeros((K, K), dtype=int)
    np.add.at(cm, (y, pred), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(cm, cmap="Blues")
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="black")
    ax.set_xticks(range(K), RESPONSES, rotation=20)
    ax.set_yticks(range(K), RESPONSES)
    ax.set_xlabel("predicted (most probable class)")
    ax.set_ylabel("observed")
    ax.set_title("Confusion matrix, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return cm


def decision_curves(table, cutoffs: dict[str, float], path: str) -> None:
    """Net benefit of the two decisions (all people) against acting for everyone and no one,
    with the hyperalgesia risk cut-offs marked on the "adapt" panel."""
    titles = {"adapt": "adapt the protocol to avoid a flare (act if P(hyperalgesia) >= threshold)",
              "expect_benefit": "expect benefit (act if P(hypoalgesia) >= threshold)"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, (name, title) in zip(axes, titles.items()):
        t = table[(table["decision"] == name) & (table["group"] == "all")]
        ax.plot(t["threshold"], t["model"], label="model", color="#264653")
        ax.plot(t["threshold"], t["treat_all"], label="act for everyone", color="#e76f51", ls="--")
        ax.axhline(0.0, label="act for no one", color="grey", lw=1)
        top = float(max(t["model"].max(), t["treat_all"].max(), 0.01))
        ax.set_ylim(-0.25 * top, 1.15 * top)
        if name == "adapt":
            for level, value in cutoffs.items():
                ax.axvline(value, color="#e9c46a", lw=1, ls=":")
                ax.text(value, 1.05 * top, f" {level}", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("threshold probability")
        ax.set_ylabel("net benefit (per person)")
        ax.legend(fontsize=8)
    fig.suptitle("Decision curves on the held-out test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curve(table: pd.DataFrame, path: str) -> None:
    """Out-of-fold log-loss of the model and of the class prior against the training size."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(table["n_train"], table["log_loss"], "o-", label="this model")
    ax.plot(table["n_train"], table["null_log_loss"], "s--", color="grey", label="class prior")
    ax.set_xlabel("people in the training part")
    ax.set_ylabel("out-of-fold log-loss (lower is better)")
    ax.set_title("Learning curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
