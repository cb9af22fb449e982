"""The pure-Python pre-screen of parsed records: "is every record valid?" in microseconds.

The contract has one rule engine, `data_contracts.validate.validate_frame`, and every rule
message comes from it; running it costs about 40 ms (pandera) even for one record. The
pre-screen answers first, from the same field definitions (`FIELDS`) and the same
cross-field rules (`schema.CROSS_RULES`, each defined there in a frame form and a
one-record form, `CrossRule.holds`). It is conservative: a record it doubts goes through
`validate_frame`, which has the last word. It switches itself off (every record is then
doubted) if the schema holds a check it does not know, and tests check on generated
records that it never accepts what `validate_frame` rejects.
"""

from __future__ import annotations

import math
import re

from data_contracts.fields import FIELDS
from data_contracts.record import ContractRecord
from data_contracts.schema import CROSS_RULES, ID_PATTERN, PRESCREEN_ENABLED

RECORD_FIELDS: tuple[str, ...] = tuple(ContractRecord.model_fields)
_ID_RE = re.compile(ID_PATTERN)
_RULES = [
    (f.name, f.kind, f.required, f.min, f.max, frozenset(f.categories))
    for f in FIELDS
    if f.name in RECORD_FIELDS
]


def _value_ok(name: str, kind: str, required: bool, lo, hi, cats: frozenset, v) -> bool:
    """Whether one value surely keeps its field's rule."""
    if v is None:
        return not required
    if kind == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        x = float(v)
        return math.isfinite(x) and lo <= x <= hi
    if kind == "category":
        return v in cats
    if not isinstance(v, str):  # identifiers and free text
        return False
    return bool(_ID_RE.fullmatch(v)) if name == "subject_id" else 1 <= len(v) <= 64


def record_ok(record: dict) -> bool:
    """Whether one record surely keeps every field rule and cross-field rule."""
    if not all(_value_ok(*rule, record[rule[0]]) for rule in _RULES):
        return False
    try:
        return all(rule.holds(record) for rule in CROSS_RULES)
    except TypeError:  # pragma: no cover - types are checked above
        return False


def prescreen(records: list[dict]) -> list[int]:
    """Indices of records that may break a contract rule (empty: all valid), duplicate
    subject_ids included. Records hold every field of `RECORD_FIELDS` (None when absent).

    Conservative: a record listed here is checked again by validate_frame, which decides.
    """
    if not PRESCREEN_ENABLED:
        return list(range(len(records)))
    doubtful = set()
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if not record_ok(r):
            doubtful.add(i)
        sid = r["subject_id"]
        if isinstance(sid, str):
            if sid in seen:
                doubtful.update((seen[sid], i))
            else:
                seen[sid] = i
    return sorted(doubtful)
