"""The derived outcome: eih_pct and the three-class `response` label."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.fields import DEFAULT_THRESHOLD_PCT, RESPONSES


def eih_pct(df: pd.DataFrame) -> pd.Series:
    """100 * (ppt_post_kpa - ppt_baseline_kpa) / ppt_baseline_kpa."""
    base = df["ppt_baseline_kpa"].astype("float64")
    post = df["ppt_post_kpa"].astype("float64")
    return (100.0 * (post - base) / base).rename("eih_pct")


def response_codes(eih: np.ndarray | pd.Series, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> np.ndarray:
    """Integer class codes in RESPONSES order: 0 hypoalgesia, 1 no_change, 2 hyperalgesia."""
    if not threshold_pct > 0:
        raise ValueError("label threshold must be a positive percentage")
    e = np.asarray(eih, dtype="float64")
    codes = np.ones(e.shape, dtype="int8")
    codes[e >= threshold_pct] = 0
    codes[e <= -threshold_pct] = 2
    return codes


def response_labels(df: pd.DataFrame, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> pd.Series:
    """The `response` label (hypoalgesia / no_change / hyperalgesia) of each row."""
    codes = response_codes(eih_pct(df), threshold_pct)
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(RESPONSES)), index=df.index, name="response")
