"""Derived features: a few named quantities computed from contract fields.

`exercise_dose_vs_threshold`: how much of the dose that reliably gives exercise-induced
hypoalgesia the protocol delivers, from 0 (below the published threshold) to 1 (at or
above the dose that reliably relieves), by modality:

| modality | dose fraction | evidence |
|---|---|---|
| aerobic | ramp(%VO2max, 50, 75) x ramp(duration, 10, 25), %VO2max = (%HRmax - 37) / 0.64 | no EIH at or below ~50 % VO2max (~69 % HRmax) or under ~10 min, clear at ~75 % VO2max (~85 % HRmax) for 20-45 min (Hoffman et al. 2004; Naugle et al. 2014); the contract records % HRmax, converted with Swain et al. 1994 |
| isometric | ramp(duration, 0, 2) | EIH at low and high intensity once the hold lasts ~2 min (Naugle et al. 2012) |
| dynamic resistance | ramp(intensity, 30, 60) x ramp(duration, 3, 10) | Naugle et al. 2012 (% 1RM) |
| HIIT | ramp(duration, 5, 15) | no acute EIH data: a prior |
| mind-body | ramp(duration, 10, 30) | no acute EIH data: a prior |

`exercise_load`: how heavy the protocol is for its modality, from 0 (no load that could
provoke pain) to 1 (the modality's heaviest load), the load that in sensitized people raises
pain sensitivity after the bout instead of lowering it:

| modality | load share | evidence |
|---|---|---|
| aerobic | ramp(%VO2max, 45, 90)^1.3 x (0.5 + 0.5 ramp(duration, 10, 40)) | in sensitized people very high intensity raises pain sensitivity; the risk grows steeply above ~60 % VO2max and with longer bouts |
| isometric | (0.6 + 0.4 ramp(intensity, 20, 80)) x (0.7 + 0.3 ramp(duration, 1, 5)) | local loading provokes hyperalgesia in fibromyalgia even at low contraction force (Kosek et al. 1996; Staud et al. 2005) |
| dynamic resistance | 0.5 + 0.5 ramp(intensity, 50, 85) | heavier loads, lower and possibly negative EIH with local loading in low back pain (Kuithan et al. 2019) |
| HIIT | 0.5 + 0.5 ramp(intensity, 80, 100) | no acute data: the most novel, very high load of the set (a prior) |
| mind-body | ramp(duration, 10, 30) | no acute data: a prior |

`ramp(v, a, b)` rises linearly from 0 at a to 1 at b. Missing when the modality, or a
value the modality's formula needs, is missing. The unit conversion and both tables are the
simulator's (simulation/README.md, model.protocol_terms: the dose is where its gain G
starts and saturates, the load is its load sensitivity H divided by the modality's
magnitude); this module keeps its own copy because features may not depend on the
simulator, and tests/test_sim2_units.py asserts that the copies agree.

Why they exist: the response depends on the protocol's dose multiplied by how responsive
the person is, minus its load multiplied by how sensitized the person is; trees need many
splits (modality x intensity x duration x person) to form those products, and one dose and
one load number let shallow trees reach them. Honesty note: these are the same shapes the
simulator encodes, so on simulated cohorts the features carry the simulator's dose and load
shapes exactly (only the magnitudes per modality and person are left to learn); on real
cohorts the thresholds are approximations and the gain will be smaller. `derived_features =
[]` trains on the contract fields alone.

Explanations: a derived feature gets its own exact contribution (TreeSHAP treats it as
one more input), reported under its name beside the contract fields; base value plus all
contributions still equals the margin. The protocol's total effect is the sum of the
modality, intensity, duration, dose and load contributions.

Both the pandas path (`ContractFeatures.transform`) and the HTTP fast path
(`EIHPredictor.matrix`) call `Derived.compute`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from data_contracts.fields import BY_NAME


def ramp(v: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 below a, 1 above b, linear between."""
    return np.clip((v - a) / (b - a), 0.0, 1.0)


# Swain et al. 1994 (MSSE 26:112): %HRmax = 0.64 x %VO2max + 37
SWAIN_SLOPE = 0.64
SWAIN_INTERCEPT = 37.0
AEROBIC_VO2_ONSET = 50.0  # % VO2max without EIH at 30 min (Hoffman et al. 2004)
AEROBIC_VO2_FULL = 75.0  # % VO2max with a clear EIH at 30 min (Hoffman et al. 2004)
AEROBIC_LOAD_VO2 = (45.0, 90.0, 1.3)  # aerobic load: ramp(% VO2max, lo, hi) ** power


def vo2max_from_hrmax(pct_hrmax: np.ndarray) -> np.ndarray:
    """% of VO2max at a given % of maximal heart rate (inverse of Swain et al. 1994)."""
    return (pct_hrmax - SWAIN_INTERCEPT) / SWAIN_SLOPE


@dataclass(frozen=True)
class Derived:
    name: str
    label: str  # what a clinician reads
    inputs: tuple[str, ...]  # contract fields it is computed from
    fn: Callable[[Mapping[str, np.ndarray]], np.ndarray]

    def compute(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """`cols`: each input as a float array, categories as their position in the contract's
        category list (NaN when missing). Returns a float64 array (NaN when not computable)."""
        return np.asarray(self.fn(cols), dtype="float64")

    def from_record(self, record: Mapping) -> float | None:
        """The value for one contract record (a mapping of field -> value, as in the API)."""
        cols = {}
        for name in self.inputs:
            v = record.get(name)
            f = BY_NAME[name]
            if f.kind == "category":
                cols[name] = np.array([float(f.categories.index(v)) if v in f.categories else np.nan])
            else:
                cols[name] = np.array([np.nan if v is None else float(v)])
        out = float(self.compute(cols)[0])
        return None if np.isnan(out) else out


_MODALITIES = BY_NAME["exercise_modality"].categories


Formula = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(intensity, duration) of one modality's rows -> the feature's values."""


def _per_modality(cols: Mapping[str, np.ndarray], formulas: Mapping[str, Formula]) -> np.ndarray:
    """Each row's value by its modality's formula; NaN for a missing modality or a category
    without a formula (one added to the contract later). NaN inputs stay NaN (np.clip keeps NaN)."""
    mod = np.asarray(cols["exercise_modality"], dtype="float64")
    inten = np.asarray(cols["exercise_intensity_pct"], dtype="float64")
    dur = np.asarray(cols["exercise_duration_min"], dtype="float64")
    out = np.full(len(mod), np.nan)
    with np.errstate(invalid="ignore"):
        for code, name in enumerate(_MODALITIES):
            m = mod == code
            if m.any() and name in formulas:
                out[m] = formulas[name](inten[m], dur[m])
    return out


_DOSE: dict[str, Formula] = {
    "aerobic": lambda i, d: ramp(vo2max_from_hrmax(i), AEROBIC_VO2_ONSET, AEROBIC_VO2_FULL) * ramp(d, 10.0, 25.0),
    "isometric": lambda i, d: ramp(d, 0.0, 2.0),
    "dynamic_resistance": lambda i, d: ramp(i, 30.0, 60.0) * ramp(d, 3.0, 10.0),
    "hiit": lambda i, d: ramp(d, 5.0, 15.0),
    "mind_body": lambda i, d: ramp(d, 10.0, 30.0),
}

_LOAD: dict[str, Formula] = {
    "aerobic": lambda i, d: (ramp(vo2max_from_hrmax(i), *AEROBIC_LOAD_VO2[:2]) ** AEROBIC_LOAD_VO2[2]
                            * (0.5 + 0.5 * ramp(d, 10.0, 40.0))),
    "isometric": lambda i, d: (0.6 + 0.4 * ramp(i, 20.0, 80.0)) * (0.7 + 0.3 * ramp(d, 1.0, 5.0)),
    "dynamic_resistance": lambda i, d: 0.5 + 0.5 * ramp(i, 50.0, 85.0),
    "hiit": lambda i, d: 0.5 + 0.5 * ramp(i, 80.0, 100.0),
    "mind_body": lambda i, d: ramp(d, 10.0, 30.0),
}


def _dose(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    return _per_modality(cols, _DOSE)


def _load(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    return _per_modality(cols, _LOAD)


EXERCISE_DOSE = "exercise_dose_vs_threshold"
EXERCISE_LOAD = "exercise_load"
PROTOCOL_FIELDS = ("exercise_modality", "exercise_intensity_pct", "exercise_duration_min")

DERIVED: dict[str, Derived] = {
    EXERCISE_DOSE: Derived(EXERCISE_DOSE, "Exercise dose relative to the EIH threshold", PROTOCOL_FIELDS, _dose),
    EXERCISE_LOAD: Derived(EXERCISE_LOAD, "Exercise load relative to the modality's heaviest", PROTOCOL_FIELDS, _load),
}


def check_names(names) -> None:
    """Raise ValueError naming any unknown derived feature."""
    unknown = [d for d in names if d not in DERIVED]
    if unknown:
        raise ValueError(f"unknown derived features: {', '.join(unknown)} (known: {', '.join(DERIVED)})")


def of_protocol(name: str) -> bool:
    """Whether a derived feature reads only the protocol's fields (the same for every person)."""
    return set(DERIVED[name].inputs) <= set(PROTOCOL_FIELDS)


def kind(name: str) -> str:
    """'number' or 'category' for a contract field or a derived feature."""
    return "number" if name in DERIVED else BY_NAME[name].kind


_BAND_WORDS: dict[str, tuple[str, str, str]] = {
    EXERCISE_DOSE: ("below the threshold for EIH", "at or above the dose that reliably gives EIH",
                    "of the dose that reliably gives EIH"),
    EXERCISE_LOAD: ("no load that provokes pain", "the modality's heaviest load", "of the modality's heaviest load"),
}
"""Per derived feature (a share from 0 to 1): what 0 reads as, what 1 reads as, and what a
share in between is a share of."""


def band(name: str, v: float) -> str:
    """Clinical reading of a derived feature's value, e.g. "38% of the dose that reliably gives EIH"."""
    none, full, of = _BAND_WORDS[name]
    if v <= 0.0:
        return none
    if v >= 1.0:
        return full
    return f"{v:.0%} {of}"
