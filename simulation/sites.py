"""Site effects: algometer and examiner (scale and noise of a PPT reading), the delay
between the bout and the post-bout reading (EIH fades over it), and a shift of the mean
response. The measurement layer of eih_pct lives here:

    eih_pct = fade * (phys + shift * G) - 100 * e_pre + 100 * e_post

where phys is the physiological change (model.Outcome), e_pre and e_post the log errors of
the two readings (SD = noise * SEM of the condition). Given the recorded baseline, e_pre has
mean k * dev (k = SEM^2 / Var(log PPT): regression to the mean) and SD sqrt(1 - k) * SEM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from simulation import model as M
from simulation import params as P

PPT_MIN, PPT_MAX = 55.0, 1950.0  # the simulator's clip of the recorded baseline


@dataclass(frozen=True)
class SiteEffect:
    """One site's effects; fields are scalars or per-row arrays."""

    log_scale: np.ndarray | float = 0.0
    noise: np.ndarray | float = 1.0
    delay_min: np.ndarray | float = P.REFERENCE_DELAY_MIN
    shift: np.ndarray | float = 0.0

    @property
    def fade(self):
        """Share of the EIH still present at the post-bout reading, relative to the reference delay."""
        return np.exp(-(np.asarray(self.delay_min, dtype="float64") - P.REFERENCE_DELAY_MIN) / P.EIH_FADE_MIN)


REFERENCE = SiteEffect()


def _latin_hypercube() -> np.ndarray:
    """(SITE_PROFILES, 3) profile points: log scale, noise, delay, one per stratum of each."""
    q = P.SITE_PROFILES
    rng = np.random.default_rng(P.SITE_PROFILE_SEED)
    cols = []
    for lo, hi in (P.SITE_LOG_SCALE, P.SITE_NOISE, P.SITE_DELAY_MIN):
        u = (rng.permutation(q) + 0.5) / q
        cols.append(lo + (hi - lo) * u)
    return np.column_stack(cols)


PROFILES = _latin_hypercube()


def profile(q: int, shift: float = 0.0) -> SiteEffect:
    """Site profile q of the finite site prior, with a given response shift."""
    ls, noise, delay = PROFILES[q]
    return SiteEffect(float(ls), float(noise), float(delay), float(shift))


def measurement(cond: np.ndarray, dev: np.ndarray, site: SiteEffect) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, mean of -100 e_pre + 100 e_post, its SD) given the recorded baseline.

    dev: log recorded baseline minus its condition-and-sex median (site units); the
    reading in reference units is the recorded one divided by exp(log_scale)."""
    sem = M.PPT_SEM[cond] * site.noise
    k = sem**2 / M.PPT_LOG_SD[cond] ** 2
    rtm = -100.0 * k * (dev - site.log_scale)
    sd = 100.0 * sem * np.sqrt(2.0 - k)
    return k, rtm, sd


def profile_weights(ppt: np.ndarray, cond: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """P(profile | recorded baseline) (n, SITE_PROFILES) under the uniform site prior.

    The recorded baseline is round(clip(reading * scale, 55, 1950)) of a lognormal reading,
    so its probability under each profile is a difference of normal CDFs (exact for every
    value the simulator writes; other values are first rounded and clipped)."""
    r = np.clip(np.round(ppt), PPT_MIN, PPT_MAX)
    med = M.ppt_log_median(cond, sex)
    sd = M.PPT_LOG_SD[cond]
    with np.errstate(divide="ignore"):
        lo_edge = np.where(r <= PPT_MIN, -np.inf, np.log(r - 0.5))
        hi_edge = np.where(r >= PPT_MAX, np.inf, np.log(r + 0.5))
    W = np.empty((len(r), P.SITE_PROFILES))
    for q in range(P.SITE_PROFILES):
        c = med + PROFILES[q, 0]
        a, b = (lo_edge - c) / sd, (hi_edge - c) / sd
        upper = a > 0  # both edges above the centre: subtract upper tails (no cancellation)
        W[:, q] = np.where(upper, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))
    W = np.maximum(W, 1e-300)
    return W / W.sum(axis=1, keepdims=True)
