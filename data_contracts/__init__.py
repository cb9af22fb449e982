"""The cohort data contract, version 1.0 (docs/contract-v1.md).

`fields.FIELDS` is the single definition of every field; the pandera schema
(`schema.py`), the pydantic record model of the HTTP API (`record.py`) and every column
list elsewhere are generated from it. `validate_frame` is the one rule engine.
"""

from data_contracts.fields import (
    CONTRACT_MAJOR,
    CONTRACT_VERSION,
    DEFAULT_THRESHOLD_PCT,
    FIELDS,
    OPTIONAL_PREDICTORS,
    PREDICTORS,
    REQUIRED,
    RESPONSES,
)
from data_contracts.labels import eih_pct, response_codes, response_labels
from data_contracts.validate import ContractFileError, ValidationReport, typed, validate_frame

__all__ = [
    "CONTRACT_MAJOR",
    "CONTRACT_VERSION",
    "DEFAULT_THRESHOLD_PCT",
    "FIELDS",
    "OPTIONAL_PREDICTORS",
    "PREDICTORS",
    "REQUIRED",
    "RESPONSES",
    "ContractFileError",
    "ValidationReport",
    "eih_pct",
    "response_codes",
    "response_labels",
    "typed",
    "validate_frame",
]
