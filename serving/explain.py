"""From exact contributions to what a clinician reads: the top fields and a sentence each.

Ordinal model (one output, the expected change of the pain threshold in %): a field
that raises the expected change pushes toward hypoalgesia, one that lowers it toward
hyperalgesia, by the size of its contribution (percentage points).

Class-margin model (softmax): softmax is unchanged by adding the same number to every
margin, so a field's effect on the probabilities is its contribution to each margin
minus the mean over the three margins ("centered"). A field pushes toward the outcome
whose centered contribution is largest, by that amount (log-odds units relative to the
other outcomes).

Used by the HTTP service and the batch scorer.
"""

from __future__ import annotations

import math

import numpy as np

from data_contracts.fields import BY_NAME, RESPONSES
from features.derived import DERIVED, band, kind

TOWARD_PHRASE = {
    "hypoalgesia": "favours hypoalgesia (less pain sensitivity after exercise)",
    "no_change": "points toward no change in pain sensitivity",
    "hyperalgesia": "raises the risk of hyperalgesia (more pain sensitivity after exercise)",
}

def label(field: str) -> str:
    """What a clinician reads for a field or derived feature (from their definitions)."""
    if field in DERIVED:
        return DERIVED[field].label
    f = BY_NAME.get(field)
    return f.label if f is not None and f.label else field


def _band(field: str, v: float, record: dict) -> str | None:
    """Clinical reading of a value: the contract field's bands, or the derived feature's."""
    if field in DERIVED:
        return band(field, v)
    f = BY_NAME.get(field)
    return f.band(v, record.get("exercise_modality")) if f is not None else None


def format_value(field: str, value) -> str:
    """A value as a clinician reads it: "not measured" when missing, a number with its display
    unit, a derived feature (a share from 0 to 1) to two decimals, a category with spaces for underscores."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    if field in DERIVED:
        return f"{float(value):.2f}"
    if kind(field) == "number":
        unit = BY_NAME[field].display_unit if field in BY_NAME else ""
        return f"{float(value):g}{unit}"
    return str(value).replace("_", " ")


def statement(field: str, value, toward: str, record: dict | None = None, shift_points: float | None = None) -> str:
    """One sentence, e.g. "CPM of -8 % (impaired inhibition) raises the risk of hyperalgesia ...".

    `shift_points` (ordinal model): the field's signed contribution to the expected change
    of the pain threshold in %-points, appended as ", shifting the expected change by -3.1 points"."""
    name = label(field)
    phrase = TOWARD_PHRASE[toward]
    if shift_points is not None:
        phrase += f", shifting the expected change by {shift_points:+.1f} points"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{name} not measured: the model's handling of the missing value {phrase}"
    text = f"{name} of {format_value(field, value)}"
    if kind(field) == "number":
        band = _band(field, float(value), record or {})
        if band:
            text += f" ({band})"
    return f"{text} {phrase}"


def centered(contributions: np.ndarray) -> np.ndarray:
    """(n, K, F) contributions minus their mean over outputs (softmax-relevant part)."""
    if contributions.shape[1] == 1:
        return contributions
    return contributions - contributions.mean(axis=1, keepdims=True)


_HYPO, _HYPER = RESPONSES.index("hypoalgesia"), RESPONSES.index("hyperalgesia")


def top_fields(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row the k fields with the largest effect: (field index, size of the push, toward
    index into RESPONSES), each (n, k)."""
    if contributions.shape[1] == 1:  # ordinal: the sign says which way
        c = contributions[:, 0, :]
        toward = np.where(c >= 0, _HYPO, _HYPER)
        strength = np.abs(c)
    else:
        c = centered(contributions)
        toward = c.argmax(axis=1)  # (n, F), outputs are RESPONSES
        strength = np.take_along_axis(c, toward[:, None, :], axis=1)[:, 0, :]  # (n, F)
    k = min(k, strength.shape[1])
    idx = np.argsort(-strength, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(strength, idx, axis=1), np.take_along_axis(toward, idx, axis=1)


def top_contributions(records: list[dict], fields: tuple[str, ...], contributions: np.ndarray,
                      k: int = 5, values: np.ndarray | None = None) -> list[list[dict]]:
    """The API's `top_contributions` for each record (values as given).

    A derived feature's value is read from `values`, the model's feature matrix of these
    records (`EIHPredictor.matrix`, already built to explain them); without it, it is
    computed from the record."""
    idx, val, tow = top_fields(contributions, k)
    ordinal = contributions.shape[1] == 1
    out = []
    for i, rec in enumerate(records):
        items = []
        for j in range(idx.shape[1]):
            f = fields[idx[i, j]]
            toward = RESPONSES[tow[i, j]]
            if f not in DERIVED:
                v = rec.get(f)
            elif values is not None:
                x = float(values[i, idx[i, j]])
                v = None if math.isnan(x) else x
            else:
                v = DERIVED[f].from_record(rec)
            shift = float(contributions[i, 0, idx[i, j]]) if ordinal else None
            items.append({"field": f, "value": v, "contribution": round(float(val[i, j]), 6), "toward": toward,
                          "statement": statement(f, v, toward, rec, shift)})
        out.append(items)
    return out
