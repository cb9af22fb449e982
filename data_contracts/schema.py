"""Contract rules as a pandera DataFrame schema, generated from `fields.FIELDS`.

Per-field rules (type, range, category, required, id pattern, uniqueness) are pandera
column checks; cross-field rules are DataFrame-level element-wise checks, each named
after the one field it blames. `RULES` maps every check name to (field, rule text) so
failures translate to field-level problems without ever quoting a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from data_contracts.fields import FIELDS, Field

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


@dataclass(frozen=True)
class CrossRule:
    name: str
    field: str
    text: str

    def check(self, df: pd.DataFrame) -> pd.Series:
        """Vectorized form over a frame (True where the rule holds)."""
        return _CROSS_CHECKS[self.name](df)

    def holds(self, r: dict) -> bool:
        """The same rule for one record with every contract field as a key (None = missing),
        values already of the right type: the HTTP gate's fast path."""
        return _RECORD_CHECKS[self.name](r)


_CHRONIC = tuple(c for c in next(f for f in FIELDS if f.name == "pain_condition").categories if c != "pain_free")


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """The column, or all-missing when an optional column is absent from the file
    (a check that raised KeyError would be dropped and its rule silently skipped)."""
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def _pain_free(df: pd.DataFrame) -> pd.Series:
    return df["pain_condition"] == "pain_free"


def _in_pain(df: pd.DataFrame) -> pd.Series:
    # only a valid chronic category: an unknown pain_condition is blamed on that field alone
    return df["pain_condition"].isin(_CHRONIC)


_CROSS_CHECKS = {
    "pain_free_duration": lambda df: ~_pain_free(df) | df["pain_duration_months"].isna() | (df["pain_duration_months"] == 0),
    "pain_free_mechanism": lambda df: (
        ~_pain_free(df) | _col(df, "pain_mechanism").isna() | (_col(df, "pain_mechanism") == "none")),
    "pain_duration_chronic": lambda df: ~_in_pain(df) | df["pain_duration_months"].isna() | (df["pain_duration_months"] >= 3),
    "pain_mechanism_not_none": lambda df: ~_in_pain(df) | (_col(df, "pain_mechanism") != "none").fillna(True),
    "bdnf_matrix_given": lambda df: _col(df, "bdnf_ng_ml").isna() | _col(df, "bdnf_matrix").notna(),
    "bdnf_plasma_plausible": lambda df: (
        ~(_col(df, "bdnf_matrix") == "plasma").fillna(False) | _col(df, "bdnf_ng_ml").isna()
        | (_col(df, "bdnf_ng_ml") <= 5)),
}

# the same rules, one record at a time (tests/test_serving_units.py checks they agree with the above)
_RECORD_CHECKS = {
    "pain_free_duration": lambda r: r["pain_condition"] != "pain_free" or r["pain_duration_months"] is None
    or r["pain_duration_months"] == 0,
    "pain_free_mechanism": lambda r: r["pain_condition"] != "pain_free" or r["pain_mechanism"] in (None, "none"),
    "pain_duration_chronic": lambda r: r["pain_condition"] not in _CHRONIC or r["pain_duration_months"] is None
    or r["pain_duration_months"] >= 3,
    "pain_mechanism_not_none": lambda r: r["pain_condition"] not in _CHRONIC or r["pain_mechanism"] != "none",
    "bdnf_matrix_given": lambda r: r["bdnf_ng_ml"] is None or r["bdnf_matrix"] is not None,
    "bdnf_plasma_plausible": lambda r: r["bdnf_matrix"] != "plasma" or r["bdnf_ng_ml"] is None or r["bdnf_ng_ml"] <= 5,
}

CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule("pain_free_duration", "pain_duration_months", "pain_free requires pain_duration_months = 0"),
    CrossRule("pain_free_mechanism", "pain_mechanism", "pain_free requires pain_mechanism none or missing"),
    CrossRule("pain_duration_chronic", "pain_duration_months", "a chronic pain condition requires pain_duration_months >= 3"),
    CrossRule("pain_mechanism_not_none", "pain_mechanism", "a chronic pain condition requires a pain_mechanism other than none"),
    CrossRule("bdnf_matrix_given", "bdnf_matrix", "bdnf_matrix is required when bdnf_ng_ml is given"),
    CrossRule("bdnf_plasma_plausible", "bdnf_ng_ml",
              "plasma BDNF above 5 ng/mL is implausible (serum and plasma are never mixed)"),
)


def _column(f: Field) -> pa.Column:
    checks: list[pa.Check] = []
    if f.kind == "number":
        checks.append(pa.Check.in_range(f.min, f.max, name=f"range:{f.name}"))
        dtype = "float64"
    elif f.kind == "category":
        checks.append(pa.Check.isin(list(f.categories), name=f"category:{f.name}"))
        dtype = None
    else:
        dtype = None
        if f.name == "subject_id":
            # fullmatch, not str_matches (re.match): "$" would also accept a trailing newline
            checks.append(pa.Check(lambda s: s.str.fullmatch(ID_PATTERN).fillna(False).astype(bool), name="pattern:subject_id"))
        else:
            checks.append(pa.Check.str_length(1, 64, name=f"length:{f.name}"))
    return pa.Column(
        dtype,
        checks=checks,
        nullable=not f.required,
        required=f.required,
        unique=f.name == "subject_id",
        report_duplicates="all",
        name=f.name,
    )


def build_schema() -> pa.DataFrameSchema:
    """The pandera schema for contract 1.0 (columns not in the contract are not allowed
    through: the reader drops and reports them before validation)."""
    cross = [
        pa.Check(rule.check, element_wise=False, name=f"cross:{rule.name}", ignore_na=False)
        for rule in CROSS_RULES
    ]
    return pa.DataFrameSchema(
        {f.name: _column(f) for f in FIELDS},
        checks=cross,
        strict=False,
        coerce=False,
    )


SCHEMA = build_schema()
CROSS_BY_NAME = {r.name: r for r in CROSS_RULES}


def _expected_checks() -> set[str]:
    names = set()
    for f in FIELDS:
        if f.kind == "number":
            names.add(f"range:{f.name}")
        elif f.kind == "category":
            names.add(f"category:{f.name}")
        elif f.name == "subject_id":
            names.add("pattern:subject_id")
        else:
            names.add(f"length:{f.name}")
    return names | {f"cross:{r.name}" for r in CROSS_RULES}


def _schema_checks() -> set[str]:
    names = {str(c.name) for c in SCHEMA.checks}
    for col in SCHEMA.columns.values():
        names |= {str(c.name) for c in col.checks}
    return names


PRESCREEN_ENABLED: bool = (
    _schema_checks() == _expected_checks()
    and all(f.kind in ("number", "category", "string") for f in FIELDS)
)
"""The fast pre-screens (`validate.doubtful_rows` for frames, `serving.gate.prescreen` for
HTTP records) implement exactly the checks above. False when the schema holds a check
they do not know: then everything goes through pandera (slower, never wrong)."""
