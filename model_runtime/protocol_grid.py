"""The grid of exercise protocols a prescription compares, its vectorized scoring
(`GridScorer`), which models may prescribe, and the pooled ranking score.

The grid (its table and sources: serving/recommend.py) is every modality x intensity x
duration over each modality's sensible range. Training scores it to estimate the pooling
below, serving to rank; so it lives in the runtime.

Pooling. A model's benefit B(person, protocol) = P(hypoalgesia) - P(hyperalgesia) varies
between protocols for two reasons: what the protocol does for people of this pain condition
(the condition's profile over the grid), and what it does for this person beyond that (the
personal deviation). The personal deviations of a tree model are mostly estimation noise:
argmax over 312 protocols then picks noise (the optimizer's curse). The ranking score keeps
the person's own level and the condition's profile and shrinks the personal deviation by
the factor `shrinkage`, estimated at training time without outcomes or the truth: two
models fitted on the two halves of the training split give each person's deviations twice,
their covariance is the part both halves agree on (signal), the rest is noise, and the
factor is signal / (signal + the noise of a model fitted on all of the data) (empirical
Bayes, as in shrinking a reliability-weighted score).

    score = level(person) + profile(condition) + shrinkage x deviation(person)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from data_contracts.fields import BY_NAME, RESPONSES
from features.derived import DERIVED, PROTOCOL_FIELDS, of_protocol

MODALITIES: tuple[str, ...] = BY_NAME["exercise_modality"].categories
PROTOCOL_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # modality: ((intensity low, high), (duration low, high)), from simulation/params.py
    "aerobic": ((45, 95), (5, 45)),
    "isometric": ((20, 80), (1, 10)),
    "dynamic_resistance": ((30, 85), (5, 30)),
    "hiit": ((80, 100), (10, 30)),
    "mind_body": ((35, 65), (10, 60)),
}
INTENSITY_STEP = 5.0
DURATION_STEP = 5.0
HYPO, NO_CHANGE, HYPER = (RESPONSES.index(r) for r in ("hypoalgesia", "no_change", "hyperalgesia"))


class PrescriptionRefused(ValueError):
    """The model cannot choose a protocol (it reads an after-bout field, or no protocol)."""


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


def steps(lo: float, hi: float, step: float) -> np.ndarray:
    """`lo`, then every multiple of `step` above it up to `hi`."""
    first = np.ceil(lo / step) * step
    vals = np.arange(first, hi + 1e-9, step)
    return np.unique(np.concatenate([[float(lo)], vals]))


@dataclass(frozen=True)
class Grid:
    """The protocols scored for every person, in grid order."""

    modality: np.ndarray  # (G,) modality names
    intensity: np.ndarray  # (G,) %
    duration: np.ndarray  # (G,) minutes

    def __len__(self) -> int:
        return len(self.modality)

    def codes(self) -> np.ndarray:
        """Each protocol's modality as its position in the contract's category list."""
        return np.asarray([MODALITIES.index(m) for m in self.modality], dtype="float64")

    def protocol(self, g: int) -> dict:
        """Protocol `g` as contract fields."""
        return {"exercise_modality": str(self.modality[g]), "exercise_intensity_pct": float(self.intensity[g]),
                "exercise_duration_min": float(self.duration[g])}

    def keys(self) -> list[str]:
        """Each protocol's key in a pooling profile."""
        return [protocol_key(m, i, d) for m, i, d in zip(self.modality, self.intensity, self.duration, strict=True)]


def protocol_key(modality: str, intensity: float, duration: float) -> str:
    """"modality|intensity|duration", the key of a protocol in a pooling profile."""
    return f"{modality}|{float(intensity):g}|{float(duration):g}"


def default_grid(modalities: tuple[str, ...] | None = None) -> Grid:
    """The grid of serving/recommend.py's table (only `modalities` when given)."""
    mods, ints, durs = [], [], []
    for m in MODALITIES:
        if modalities is not None and m not in modalities:
            continue
        (ilo, ihi), (dlo, dhi) = PROTOCOL_RANGES[m]
        for i in steps(ilo, ihi, INTENSITY_STEP):
            for d in steps(dlo, dhi, DURATION_STEP):
                mods.append(m)
                ints.append(i)
                durs.append(d)
    return Grid(np.asarray(mods, dtype=object), np.asarray(ints, dtype="float64"), np.asarray(durs, dtype="float64"))


# ---- pooling -------------------------------------------------------------------------------
def condition_profiles(b: np.ndarray, conditions: Sequence[str]) -> dict[str, np.ndarray]:
    """{condition: (G,) mean benefit over its people} of a (people, G) benefit matrix."""
    c = np.asarray(conditions, dtype=object)
    return {str(k): b[c == k].mean(axis=0) for k in sorted(set(c))}


def deviations(b: np.ndarray, conditions: Sequence[str]) -> np.ndarray:
    """Each person's benefit over the grid minus their own mean, minus their condition's
    profile (centred the same way): the personal part of the model's protocol differences."""
    d = b - b.mean(axis=1, keepdims=True)
    c = np.asarray(conditions, dtype=object)
    for k in set(c):
        m = c == k
        d[m] -= d[m].mean(axis=0)
    return d


def shrinkage(dev_a: np.ndarray, dev_b: np.ndarray) -> float:
    """The factor for a model fitted on all the data, from the deviations of two models fitted
    on its two halves: signal = their covariance; a half's noise = its variance - signal; a
    model on twice the data has half that noise. Clipped to [0, 1]."""
    signal = float(np.mean(dev_a * dev_b))
    half_noise = max(float(np.mean(dev_a * dev_a) + np.mean(dev_b * dev_b)) / 2 - signal, 0.0)
    if signal <= 0:
        return 0.0
    return float(min(1.0, signal / (signal + half_noise / 2)))


def profiles_over(pooling: Mapping | None, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """{condition: (G,) its profile over the protocols `keys`, centred}, for the conditions
    whose profile covers every key ({} without pooling)."""
    if not pooling:
        return {}
    out = {}
    for name, profile in pooling["profiles"].items():
        if all(k in profile for k in keys):
            prof = np.asarray([profile[k] for k in keys], dtype="float64")
            out[name] = prof - prof.mean()
    return out


def pooled_scores(b: np.ndarray, conditions: Sequence[str | None], lam: float,
                  profiles: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ranking score (people, G) of benefits `b` (module docstring), with the factor `lam`
    and the centred profiles of `profiles_over`. A person whose condition has no profile keeps
    the model's own benefit."""
    if not profiles:
        return b
    out = b.copy()
    level = b.mean(axis=1)
    cond = np.asarray([c if c is not None else "" for c in conditions], dtype=object)
    for name, prof in profiles.items():
        rows = np.flatnonzero(cond == name)
        if len(rows):
            out[rows] = level[rows, None] + prof[None, :] + lam * (b[rows] - level[rows, None] - prof[None, :])
    return out


# ---- scoring the grid ------------------------------------------------------------------------
FEW_PEOPLE = 16
"""Up to this many people (an HTTP request's batch) the grid is read from the explanation
tables; more (a cohort, training) go through XGBoost's `inplace_predict`."""


class GridScorer:
    """Scores a grid of protocols for many people with one model (`EIHPredictor`).

    Two ways to the same margins. Many people: each person's row repeated once per protocol,
    one `inplace_predict` per booster. A few people, when the model has explanation tables
    (`model_runtime.shap_tables`): a tree's cell index is a sum of one term per column it
    splits on, so the protocol columns' part of every tree's cell is computed once per grid
    and the person's part once per person; the margins are the tables' leaf values of the
    sum (float64 sums of XGBoost's float32 values: equal to `inplace_predict` within ~1e-4 of
    a margin for thousands of trees). With the service's one XGBoost thread per request, this
    reads a person's 312 protocols about 3 times faster than `inplace_predict`.
    """

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
        self._per_row = [j for j in self.derived_cols if not of_protocol(p.fields[j])]
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

    @cached_property
    def _grid_cells(self) -> list[tuple[object, np.ndarray, np.ndarray]] | None:
        """Per booster: its tables, the (tree, column) pairs of the person columns, and the
        protocol columns' part (G, T) of every tree's cell at every grid protocol, as offsets
        into the tables (`cell_offsets`: a person's part is then one addition away). Built on
        the first few-people call (a cohort or a training scorer never pays for the tables);
        None when the model has no tables or a derived feature reads person fields."""
        p = self.predictor
        if self._per_row or p.additive or (tables := p.all_tables()) is None:
            return None
        one = np.full((len(self.grid), len(p.fields)), np.nan)
        one[:, self.cols] = self.values
        person_cols = [j for j in range(len(p.fields)) if j not in self.cols]
        return [(t, t.pairs_of(person_cols), t.cell_offsets(t.partial_cells(one, t.pairs_of(self.cols))))
                for t in tables]

    def _table_margins(self, X: np.ndarray) -> np.ndarray:
        """(n * G, K) raw margins of a few people at every grid protocol, from the tables."""
        parts = []
        for t, person_pairs, grid_at in self._grid_cells:
            person = t.partial_cells(X, person_pairs).astype(np.int32)  # (n, T)
            parts.append(t.margins_at(person[:, None, :] + grid_at[None]).reshape(len(X) * len(self.grid), -1))
        return np.hstack(parts)

    def matrix(self, X: np.ndarray, grid_idx: np.ndarray | None = None) -> np.ndarray:
        """(n * G', F) model matrix: each person's row once per grid protocol (all, or `grid_idx`)."""
        vals = self.values if grid_idx is None else self.values[grid_idx]
        G = len(vals)
        M = np.repeat(X, G, axis=0)
        M[:, self.cols] = np.tile(vals, (len(X), 1))
        for j in self._per_row:
            self._derive(M, j)
        return M

    def margins(self, M: np.ndarray) -> np.ndarray:
        """Calibrated margins (rows, K) of a model matrix, one `inplace_predict` per booster."""
        p = self.predictor
        return p.meta.calibration.apply(p.raw_margins_matrix(M))

    def score_margins(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, G, 3) class probabilities and (n, G, K) calibrated margins of every person
        (model-matrix rows `X`) at every grid protocol."""
        if len(X) <= FEW_PEOPLE and self._grid_cells is not None:
            m = self.predictor.meta.calibration.apply(self._table_margins(X))
        else:
            m = self.margins(self.matrix(X))
        return self.predictor.proba(m).reshape(len(X), len(self.grid), 3), m.reshape(len(X), len(self.grid), -1)

    def score(self, X: np.ndarray) -> np.ndarray:
        """(n, G, 3) class probabilities of every person (model-matrix rows `X`) at every grid protocol."""
        return self.score_margins(X)[0]

    def ranking_score(self, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        """(n, G) what protocols are ranked by: the benefit pooled toward the person's pain
        condition by the model's `pooling` (module docstring); the model's own benefit for a
        model trained without it."""
        return pooled_scores(benefit(P), self.predictor.condition_names(X), self.shrinkage, self.profiles)


def benefit(P: np.ndarray) -> np.ndarray:
    """Expected benefit P(hypoalgesia) - P(hyperalgesia) of probabilities (..., 3)."""
    return P[..., HYPO] - P[..., HYPER]
