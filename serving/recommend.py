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
columns (and the derived dose, computed once per grid protocol) differ, so a person's
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

from data_contracts.fields import BY_NAME, RESPONSES
from features.derived import DERIVED
from model_runtime.protocol_grid import (  # noqa: F401 - the grid's names are part of this module's interface
    DURATION_STEP,
    INTENSITY_STEP,
    MODALITIES,
    PROTOCOL_FIELDS,
    PROTOCOL_RANGES,
    Grid,
    default_grid,
    pooled_scores,
    profiles_over,
    steps,
)

PRIOR_MODALITIES = {
    "hiit": "HIIT has almost no acute EIH data: its predicted effect rests on priors, not on measurements",
    "mind_body": "mind-body exercise (yoga, tai chi) has almost no acute EIH data: its predicted effect rests on "
                 "priors, not on measurements",
}
HYPO, NO_CHANGE, HYPER = (RESPONSES.index(r) for r in ("hypoalgesia", "no_change", "hyperalgesia"))
PROTOCOLS_VALUES = ("randomized", "observational")
TIE_DECIMALS = 9


class PrescriptionRefused(ValueError):
    """The model cannot choose a protocol (it reads an after-bout field, or no protocol)."""


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


def check_prescribable(predictor) -> None:
    """Raise PrescriptionRefused unless the model reads no after-bout field and every protocol field."""
    after = [f for f in predictor.inputs if BY_NAME[f].measured == "after"]
    if after:
        raise PrescriptionRefused(
            f"this model reads {', '.join(after)}, measured after the bout, so it cannot choose a protocol "
            "(train a prescription model with the default configuration, use_after_bout_fields = false)")
    lacking = [f for f in PROTOCOL_FIELDS if f not in predictor.inputs]
    if lacking:
        raise PrescriptionRefused(f"this model does not read {', '.join(lacking)}, so it cannot compare protocols")


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


class GridScorer:
    """Scores a grid of protocols for many people with one model (`EIHPredictor`)."""

    def __init__(self, predictor, grid: Grid | None = None):
        check_prescribable(predictor)
        self.predictor = p = predictor
        self.grid = grid if grid is not None else default_grid()
        pos = {f: j for j, f in enumerate(p.fields)}
        self.proto_cols = [pos[f] for f in PROTOCOL_FIELDS]
        one = np.full((len(self.grid), len(p.fields)), np.nan)
        one[:, self.proto_cols[0]] = self.grid.codes()
        one[:, self.proto_cols[1]] = self.grid.intensity
        one[:, self.proto_cols[2]] = self.grid.duration
        self._pos = pos
        self.derived_cols = list(range(len(p.inputs), len(p.fields)))
        # a derived feature of the protocol alone is computed once per grid protocol; one that
        # also reads person fields is computed on every row of the repeated matrix
        self._per_row = [j for j in self.derived_cols if not set(DERIVED[p.fields[j]].inputs) <= set(PROTOCOL_FIELDS)]
        for j in self.derived_cols:
            self._derive(one, j)
        self.cols = self.proto_cols + [j for j in self.derived_cols if j not in self._per_row]
        self.values = one[:, self.cols]  # (G, protocol + derived columns)
        pooling = p.meta.extra.get("pooling") or {}
        self.shrinkage = float(pooling.get("shrinkage", 1.0))
        self.profiles = profiles_over(pooling, self.grid.keys())  # centred once per grid, not per request

    def _derive(self, M: np.ndarray, j: int) -> None:
        spec = DERIVED[self.predictor.fields[j]]
        M[:, j] = spec.compute({f: M[:, self._pos[f]] for f in spec.inputs})

    def matrix(self, X: np.ndarray, grid_idx: np.ndarray | None = None) -> np.ndarray:
        """(n * G', F) model matrix: each person's row once per grid protocol (all, or `grid_idx`)."""
        vals = self.values if grid_idx is None else self.values[grid_idx]
        G = len(vals)
        M = np.repeat(X, G, axis=0)
        M[:, self.cols] = np.tile(vals, (len(X), 1))
        for j in self._per_row:
            self._derive(M, j)
        return M

    def rows_matrix(self, X: np.ndarray, grid_idx: np.ndarray) -> np.ndarray:
        """Model-matrix rows `X`, row i at grid protocol `grid_idx[i]`."""
        M = X.copy()
        M[:, self.cols] = self.values[grid_idx]
        for j in self._per_row:
            self._derive(M, j)
        return M

    def margins(self, M: np.ndarray) -> np.ndarray:
        """Calibrated margins (rows, K) of a model matrix, one `inplace_predict` per booster."""
        p = self.predictor
        raw = [np.asarray(b.inplace_predict(M, predict_type="margin", validate_features=False)).reshape(len(M), -1)
               for b in p.boosters]
        return p.meta.calibration.apply(np.hstack(raw))

    def score(self, X: np.ndarray) -> np.ndarray:
        """(n, G, 3) class probabilities of every person (model-matrix rows `X`) at every grid protocol."""
        M = self.matrix(X)
        P = self.predictor.proba(self.margins(M))
        return P.reshape(len(X), len(self.grid), 3)

    def conditions(self, X: np.ndarray) -> list[str | None]:
        """Each model-matrix row's pain condition by name (None when missing)."""
        p = self.predictor
        if "pain_condition" not in p.fields:
            return [None] * len(X)
        names = p.builder.categories["pain_condition"]
        return [names[int(c)] if c == c else None for c in X[:, p.fields.index("pain_condition")]]

    def ranking_score(self, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        """(n, G) what protocols are ranked by: the benefit pooled toward the person's pain
        condition by the model's `pooling` (model_runtime/protocol_grid.py); the model's own
        benefit for a model trained without it."""
        return pooled_scores(benefit(P), self.conditions(X), self.shrinkage, self.profiles)


def benefit(P: np.ndarray) -> np.ndarray:
    """Expected benefit P(hypoalgesia) - P(hyperalgesia) of probabilities (..., 3)."""
    return P[..., HYPO] - P[..., HYPER]


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
