"""Contract 1.0: the one definition of every field.

Everything else (the pandera DataFrame schema, the pydantic record model of the HTTP
API, the feature pipeline's column list, the docs) is generated from `FIELDS`.
Specification: docs/contract-v1.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CONTRACT_VERSION = "1.0"
CONTRACT_MAJOR = int(CONTRACT_VERSION.split(".")[0])
DEFAULT_THRESHOLD_PCT = 10.0

RESPONSES = ("hypoalgesia", "no_change", "hyperalgesia")
"""Outcome classes, in the order every probability vector uses."""

Role = Literal["id", "meta", "predictor", "outcome"]
Kind = Literal["string", "number", "category"]
Measured = Literal["before", "after"]
"""When a field is measured relative to the exercise bout: `before` is known when a protocol
is prescribed; `after` (post-bout lactate, the post-bout PPT) is not, so a model that reads
an after-bout field cannot choose a protocol."""


@dataclass(frozen=True)
class UnitHint:
    """A value beyond `max` (direction 'above') or below `min` ('below') that looks like
    a unit slip. Message names the likely unit and the conversion."""

    direction: Literal["above", "below", "at_or_below"]
    bound: float
    message: str


@dataclass(frozen=True)
class Band:
    """A clinical reading of a value (from the published scale anchors): applies when every
    condition given holds (value < `below`, value <= `at_most`, the protocol's modality in
    `modalities`); a field's bands are read in order and the first that applies wins. An
    empty text is a range with no reading."""

    text: str
    below: float | None = None
    at_most: float | None = None
    modalities: tuple[str, ...] = ()

    def applies(self, value: float, modality: str | None) -> bool:
        if self.below is not None and not value < self.below:
            return False
        if self.at_most is not None and not value <= self.at_most:
            return False
        return not self.modalities or modality in self.modalities


_HADS = (Band("below the case threshold", below=8), Band("possible case"))


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    role: Role
    required: bool
    unit: str = ""
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    description: str = ""
    hints: tuple[UnitHint, ...] = field(default_factory=tuple)
    label: str = ""  # what a clinician reads
    bands: tuple[Band, ...] = field(default_factory=tuple)
    measured: Measured = "before"

    @property
    def display_unit(self) -> str:
        """The unit as written after a value in a sentence ('' for questionnaire points)."""
        if self.unit in ("", "points", "NRS points"):
            return ""
        if self.unit == "NRS":
            return "/10"
        return " min" if self.unit == "minutes" else f" {self.unit}"

    def band(self, value: float, modality: str | None = None) -> str | None:
        """The clinical reading of `value`, or None when no band applies."""
        for b in self.bands:
            if b.applies(value, modality):
                return b.text or None
        return None

    @property
    def rule(self) -> str:
        """The field's rule in words (used in every error message)."""
        if self.kind == "number":
            unit = f" {self.unit}" if self.unit else ""
            return f"a number from {_fmt(self.min)} to {_fmt(self.max)}{unit}"
        if self.kind == "category":
            return "one of " + ", ".join(self.categories)
        if self.name == "subject_id":
            return "1-64 characters of A-Z a-z 0-9 . _ -"
        return "1-64 characters"


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:g}"


FIELDS: tuple[Field, ...] = (
    # identification
    Field("subject_id", "string", "id", True, description="pseudonym; unique within a file", label="Subject ID"),
    Field("site", "string", "meta", False, description="recruiting site (grouped CV, external validation)", label="Site"),
    # predictors
    Field("age_years", "number", "predictor", True, "years", 18, 100, description="age", label="Age"),
    Field("sex", "category", "predictor", True, categories=("female", "male"), description="sex", label="Sex"),
    Field("bmi_kg_m2", "number", "predictor", False, "kg/m²", 12, 70, description="body-mass index", label="BMI"),
    Field(
        "pain_condition", "category", "predictor", True,
        categories=("chronic_low_back_pain", "knee_osteoarthritis", "chronic_neck_pain", "fibromyalgia", "pain_free"),
        description="pain condition",
        label="Pain condition",
    ),
    Field(
        "pain_mechanism", "category", "predictor", False,
        categories=("nociceptive", "neuropathic", "nociplastic", "mixed", "none"),
        description="IASP pain mechanism descriptor",
        label="Pain mechanism",
    ),
    Field(
        "pain_duration_months", "number", "predictor", True, "months", 0, 600,
        description="pain duration", label="Pain duration",
    ),
    Field(
        "pain_intensity_nrs", "number", "predictor", True, "NRS", 0, 10,
        description="average pain over the last week", label="Average pain",
    ),
    Field(
        "csi_score", "number", "predictor", False, "points", 0, 100,
        description="Central Sensitization Inventory", label="Central Sensitization Inventory",
        bands=(Band("below the sensitization threshold", below=40), Band("suggests central sensitization")),
    ),
    Field(
        "paindetect_score", "number", "predictor", False, "points", -1, 38,
        description="painDETECT score", label="painDETECT",
        bands=(
            Band("neuropathic component unlikely", below=13),
            Band("unclear", below=19),
            Band("neuropathic component likely"),
        ),
    ),
    Field(
        "ppt_baseline_kpa", "number", "predictor", True, "kPa", 50, 2000,
        description="pressure pain threshold before exercise",
        hints=(
            UnitHint("below", 50, "looks like kgf/cm² (multiply by 98.07) or N/cm² (multiply by 10)"),
        ),
        label="Baseline pressure pain threshold",
    ),
    Field(
        "cpm_pct", "number", "predictor", True, "%", -100, 300,
        description="conditioned pain modulation (positive = inhibition)", label="CPM",
        bands=(Band("impaired inhibition", below=0), Band("weak inhibition", below=10), Band("efficient inhibition")),
    ),
    Field(
        "temporal_summation_nrs", "number", "predictor", False, "NRS points", -10, 10,
        description="temporal summation (wind-up)", label="Temporal summation",
        bands=(Band("little wind-up", below=2), Band("enhanced wind-up")),
    ),
    Field(
        "pcs_total", "number", "predictor", True, "points", 0, 52,
        description="Pain Catastrophizing Scale", label="Pain catastrophizing (PCS)",
        bands=(Band("below the clinical threshold of 30", at_most=30), Band("clinically relevant catastrophizing")),
    ),
    Field(
        "tsk17_total", "number", "predictor", True, "points", 17, 68,
        description="Tampa Scale of Kinesiophobia", label="Kinesiophobia (TSK-17)",
        bands=(Band("low to moderate fear of movement", at_most=37), Band("high fear of movement")),
    ),
    Field(
        "pseq_total", "number", "predictor", True, "points", 0, 60,
        description="Pain Self-Efficacy Questionnaire", label="Pain self-efficacy (PSEQ)",
        bands=(
            Band("severely low self-efficacy", below=20),
            Band("moderate self-efficacy", below=40),
            Band("high self-efficacy"),
        ),
    ),
    Field(
        "hads_anxiety", "number", "predictor", False, "points", 0, 21,
        description="HADS anxiety", label="HADS anxiety",
        bands=_HADS,
    ),
    Field(
        "hads_depression", "number", "predictor", False, "points", 0, 21,
        description="HADS depression", label="HADS depression",
        bands=_HADS,
    ),
    Field(
        "expected_pain_change_nrs", "number", "predictor", False, "NRS points", -10, 10,
        description="expected change of pain with exercise (negative = expects relief)",
        label="Expected pain change",
        bands=(Band("expects relief", below=0), Band("expects no change", at_most=0), Band("expects more pain")),
    ),
    Field(
        "bdnf_ng_ml", "number", "predictor", False, "ng/mL", 0.01, 100,
        description="resting BDNF",
        hints=(UnitHint("above", 100, "looks like pg/mL (divide by 1000)"),),
        label="BDNF",
    ),
    Field(
        "bdnf_matrix", "category", "predictor", False, categories=("serum", "plasma"),
        description="BDNF sample matrix", label="BDNF sample matrix",
    ),
    Field(
        "lactate_mmol_l", "number", "predictor", False, "mmol/L", 0.3, 30,
        description="blood lactate right after the bout",
        hints=(UnitHint("above", 30, "looks like mg/dL (divide by 9.01)"),),
        label="Post-exercise lactate",
        measured="after",
    ),
    Field("il6_pg_ml", "number", "predictor", False, "pg/mL", 0.05, 500, description="resting interleukin-6", label="IL-6"),
    Field(
        "exercise_modality", "category", "predictor", True,
        categories=("aerobic", "isometric", "dynamic_resistance", "hiit", "mind_body"),
        description="exercise modality",
        label="Exercise modality",
    ),
    Field(
        "exercise_intensity_pct", "number", "predictor", True, "%", 10, 100,
        description="% of maximal heart rate or of maximal voluntary contraction / 1RM",
        hints=(UnitHint("at_or_below", 1, "looks like a fraction (multiply by 100)"),),
        label="Exercise intensity",
        bands=(
            # 50 % of VO2max, the published aerobic threshold, is ~69 % of HRmax (Swain et al. 1994)
            Band("below the ~69 % HRmax threshold for aerobic EIH", below=69, modalities=("aerobic",)),
            Band("moderate intensity", below=80),
            Band("high intensity"),
        ),
    ),
    Field(
        "exercise_duration_min", "number", "predictor", True, "minutes", 1, 120,
        description="exercise duration", label="Exercise duration",
        bands=(Band("shorter than ~10 minutes", below=10), Band("", below=20), Band("20-45 minutes", at_most=45)),
    ),
    # outcome (training data only)
    Field(
        "ppt_post_kpa", "number", "outcome", False, "kPa", 20, 3000,
        description="PPT right after the bout", label="Pressure pain threshold after the bout", measured="after",
    ),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
PREDICTORS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role == "predictor")
BEFORE_BOUT_PREDICTORS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role == "predictor" and f.measured == "before")
"""The predictors known before the bout: what a model that chooses a protocol may read."""
AFTER_BOUT: tuple[str, ...] = tuple(f.name for f in FIELDS if f.measured == "after")
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
OPTIONAL_PREDICTORS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role == "predictor" and not f.required)
NUMERIC: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "number")
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "category")
KNOWN_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
