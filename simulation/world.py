"""Simulated worlds: the parameters the literature leaves open, drawn from wide priors.

World 0 is the central world (every prior's centre). World w >= 1 draws each open
parameter from its prior (`params.WORLD_PRIORS`) with a stream fixed by w, so a world is
the same everywhere (simulator, oracle, report). Within a world the oracle is exact;
ignorance about a mean effect is uncertainty about the world, never bout-to-bout noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulation import model as M
from simulation import params as P


@dataclass(frozen=True)
class World:
    """Gains and load sensitivities by modality (contract order) and the sex effect on R."""

    index: int
    gain: np.ndarray
    load: np.ndarray
    r_male: float

    def open_parameters(self) -> dict[str, float]:
        """The drawn values of every open parameter, by readable name."""
        out = {}
        for kind, modality in P.WORLD_PRIORS:
            if modality is None:
                out[kind] = float(getattr(self, kind))
            else:
                out[f"{kind}_{modality}"] = float(getattr(self, kind)[M.MOD.index(modality)])
        return out


def check_world(w) -> int:
    """The world index as an int; ValueError unless it is a whole number >= 0."""
    if isinstance(w, bool) or int(w) != w or w < 0:
        raise ValueError("world must be a whole number of at least 0")
    return int(w)


@lru_cache(maxsize=64)
def world(w: int = 0) -> World:
    """World `w` (0 = central)."""
    w = check_world(w)
    gain, load = M.GAIN.copy(), M.LOADSENS.copy()
    r_male = float(P.R_COEF["male"])
    rng = np.random.default_rng([P.WORLD_SEED, w])
    for (kind, modality), (centre, sd, lo, hi) in P.WORLD_PRIORS.items():
        value = centre if w == 0 else float(np.clip(centre + sd * rng.standard_normal(), lo, hi))
        if kind == "r_male":
            r_male = value
        else:
            (gain if kind == "gain" else load)[M.MOD.index(modality)] = value
    gain.setflags(write=False)
    load.setflags(write=False)
    return World(index=w, gain=gain, load=load, r_male=r_male)
