"""Validate a cohort frame against contract 1.0 and report every problem by field.

`validate_frame` is the single entry point used by `eih validate`, training, the batch
scorer and the HTTP service. Problems name the row (subject_id and 1-based data row),
the field, what is wrong and the rule, plus a unit hint where a value looks like a unit
slip; they never quote a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

from data_contracts.fields import BY_NAME, CATEGORICAL, FIELDS, KNOWN_COLUMNS, NUMERIC, REQUIRED, Field
from data_contracts.schema import CROSS_BY_NAME, CROSS_RULES, ID_PATTERN, PRESCREEN_ENABLED, SCHEMA

PROBLEM_COLUMNS = ["subject_id", "row", "field", "problem"]
DUPLICATE_ID_PROBLEM = "duplicated subject_id: every copy is rejected; rule: subject_id is unique within a file"


class ContractFileError(ValueError):
    """The input cannot be read as a cohort at all (exit code 2 in the CLI)."""


@dataclass
class ValidationReport:
    n_rows: int
    valid: pd.DataFrame
    """Valid rows, typed (float64 numbers, contract categoricals), original index kept."""
    problems: pd.DataFrame
    """One line per problem: subject_id, row (1-based data row), field, problem."""
    unknown_columns: list[str] = field(default_factory=list)
    row_offset: int = 0

    @property
    def n_valid(self) -> int:
        return len(self.valid)

    @property
    def rejected_rows(self) -> np.ndarray:
        return np.sort(self.problems["row"].unique()) if len(self.problems) else np.array([], dtype=int)

    @property
    def n_rejected(self) -> int:
        return int(self.problems["row"].nunique()) if len(self.problems) else 0

    def by_field_rule(self) -> pd.DataFrame:
        """Problem counts by field and rule (the summary table)."""
        if not len(self.problems):
            return pd.DataFrame(columns=["field", "problem", "count"])
        rule = self.problems["problem"].str.split(";", n=1).str[0]
        out = (
            self.problems.assign(problem=rule)
            .groupby(["field", "problem"], sort=True)
            .size()
            .rename("count")
            .reset_index()
            .sort_values(["count", "field"], ascending=[False, True])
        )
        return out.reset_index(drop=True)

    def to_dict(self) -> dict:
        return {
            "rows_read": self.n_rows,
            "valid": self.n_valid,
            "rejected": self.n_rejected,
            "unknown_columns": list(self.unknown_columns),
            "problems_by_field": self.by_field_rule().to_dict(orient="records"),
            "problems": self.problems.to_dict(orient="records"),
        }


def missing_required(columns: list[str] | pd.Index) -> list[str]:
    present = set(columns)
    return [c for c in REQUIRED if c not in present]


def _problem(f: Field, what: str, hint: str | None = None) -> str:
    text = f"{what}; rule: {f.name} is {f.rule}"
    return f"{text}; {hint}" if hint else text


def doubtful_rows(data: pd.DataFrame) -> np.ndarray | None:
    """Positions of the rows of a coerced frame (`_coerce`'s output, RangeIndex) that may
    break a rule of the pandera schema, by the same field definitions and cross-field rules
    in vectorized form; None when the pre-screen is off or cannot judge this frame (then
    pandera checks every row).

    Conservative by construction: every check of the schema is repeated here, so a row
    not listed passes the schema (tests/test_contract_prescreen.py checks this on
    generated frames). Duplicated subject_ids list every copy, so pandera's uniqueness
    check sees them all."""
    if not PRESCREEN_ENABLED:
        return None
    n = len(data)
    bad = np.zeros(n, dtype=bool)
    try:
        with np.errstate(invalid="ignore"):
            for f in FIELDS:
                if f.name not in data.columns:
                    continue  # a missing optional column (a missing required one raised before)
                col = data[f.name]
                na = col.isna().to_numpy(dtype=bool)
                if f.required:
                    bad |= na
                if f.kind == "number":
                    v = col.to_numpy(dtype="float64")
                    bad |= ~na & ((v < f.min) | (v > f.max))
                elif f.kind == "category":
                    bad |= ~na & ~col.isin(list(f.categories)).to_numpy(dtype=bool)
                elif f.name == "subject_id":
                    ok = col.str.fullmatch(ID_PATTERN).fillna(False).to_numpy(dtype=bool)
                    bad |= ~na & ~ok
                    bad |= col.duplicated(keep=False).to_numpy(dtype=bool)
                else:
                    length = col.str.len().to_numpy(dtype="float64")
                    bad |= ~na & ((length < 1) | (length > 64))
            for rule in CROSS_RULES:
                bad |= ~rule.check(data).fillna(False).to_numpy(dtype=bool)
    except (TypeError, ValueError, AttributeError):  # a frame it cannot judge: pandera decides
        return None
    return np.flatnonzero(bad)


def _coerce(df: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Numbers to float64 and categories to strings, collecting values that are not numbers."""
    out = {}
    problems: list[pd.DataFrame] = []
    for name in df.columns:
        col = df[name]
        f = BY_NAME[name]
        if f.kind == "number":
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                s = col.astype("string").str.strip()
                s = s.mask(s == "")
                num = pd.to_numeric(s, errors="coerce")
                bad = s.notna() & num.isna()
                if bad.any():
                    problems.append(_frame(np.flatnonzero(bad.to_numpy()), name, _problem(f, "not a number")))
                col = num
            col = col.astype("float64")
            inf = ~np.isfinite(col.to_numpy()) & col.notna().to_numpy()
            if inf.any():
                problems.append(_frame(np.flatnonzero(inf), name, _problem(f, "not a finite number")))
                col = col.mask(inf)
        else:
            if not (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col)):
                col = col.astype("string")
            col = col.astype("str")  # categories too: str (arrow) is far faster to check than object
            col = col.mask(col.isin(["", "nan", "None", "<NA>"]) | col.isna())
        out[name] = col
    return pd.DataFrame(out, index=df.index), problems


def _frame(positions: np.ndarray, field_name: str, problem: str) -> pd.DataFrame:
    return pd.DataFrame({"pos": positions.astype("int64"), "field": field_name, "problem": problem})


def _range_problem(f: Field, values: pd.Series) -> pd.Series:
    """Problem text for out-of-range values, with a unit hint where one applies."""
    v = values.to_numpy(dtype="float64")
    too_high = v > f.max
    base_hi = _problem(f, "above the allowed range")
    base_lo = _problem(f, "below the allowed range")
    texts = np.where(too_high, base_hi, base_lo).astype(object)
    for hint in f.hints:
        if hint.direction == "above":
            mask = v > hint.bound
            texts[mask] = _problem(f, "above the allowed range", hint.message)
        elif hint.direction == "below":
            mask = v < hint.bound
            texts[mask] = _problem(f, "below the allowed range", hint.message)
        else:
            mask = v <= hint.bound
            texts[mask] = _problem(f, "below the allowed range", hint.message)
    return pd.Series(texts, index=values.index)


def _translate(failures: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """pandera failure cases -> (pos, field, problem) without quoting values."""
    parts = []
    cross_parts = []  # after the field's own checks: the per-field problem (and unit hint) wins
    fc = failures[failures["index"].notna()]
    for (column, check), grp in fc.groupby(["column", "check"], sort=False, dropna=False):
        pos = grp["index"].astype("int64").to_numpy()
        check = str(check)
        if check.startswith("cross:"):
            rule = CROSS_BY_NAME[check.split(":", 1)[1]]
            f = BY_NAME[rule.field]
            cross_parts.append(_frame(pos, f.name, f"violates a cross-field rule; rule: {rule.text}"))
            continue
        f = BY_NAME.get(str(column))
        if f is None:
            continue
        if check.startswith(("range:", "in_range")):
            vals = data[f.name].iloc[pos]
            texts = _range_problem(f, vals)
            parts.append(pd.DataFrame({"pos": pos, "field": f.name, "problem": texts.to_numpy()}))
        elif check.startswith(("category:", "isin")):
            parts.append(_frame(pos, f.name, _problem(f, "not an allowed category")))
        elif check.startswith(("pattern:", "length:", "str_matches", "str_length")):
            parts.append(_frame(pos, f.name, _problem(f, "not a valid identifier" if f.name == "subject_id" else "wrong length")))
        elif check == "not_nullable":
            parts.append(_frame(pos, f.name, _problem(f, "required value is missing")))
        elif check == "field_uniqueness":
            parts.append(_frame(pos, f.name, DUPLICATE_ID_PROBLEM))
        else:  # pragma: no cover - a check we did not anticipate still blames its field
            parts.append(_frame(pos, f.name, _problem(f, "failed a contract check")))
    parts += cross_parts
    return pd.concat(parts, ignore_index=True) if parts else _frame(np.array([], dtype="int64"), "", "")


def subject_ids(col: pd.Series) -> pd.Series:
    """subject_id values exactly as `validate_frame` sees them (str, missing as NA).

    For a first pass over the id column of a large file (see `duplicate_ids`)."""
    data, _ = _coerce(pd.DataFrame({"subject_id": col}))
    return data["subject_id"]


def validate_frame(df: pd.DataFrame, *, row_offset: int = 0, duplicate_ids=None,
                   prescreen: bool = True) -> ValidationReport:
    """Validate one cohort frame (or one chunk of a file).

    `row_offset` is the number of data rows before this chunk in its file, so `row`
    stays the 1-based data row of the input file. Unknown columns are reported and
    dropped; a missing required column raises ContractFileError.

    `duplicate_ids` (optional): subject_ids known to occur more than once in the whole
    file (values as `subject_ids` returns them). When a file is validated chunk by
    chunk, every copy of such an id is rejected in every chunk with the same problem as
    a duplicate within one frame, so chunked and whole-file validation agree.

    `prescreen=False` makes pandera check every row instead of only those `doubtful_rows`
    lists (the same answer, slower: for tests and benchmarks of the pre-screen).
    """
    missing = missing_required(df.columns)
    if missing:
        raise ContractFileError("missing required column(s): " + ", ".join(missing))
    unknown = [str(c) for c in df.columns if c not in BY_NAME]
    n = len(df)
    data = df[[c for c in KNOWN_COLUMNS if c in df.columns]].reset_index(drop=True)
    data, coerce_problems = _coerce(data)

    # pandera has the last word on every row the vectorized pre-screen doubts; the rows it
    # passes cannot break a schema rule, so pandera need not see them (same problems, faster)
    doubt = doubtful_rows(data) if prescreen else None
    schema_problems = _frame(np.array([], dtype="int64"), "", "")
    if doubt is None or len(doubt):
        subset = data if doubt is None or len(doubt) == n else data.iloc[doubt]
        try:
            SCHEMA.validate(subset, lazy=True, inplace=True)  # nothing is coerced: no need for a copy
        except pa.errors.SchemaErrors as exc:
            schema_problems = _translate(exc.failure_cases, data)

    known_dups = []
    if duplicate_ids is not None and len(duplicate_ids):
        # before the schema's problems: like pandera's own uniqueness check, the duplicate
        # wins over an id-pattern problem of the same row (missing ids never match)
        known = duplicate_ids if isinstance(duplicate_ids, pd.Index) else pd.Index(list(duplicate_ids), dtype=object)
        hit = data["subject_id"].isin(known.dropna()).to_numpy(dtype=bool)
        if hit.any():
            known_dups.append(_frame(np.flatnonzero(hit), "subject_id", DUPLICATE_ID_PROBLEM))
    problems = pd.concat([*coerce_problems, *known_dups, schema_problems], ignore_index=True)
    # a value that is not a number is coerced to NaN, so the schema also calls it missing:
    # keep the first problem per field (the coercion one)
    problems = problems.drop_duplicates(subset=["pos", "field"], keep="first")
    problems = problems.sort_values(["pos", "field"], kind="stable").reset_index(drop=True)

    pos = problems["pos"].to_numpy()
    ids = data["subject_id"].iloc[pos]  # only the rejected rows' ids are ever shown
    ok_id = ids.notna() & ids.astype("string").str.fullmatch(ID_PATTERN).fillna(False).astype(bool)
    sid = ids.where(ok_id, "").fillna("").to_numpy() if len(pos) else np.array([], dtype=object)
    problems_out = pd.DataFrame(
        {
            "subject_id": pd.Series(sid, dtype="str"),
            "row": pos + 1 + row_offset,
            "field": problems["field"].astype("str"),
            "problem": problems["problem"].astype("str"),
        }
    )

    bad = np.zeros(n, dtype=bool)
    bad[pos] = True
    valid = typed(data.loc[~bad])
    valid.index = df.index[~bad]
    return ValidationReport(n_rows=n, valid=valid, problems=problems_out, unknown_columns=unknown, row_offset=row_offset)


def _categorical(col: pd.Series, categories: list[str]) -> pd.Categorical:
    """`pd.Categorical(col, categories=categories)` (values outside them become missing),
    but matching only the few distinct values: arrow strings are not turned into a
    million Python objects first."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.Categorical(col, categories=categories)
    codes, uniques = pd.factorize(col)
    lookup = np.append(pd.Index(categories).get_indexer(pd.Index(uniques, dtype=object)), -1)
    return pd.Categorical.from_codes(lookup[codes], categories=categories)


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes: float64 numbers, categoricals with the contract's categories, str ids."""
    out = df.copy(deep=False)  # copy-on-write: columns are replaced below, never written into
    for name in out.columns:
        f = BY_NAME.get(name)
        if f is None:
            continue
        if f.kind == "number":
            out[name] = out[name].astype("float64")
        elif f.kind == "category":
            out[name] = _categorical(out[name], list(f.categories))
        else:
            text = out[name].astype("str")
            out[name] = text.where(out[name].notna(), None) if out[name].isna().any() else text
    for name in CATEGORICAL + NUMERIC:
        if name not in out.columns and BY_NAME[name].role == "predictor":
            f = BY_NAME[name]
            out[name] = (
                pd.Categorical([None] * len(out), categories=list(f.categories)) if f.kind == "category" else np.nan
            )
    return out


__all__ = [
    "ContractFileError",
    "DUPLICATE_ID_PROBLEM",
    "PROBLEM_COLUMNS",
    "ValidationReport",
    "missing_required",
    "subject_ids",
    "typed",
    "validate_frame",
]
