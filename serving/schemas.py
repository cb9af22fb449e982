"""Response models of the HTTP service (documentation: they make the OpenAPI document).

The endpoints build their JSON directly (one pass, no second validation of what they
built); tests/test_serving_api.py validates real responses against these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Response = Literal["hypoalgesia", "no_change", "hyperalgesia"]


class ModelInfo(BaseModel):
    name: str | None = Field(description="registered model name (None when served from a plain URI)")
    version: str | None = Field(description="registered model version")
    contract_version: str = Field(description="data contract the model was trained with")
    label_threshold_pct: float = Field(description="EIH threshold (%) that defined the training labels")


class Probabilities(BaseModel):
    hypoalgesia: float
    no_change: float
    hyperalgesia: float


class TopContribution(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    field: str = Field(description="contract field, or a derived feature computed from modality, intensity and duration "
                       "(exercise_dose_vs_threshold: the protocol's dose relative to the published EIH threshold, 0-1; "
                       "exercise_load: its load relative to the modality's heaviest, 0-1)")
    value: float | int | str | None = Field(description="the value as given in the request (null: not measured); "
                                            "for a derived feature, its computed value")
    contribution: float = Field(description="effect on the log-odds of `toward` relative to the other outcomes")
    toward: Response = Field(description="the outcome this field pushes toward")
    statement: str = Field(description="the same in clinical words")


class Prediction(BaseModel):
    subject_id: str
    probabilities: Probabilities
    predicted_response: Response = Field(description="the most probable outcome")
    hyperalgesia_risk: Literal["low", "moderate", "high"] = Field(
        description="P(hyperalgesia) below the model's `moderate` cut-off: low; from it: moderate; from `high`: high "
        "(cut-offs in GET /metadata; 0.20 and 0.35 by default)")
    expected_change_pct: float | None = Field(None, description="the expected change of the pressure pain threshold "
                                              "after the bout, % (positive = less pain sensitivity)")
    change_sd_pct: float | None = Field(None, description="the spread (SD) of the measured change around the expected "
                                        "one for this person and protocol, %-points")
    change_interval_pct: dict[Literal["80", "90"], tuple[float, float]] | None = Field(
        None, description='prediction intervals of the measured change, %: {"80": [low, high], "90": [low, high]}; '
        "8 (9) in 10 people like this one, given this protocol, change within them (conformal, by pain condition)")
    top_contributions: list[TopContribution]
    missing_inputs: list[str] = Field(description="optional predictors not given (the model handles them natively)")
    warnings: list[str] = Field(description="values outside the range the model saw in training")


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model: ModelInfo
    predictions: list[Prediction]


class RecordExplanation(BaseModel):
    subject_id: str
    margins: dict[str, float] = Field(description="model margin (log-odds scale) per output")
    base_values: dict[str, float] = Field(description="expected margin per output (the explanation's starting point)")
    contributions: dict[str, dict[str, float]] = Field(
        description="exact TreeSHAP contribution per output, for every contract predictor and the model's derived "
        "features; base value + sum = margin")


class ExplainResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model: ModelInfo
    explanations: list[RecordExplanation]


class ServedModel(ModelInfo):
    uri: str
    run_id: str | None


class Metadata(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model: ServedModel
    service_contract_version: str
    outputs: list[str] = Field(description="the model's outputs: `eih_pct` (the expected change of the pain threshold, "
                               "%), `log_sd` (distributional model: the log of this person's spread of the measured "
                               "change around it, %-points) or the three class margins")
    link: str = Field(description="`normal_spread`, `ordinal_normal` or `softmax`: how the outputs become the class "
                      "probabilities")
    residual_sigma_pct: float | None = Field(None, description="ordinal model: one spread of the measured change around "
                                             "the expected one for everyone (%-points); null when the spread is "
                                             "per person (`log_sd`)")
    features: list[str]
    risk_cutoffs: dict[str, float]
    training_metrics: dict[str, float]
    model_shape: dict[str, float | int | str | None]
    trained_at: str | None


class Problem(BaseModel):
    index: int | None = Field(description="0-based position of the record in `records`")
    subject_id: str | None = Field(None, description="the record's subject_id, when it is itself valid")
    field: str | None
    problem: str = Field(description="what is wrong and the rule (never the value)")


class ErrorResponse(BaseModel):
    error: str
    n_problems: int | None = None
    problems: list[Problem] | None = None
    truncated: bool | None = None
