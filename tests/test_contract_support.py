"""Helpers for the contract tests, generated from `data_contracts.fields.FIELDS`:
a vectorised generator of valid cohort frames and single-record builders that respect
the cross-field rules. The tests at the bottom check the helpers themselves.

Other contract test modules import from here (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts import validate_frame
from data_contracts.fields import BY_NAME, FIELDS, KNOWN_COLUMNS

NUMBER_FIELDS = tuple(f for f in FIELDS if f.kind == "number")
CATEGORY_FIELDS = tuple(f for f in FIELDS if f.kind == "category")
REQUIRED_FIELDS = tuple(f for f in FIELDS if f.required)

PAIN_FREE = "pain_free"
CHRONIC = tuple(c for c in BY_NAME["pain_condition"].categories if c != PAIN_FREE)
MECHANISMS_NOT_NONE = tuple(c for c in BY_NAME["pain_mechanism"].categories if c != "none")
CHRONIC_MIN_MONTHS = 3.0
PLASMA_MAX_NG_ML = 5.0

# strings that validate_frame reads as a missing value
MISSING_STRINGS = ("", "nan", "None", "<NA>")


def _mid(f) -> float:
    return round((f.min + f.max) / 2, 3)


def base_record(subject_id: str = "S-0001") -> dict:
    """A valid record with every field given (numbers at mid-range)."""
    rec: dict = {}
    for f in FIELDS:
        if f.name == "subject_id":
            rec[f.name] = subject_id
        elif f.name == "site":
            rec[f.name] = "site_A"
        elif f.kind == "number":
            rec[f.name] = _mid(f)
        else:
            rec[f.name] = f.categories[0]
    rec["pain_condition"] = CHRONIC[0]
    rec["pain_mechanism"] = MECHANISMS_NOT_NONE[0]
    rec["pain_duration_months"] = 24.0
    rec["bdnf_ng_ml"] = 20.0
    rec["bdnf_matrix"] = "serum"
    return rec


def record_with(field: str, value, subject_id: str = "S-0001") -> dict:
    """The base record with `field` set to `value` and its cross-field partners adjusted,
    so any problem of the record is a problem of `field`'s own value."""
    rec = base_record(subject_id)
    rec[field] = value
    if field == "pain_duration_months":
        num = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if num is not None and num < CHRONIC_MIN_MONTHS:
            rec["pain_condition"] = PAIN_FREE
            rec["pain_mechanism"] = "none"
    elif field == "pain_condition" and value == PAIN_FREE:
        rec["pain_duration_months"] = 0.0
        rec["pain_mechanism"] = "none"
    elif field == "pain_mechanism" and value == "none":
        rec["pain_condition"] = PAIN_FREE
        rec["pain_duration_months"] = 0.0
    elif field == "bdnf_matrix" and value == "plasma":
        rec["bdnf_ng_ml"] = 2.5
    elif field == "bdnf_matrix" and value is None:
        rec["bdnf_ng_ml"] = None
    return rec


def frame(*records: dict) -> pd.DataFrame:
    """Records -> frame with columns in contract order (plus any extra keys at the end)."""
    df = pd.DataFrame(list(records))
    cols = [c for c in KNOWN_COLUMNS if c in df.columns] + [c for c in df.columns if c not in KNOWN_COLUMNS]
    return df[cols]


def validate_records(*records: dict):
    return validate_frame(frame(*records))


def problem_fields(report, row: int = 1) -> set[str]:
    p = report.problems
    return set(p.loc[p["row"] == row, "field"])


def problem_text(report, field: str, row: int = 1) -> str:
    p = report.problems
    texts = p.loc[(p["row"] == row) & (p["field"] == field), "problem"].tolist()
    assert len(texts) == 1, f"expected one problem for {field} in row {row}, got {texts}"
    return texts[0]


class Batch:
    """Many independent single-record cases validated in one frame (one row each, unique
    subject ids), so a parametrised test costs one validation per module, not per case."""

    def __init__(self, cases: dict):
        self.keys = list(cases)
        recs = [{**cases[k], "subject_id": f"B{i}"} for i, k in enumerate(self.keys)]
        self.report = validate_frame(frame(*recs))
        self.row = {k: i + 1 for i, k in enumerate(self.keys)}

    def __getitem__(self, key) -> tuple:
        """(report, 1-based row) of one case."""
        return self.report, self.row[key]


def valid_frame(n: int, seed: int = 0, missing_rate: float = 0.2, boundary_rate: float = 0.02) -> pd.DataFrame:
    """`n` valid rows of contract 1.0, vectorised, from FIELDS: numbers uniform in range
    (a few exactly at the inclusive bounds), optional values missing at `missing_rate`,
    cross-field rules respected. Subject ids are unique."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in FIELDS:
        if f.name == "subject_id":
            cols[f.name] = np.array([f"P{seed}-{i:07d}" for i in range(n)], dtype=object)
            continue
        if f.name == "site":
            vals = rng.choice(np.array(["site_A", "site.B", "clinic-3"], dtype=object), n)
        elif f.kind == "number":
            vals = np.round(rng.uniform(f.min, f.max, n), 3).clip(f.min, f.max)
            edge = rng.random(n)
            vals[edge < boundary_rate / 2] = f.min
            vals[(edge >= boundary_rate / 2) & (edge < boundary_rate)] = f.max
        else:
            vals = rng.choice(np.array(f.categories, dtype=object), n)
        if not f.required:
            miss = rng.random(n) < missing_rate
            vals = vals.astype(object) if f.kind != "number" else vals
            vals[miss] = None if f.kind != "number" else np.nan
        cols[f.name] = vals

    # cross-field rules
    pain_free = cols["pain_condition"] == PAIN_FREE
    dur = cols["pain_duration_months"]
    dur[pain_free] = 0.0
    chronic_short = ~pain_free & (dur < CHRONIC_MIN_MONTHS)
    dur[chronic_short] = np.round(rng.uniform(CHRONIC_MIN_MONTHS, BY_NAME["pain_duration_months"].max, chronic_short.sum()), 1)
    mech = cols["pain_mechanism"]
    given = np.array([m is not None for m in mech])
    mech[pain_free & given] = "none"
    fix = ~pain_free & (mech == "none")
    mech[fix] = rng.choice(np.array(MECHANISMS_NOT_NONE, dtype=object), fix.sum())

    bdnf, matrix = cols["bdnf_ng_ml"], cols["bdnf_matrix"]
    no_matrix = ~np.isnan(bdnf) & np.array([m is None for m in matrix])
    matrix[no_matrix] = "serum"
    plasma = (matrix == "plasma") & ~np.isnan(bdnf)
    lo = BY_NAME["bdnf_ng_ml"].min
    bdnf[plasma] = np.round(rng.uniform(lo, PLASMA_MAX_NG_ML, plasma.sum()), 3).clip(lo, PLASMA_MAX_NG_ML)
    return pd.DataFrame(cols)


# --- the helpers themselves -------------------------------------------------------------


def test_batch_keeps_cases_apart():
    batch = Batch({"ok": base_record(), "bad": record_with("sex", "x"), "ok2": base_record()})
    report, row = batch["bad"]
    assert row == 2 and problem_fields(report, 2) == {"sex"}
    assert report.n_valid == 2 and list(report.rejected_rows) == [2]


def test_base_record_is_valid():
    report = validate_records(base_record())
    assert report.problems.empty, report.problems.to_dict("records")
    assert report.n_valid == 1


def test_valid_frame_is_valid_and_covers_the_contract():
    df = valid_frame(3000, seed=1)
    report = validate_frame(df)
    assert report.problems.empty, report.problems.head().to_dict("records")
    assert report.n_valid == report.n_rows == 3000
    for f in CATEGORY_FIELDS:  # every category appears
        assert set(df[f.name].dropna()) == set(f.categories), f.name
    for f in NUMBER_FIELDS:  # both inclusive bounds appear (except where a cross rule moves them)
        if f.name not in ("pain_duration_months", "bdnf_ng_ml"):
            assert (df[f.name] == f.min).any() and (df[f.name] == f.max).any(), f.name
    assert (df["pain_duration_months"] == 0).any()
    assert df["subject_id"].is_unique
