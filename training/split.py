"""The held-out test split (never seen by tuning) and the CV folds on the rest.

With several sites the test split is whole sites (external validation: sites differ in
case mix), chosen at random with the seed until they hold at least `test_fraction` of
the rows; otherwise a stratified random `test_fraction`. CV folds are grouped by site
when the training part has at least as many sites as folds, else stratified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedKFold, train_test_split


@dataclass
class Split:
    """Row positions of the training and test parts, the kind ("site" or "stratified") and a
    one-line description for the model card."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    kind: str
    description: str


def _sites(df: pd.DataFrame) -> np.ndarray | None:
    if "site" not in df.columns:
        return None
    s = df["site"]
    if s.isna().any() or s.nunique() < 2:
        return None
    return s.astype(str).to_numpy()


def holdout_split(df: pd.DataFrame, y: np.ndarray, test_fraction: float, seed: int) -> Split:
    """The held-out test split: whole sites, drawn with `seed` until they hold `test_fraction`
    of the rows, when there are at least 3 sites (one always stays for training); otherwise a
    stratified random `test_fraction`."""
    idx = np.arange(len(df))
    sites = _sites(df)
    if sites is not None and pd.Series(sites).nunique() >= 3:
        rng = np.random.default_rng(seed)
        names = np.array(sorted(set(sites)))
        rng.shuffle(names)
        held: list[str] = []
        for name in names[:-1]:  # always leave at least one site for training
            held.append(name)
            if np.isin(sites, held).mean() >= test_fraction:
                break
        test = np.isin(sites, held)
        return Split(idx[~test], idx[test], "site", f"held-out site(s) {', '.join(sorted(held))} ({test.mean():.0%} of rows)")
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    return Split(np.sort(tr), np.sort(te), "stratified", f"stratified random {test_fraction:.0%}")


def cv_folds(df: pd.DataFrame, y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) pairs of row positions in `df`: grouped by site when it has at
    least k sites, else stratified by y and shuffled with `seed`."""
    sites = _sites(df)
    if sites is not None and pd.Series(sites).nunique() >= k:
        return list(GroupKFold(n_splits=k).split(np.zeros(len(y)), y, groups=sites))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
