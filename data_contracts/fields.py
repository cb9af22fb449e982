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


@dataclass(frozen=True)
class UnitHint:
    """A value beyond `max` (direction 'above') or below `min` ('below') that looks like
    a unit slip. Message names the likely unit and the conversion."""

    direction: Literal["above", "below", "at_or_below"]
    bound: float
    message: str


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
    Field("subject_id", "string", "id", True, description="pseudonym; unique within a file"),
    Field("site", "string", "meta", False, description="recruiting site (grouped CV, external validation)"),
    # predictors
    Field("age_years", "number", "predictor", True, "years", 18, 100, description="age"),
    Field("sex", "category", "predictor", True, categories=("female", "male"), description="sex"),
    Field("bmi_kg_m2", "number", "predictor", False, "kg/m²", 12, 70, description="body-mass index"),
    Field(
        "pain_condition", "category", "predictor", True,
        categories=("chronic_low_back_pain", "knee_osteoarthritis", "chronic_neck_pain", "fibromyalgia", "pain_free"),
        description="pain condition",
    ),
    Field(
        "pain_mechanism", "category", "predictor", False,
        categories=("nociceptive", "neuropathic", "nociplastic", "mixed", "none"),
        description="IASP pain mechanism descriptor",
    ),
    Field("pain_duration_months", "number", "predictor", True, "months", 0, 600, description="pain duration"),
    Field("pain_intensity_nrs", "number", "predictor", True, "NRS", 0, 10, description="average pain over the last week"),
    Field("csi_score", "number", "predictor", False, "points", 0, 100, description="Central Sensitization Inventory"),
    Field("paindetect_score", "number", "predictor", False, "points", -1, 38, description="painDETECT score"),
    Field(
        "ppt_baseline_kpa", "number", "predictor", True, "kPa", 50, 2000,
        description="pressure pain threshold before exercise",
        hints=(
            UnitHint("below", 50, "looks like kgf/cm² (multiply by 98.07) or N/cm² (multiply by 10)"),
        ),
    ),
    Field("cpm_pct", "number", "predictor", True, "%", -100, 300, description="conditioned pain modulation (positive = inhibition)"),
    Field("temporal_summation_nrs", "number", "predictor", False, "NRS points", -10, 10, description="temporal summation (wind-up)"),
    Field("pcs_total", "number", "predictor", True, "points", 0, 52, description="Pain Catastrophizing Scale"),
    Field("tsk17_total", "number", "predictor", True, "points", 17, 68, description="Tampa Scale of Kinesiophobia"),
    Field("pseq_total", "number", "predictor", True, "points", 0, 60, description="Pain Self-Efficacy Questionnaire"),
    Field("hads_anxiety", "number", "predictor", False, "points", 0, 21, description="HADS anxiety"),
    Field("hads_depression", "number", "predictor", False, "points", 0, 21, description="HADS depression"),
    Field(
        "expected_pain_change_nrs", "number", "predictor", False, "NRS points", -10, 10,
        description="expected change of pain with exercise (negative = expects relief)",
    ),
    Field(
        "bdnf_ng_ml", "number", "predictor", False, "ng/mL", 0.01, 100,
        description="resting BDNF",
        hints=(UnitHint("above", 100, "looks like pg/mL (divide by 1000)"),),
    ),
    Field("bdnf_matrix", "category", "predictor", False, categories=("serum", "plasma"), description="BDNF sample matrix"),
    Field(
        "lactate_mmol_l", "number", "predictor", False, "mmol/L", 0.3, 30,
        description="blood lactate right after the bout",
        hints=(UnitHint("above", 30, "looks like mg/dL (divide by 9.01)"),),
    ),
    Field("il6_pg_ml", "number", "predictor", False, "pg/mL", 0.05, 500, description="resting interleukin-6"),
    Field(
        "exercise_modality", "category", "predictor", True,
        categories=("aerobic", "isometric", "dynamic_resistance", "hiit", "mind_body"),
        description="exercise modality",
    ),
    Field(
        "exercise_intensity_pct", "number", "predictor", True, "%", 10, 100,
        description="% of maximal heart rate or of maximal voluntary contraction / 1RM",
        hints=(UnitHint("at_or_below", 1, "looks like a fraction (multiply by 100)"),),
    ),
    Field("exercise_duration_min", "number", "predictor", True, "minutes", 1, 120, description="exercise duration"),
    # outcome (training data only)
    Field("ppt_post_kpa", "number", "outcome", False, "kPa", 20, 3000, description="PPT right after the bout"),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
PREDICTORS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role == "predictor")
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
OPTIONAL_PREDICTORS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role == "predictor" and not f.required)
NUMERIC: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "number")
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "category")
KNOWN_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
