"""validate_frame's vectorized pre-screen: clean rows skip pandera, doubtful rows do not,
and the answer is the same either way (the hypothesis property is in
test_contract_properties.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contracts.validate as v
from data_contracts.schema import PRESCREEN_ENABLED, SCHEMA


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    from simulation import simulate

    df, _ = simulate(600, seed=3)
    return df


def _coerced(df: pd.DataFrame) -> pd.DataFrame:
    data = df[[c for c in v.KNOWN_COLUMNS if c in df.columns]].reset_index(drop=True)
    return v._coerce(data)[0]


def test_prescreen_is_on_and_passes_a_clean_cohort(cohort):
    assert PRESCREEN_ENABLED
    assert len(v.doubtful_rows(_coerced(cohort))) == 0


@pytest.mark.parametrize(
    "field, value",
    [("cpm_pct", 500.0), ("age_years", np.nan), ("exercise_modality", "swimming"), ("subject_id", "bad id"),
     ("site", "x" * 65), ("pain_duration_months", 1.0)],  # the last breaks a cross-field rule in chronic pain
)
def test_prescreen_doubts_exactly_the_planted_row(cohort, field, value):
    df = cohort.copy()
    df[field] = df[field].astype(object)
    row = int(np.flatnonzero(df["pain_condition"].astype(str) != "pain_free")[5])
    df.loc[df.index[row], field] = value
    assert list(v.doubtful_rows(_coerced(df))) == [row]


def test_duplicated_ids_are_doubted_in_every_copy(cohort):
    df = cohort.copy()
    df.loc[df.index[7], "subject_id"] = df["subject_id"].iloc[2]
    assert list(v.doubtful_rows(_coerced(df))) == [2, 7]


def test_pandera_sees_only_the_doubtful_rows_and_the_answer_is_unchanged(cohort, monkeypatch):
    df = cohort.copy()
    df["cpm_pct"] = df["cpm_pct"].astype(object)
    df.loc[df.index[[4, 40]], "cpm_pct"] = [500.0, "abc"]
    df.loc[df.index[9], "subject_id"] = df["subject_id"].iloc[10]
    seen = []
    real = SCHEMA.validate

    def spy(data, **kw):
        seen.append(len(data))
        return real(data, **kw)

    monkeypatch.setattr(SCHEMA, "validate", spy)
    fast = v.validate_frame(df)
    assert seen == [4]  # rows 4, 9, 10, 40 of 600
    slow = v.validate_frame(df, prescreen=False)
    assert seen == [4, 600]
    pd.testing.assert_frame_equal(fast.problems, slow.problems)
    pd.testing.assert_frame_equal(fast.valid, slow.valid)
    assert fast.n_rejected == 4 and fast.n_valid == 596
