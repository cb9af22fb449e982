"""A blank cohort template and its data dictionary, generated from `fields.FIELDS`.

`eih template --out cohort.csv` writes

- `cohort.csv`: the contract's header (every field, in contract order) and no rows;
- `cohort.dictionary.csv`: one row per field, in the same order, saying what goes in it:
  field, label, description, role, kind, unit, required, allowed (range or categories), rule (the
  field's rule in the words of every error message, plus the cross-field rules that
  blame this field) and the unit slips the checks recognise.

The dictionary is a CSV (not Markdown) so it opens next to the template in the same
spreadsheet program and can be read by other tools.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from data_contracts.fields import FIELDS, KNOWN_COLUMNS, Field
from data_contracts.schema import CROSS_RULES
from data_contracts.validate import ContractFileError

DICTIONARY_SUFFIX = ".dictionary.csv"
DICTIONARY_COLUMNS = ["field", "label", "description", "role", "kind", "unit", "required", "allowed", "rule", "unit_slips"]
_ROLES = {
    "id": "identification",
    "meta": "metadata",
    "predictor": "predictor",
    "outcome": "outcome (training data only)",
}


def dictionary_path(template: str | os.PathLike) -> Path:
    """Where the data dictionary of a template goes: `x.csv` -> `x.dictionary.csv`."""
    return Path(template).with_suffix(DICTIONARY_SUFFIX)


def _allowed(f: Field) -> str:
    if f.kind == "number":
        unit = f" {f.unit}" if f.unit else ""
        return f"{f.min:g} to {f.max:g}{unit}"
    if f.kind == "category":
        return " | ".join(f.categories)
    if f.name == "subject_id":
        return "1-64 characters of A-Z a-z 0-9 . _ -; unique within a file"
    return "1-64 characters"


def _required(f: Field) -> str:
    if f.required:
        return "required"
    when = f"{f.name} is required when "
    conditional = [r.text[len(when):] for r in CROSS_RULES if r.field == f.name and r.text.startswith(when)]
    return "required when " + " or ".join(conditional) if conditional else "optional"


def _rule(f: Field) -> str:
    rules = [f"{f.name} is {f.rule}"]
    if f.name == "subject_id":
        rules.append("subject_id is unique within a file")
    rules += [r.text for r in CROSS_RULES if r.field == f.name]
    return "; ".join(rules)


def data_dictionary() -> pd.DataFrame:
    """One row per contract field, in contract order (columns `DICTIONARY_COLUMNS`)."""
    rows = [
        {
            "field": f.name,
            "label": getattr(f, "label", "") or f.description,
            "description": f.description,
            "role": _ROLES.get(f.role, f.role),
            "kind": f.kind,
            "unit": f.unit,
            "required": _required(f),
            "allowed": _allowed(f),
            "rule": _rule(f),
            "unit_slips": "; ".join(_slip(f, h) for h in f.hints),
        }
        for f in FIELDS
    ]
    return pd.DataFrame(rows, columns=DICTIONARY_COLUMNS)


def _slip(f: Field, hint) -> str:
    where = {"above": "above", "below": "below", "at_or_below": "at or below"}[hint.direction]
    return f"{where} {hint.bound:g}: {hint.message}"


def write_template(out: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the blank template `out` (a .csv) and its data dictionary beside it
    (`dictionary_path(out)`); returns both paths.

    Raises ContractFileError when `out` is not a .csv file, or when either file exists
    and `overwrite` is False (a template must never replace a cohort by accident)."""
    template = Path(out)
    if template.suffix.lower() != ".csv":
        raise ContractFileError(f"{template.name}: the template is a .csv file")
    dictionary = dictionary_path(template)
    if not overwrite:
        existing = [p.name for p in (template, dictionary) if p.exists()]
        if existing:
            raise ContractFileError(", ".join(existing) + ": already exists (--force overwrites)")
    template.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns=list(KNOWN_COLUMNS)).to_csv(template, index=False)
    data_dictionary().to_csv(dictionary, index=False)
    return template, dictionary


__all__ = ["DICTIONARY_COLUMNS", "data_dictionary", "dictionary_path", "write_template"]
