"""Which model columns one tree may combine: the interaction structure of the boosted model.

The response to a bout is modelled as the protocol modifying each person factor's effect:
every tree may split on the protocol (modality, intensity, duration and the derived
features computed from them) and on one person field, or on one of a few named groups of
person fields that are read together in clinic:

- a biomarker and the matrix it was assayed in (serum BDNF runs far above plasma BDNF);
- baseline PPT with sex and pain condition (its norms differ by both);
- CPM with pain condition (an impaired CPM means something else in chronic pain);
- the pain phenotype: condition, mechanism, painDETECT and CSI;
- condition with sex.

Why. Free trees spend splits on products of person fields (catastrophizing x age x IL-6)
that a cohort of a few thousand people cannot estimate and the literature does not describe;
with the structure, the same trees learn the dose-response of each factor with less noise
(benchmarks/model_bench.py measures both). The explanations stay exact: the model is still
one XGBoost booster. `interactions = "free"` in the training configuration lifts it.
"""

from __future__ import annotations

from collections.abc import Sequence

from features.derived import DERIVED, PROTOCOL_FIELDS, of_protocol

READ_TOGETHER: tuple[tuple[str, ...], ...] = (
    ("bdnf_ng_ml", "bdnf_matrix"),
    ("ppt_baseline_kpa", "pain_condition", "sex"),
    ("cpm_pct", "pain_condition"),
    ("pain_condition", "pain_mechanism", "paindetect_score", "csi_score"),
    ("pain_condition", "sex"),
)
"""Groups of person fields a tree may combine (besides the protocol)."""

PERSON_X_PROTOCOL = "person_x_protocol"
FREE = "free"
STRUCTURES = (PERSON_X_PROTOCOL, FREE)


def protocol_columns(columns: Sequence[str]) -> list[str]:
    """The columns that describe the protocol: its fields and the derived features read only from them."""
    return [c for c in columns if c in PROTOCOL_FIELDS or (c in DERIVED and of_protocol(c))]


def groups(columns: Sequence[str]) -> list[list[str]]:
    """XGBoost's `interaction_constraints` (by column name) for the model columns `columns`:
    each person column with the protocol, and each `READ_TOGETHER` group (its columns present)
    with the protocol. Every column appears in at least one group."""
    protocol = protocol_columns(columns)
    person = [c for c in columns if c not in protocol]
    out = [[c, *protocol] for c in person]
    for g in READ_TOGETHER:
        present = [c for c in g if c in person]
        if len(present) > 1:
            out.append([*present, *protocol])
    return out if person else [list(protocol)]
