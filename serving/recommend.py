"""Exercise prescription: score a grid of protocols for each person in one vectorized call
and rank them by expected benefit = P(hypoalgesia) - P(hyperalgesia).

The grid. Every allowed modality x intensity x duration over each modality's sensible
range, the ranges over which protocols are assigned in the simulator that trains and
checks the models (simulation/params.py, INTENSITY_RANGE and DURATION_RANGE; this layer
may not import the simulator, so the numbers are copied here and
tests/test_recommend.py asserts that the copies agree), all inside the contract's ranges
(intensity 10-100 %, duration 1-120 min); the grid itself is data of the model runtime
(`model_runtime/protocol_grid.py`), which training also reads:

| modality | intensity (unit) | duration (min) | protocols |
|---|---|---|---|
| aerobic | 45-95 % HRmax | 5-45 | 11 x 9 = 99 |
| isometric | 20-80 % MVC | 1-10 | 13 x 3 = 39 |
| dynamic resistance | 30-85 % 1RM | 5-30 | 12 x 6 = 72 |
| HIIT | 80-100 % HRmax | 10-30 | 5 x 5 = 25 |
| mind-body | 35-65 % HRmax | 10-60 | 7 x 11 = 77 |

Intensity in 5-point steps and duration in 5-minute steps, each starting at the range's
low end when that is not a multiple of 5 (isometric holds: 1, 5, 10 min): 312 protocols.
Outside these ranges a model trained on such data extrapolates.

Scoring. A person's model-matrix row is repeated once per protocol and only the protocol
columns (and the derived dose and load, computed once per grid protocol) differ, so a person's
whole grid is one `inplace_predict` per booster. Ranking is by the pooled benefit
(`model_runtime/protocol_grid.py`: the person's own level and their pain condition's
profile over the grid, plus their personal deviation shrunk by the factor estimated in
training), then by lower P(hyperalgesia), then by grid order (lower intensity, shorter bout
first). The probabilities and benefit reported for a protocol are the model's own.

Constraints: modalities, a maximum intensity and duration (on the protocol), and a ceiling
on the predicted P(hyperalgesia) (on the person and protocol). A protocol outside them is
never returned.

Warnings: a modality whose effect on EIH rests on priors (HIIT and mind-body have almost
no acute EIH data, docs/science.md), and values outside the range the model saw in
training (an extrapolation).

Which models may prescribe: only a model that reads no field measured after the bout
(`Field.measured`), and that reads the three protocol fields. Whether its differences
between protocols are causal depends on how protocols were assigned in its training data
(`protocols` in the model's metadata, set by `eih train --protocols`): see `causal_note`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_runtime.protocol_grid import (  # noqa: F401 - the grid's names are part of this module's interface
    DURATION_STEP,
    HYPER,
    HYPO,
    INTENSITY_STEP,
    MODALITIES,
    NO_CHANGE,
    PROTOCOL_FIELDS,
    PROTOCOL_RANGES,
    Grid,
    GridScorer,
    PrescriptionRefused,
    benefit,
    check_prescribable,
    default_grid,
    steps,
)

PRIOR_MODALITIES = {
    "hiit": "HIIT has almost no acute EIH data: its predicted effect rests on priors, not on measurements",
    "mind_body": "mind-body exercise (yoga, tai chi) has almost no acute EIH data: its predicted effect rests on "
                 "priors, not on measurements",
}
PROTOCOLS_VALUES = ("randomized", "observational")
TIE_DECIMALS = 9


@dataclass(frozen=True)
class Constraints:
    """Limits a recommended protocol must keep (None: no limit)."""

    modalities: tuple[str, ...] | None = None
    max_intensity: float | None = None
    max_duration: float | None = None
    max_hyperalgesia: float | None = None

    def __post_init__(self) -> None:
        if self.modalities is not None:
            unknown = [m for m in self.modalities if m not in MODALITIES]
            if unknown or not self.modalities:
                raise ValueError(f"modalities must be a non-empty list of {', '.join(MODALITIES)}")
        for name, lo, hi in (("max_intensity", 0, 100), ("max_duration", 0, 120), ("max_hyperalgesia", 0, 1)):
            v = getattr(self, name)
            if v is not None and not (lo <= float(v) <= hi):
                raise ValueError(f"{name} must be a number from {lo} to {hi}")

    def protocol_mask(self, grid: Grid) -> np.ndarray:
        """(G,) which grid protocols keep the modality, intensity and duration limits."""
        ok = np.ones(len(grid), dtype=bool)
        if self.modalities is not None:
            ok &= np.isin(grid.modality, list(self.modalities))
        if self.max_intensity is not None:
            ok &= grid.intensity <= float(self.max_intensity)
        if self.max_duration is not None:
            ok &= grid.duration <= float(self.max_duration)
        return ok

    def mask(self, grid: Grid, p_hyper: np.ndarray) -> np.ndarray:
        """(n, G) which protocols keep every limit for each person (`p_hyper` (n, G))."""
        ok = np.broadcast_to(self.protocol_mask(grid), p_hyper.shape)
        if self.max_hyperalgesia is not None:
            ok = ok & (p_hyper <= float(self.max_hyperalgesia))
        return ok

    def as_dict(self) -> dict:
        """The limits in force (JSON-ready; None for no limit)."""
        return {"modalities": list(self.modalities) if self.modalities is not None else None,
                "max_intensity": self.max_intensity, "max_duration": self.max_duration,
                "max_hyperalgesia": self.max_hyperalgesia}


def protocols_of(meta) -> str:
    """How protocols were assigned in the model's training data: randomized, observational or unknown."""
    v = meta.extra.get("protocols")
    return v if v in PROTOCOLS_VALUES else "unknown"


def causal_note(protocols: str) -> str:
    """What the ranking means, given how the training data's protocols were assigned."""
    if protocols == "randomized":
        return ("Causal reading supported: in this model's training data protocols were assigned independently of "
                "the person (randomized), so differences between protocols estimate what the protocol does for "
                "people like this one, within the protocols and people the data covered.")
    how = "were observed, not assigned at random" if protocols == "observational" else "were assigned in an unrecorded way"
    return (f"Not a causal recommendation: in this model's training data protocols {how}, so differences between "
            "protocols may reflect who received which protocol rather than what the protocol does. Treat the ranking "
            "as a hypothesis to test (a model trained on randomized or crossover data can answer it).")


def rank(P: np.ndarray, allowed: np.ndarray, top: int | None, score: np.ndarray | None = None) -> list[np.ndarray]:
    """Per person, the allowed grid positions best first (at most `top`; None: all allowed).

    Order: higher ranking score (`GridScorer.ranking_score`; default the benefit), then lower
    P(hyperalgesia), then grid order (lower intensity, shorter bout), comparing to
    `TIE_DECIMALS` decimals so that float rounding never decides between protocols the model
    scores alike."""
    b = np.round(benefit(P) if score is None else score, TIE_DECIMALS)
    hyper = np.round(P[..., HYPER], TIE_DECIMALS)
    out = []
    for i in range(len(b)):
        idx = np.flatnonzero(allowed[i])
        if len(idx):
            order = np.lexsort((idx, hyper[i, idx], -b[i, idx]))
            idx = idx[order]
        out.append(idx if top is None else idx[:top])
    return out
