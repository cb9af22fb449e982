"""The exact oracle: P(hypoalgesia, no change, hyperalgesia | the recorded predictors).

Given the required fields, the pain mechanism m and the observed optional values, the
latent traits F are Gaussian (conjugate update of a two-factor model), every missing z_k
is Gaussian given F, and eih_pct is linear in F and z plus Gaussian noise: the predictive
distribution of eih_pct is exactly normal. With the mechanism unrecorded it is an exact
mixture over the mechanisms, weighted by P(m | condition) times the likelihood of the
observed optional values under m. Class probabilities are differences of normal CDFs:
nothing is estimated by resampling.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy.special import ndtr

from data_contracts.fields import BY_NAME, DEFAULT_THRESHOLD_PCT
from simulation import model as M
from simulation import params as P
from simulation.sites import REFERENCE, SiteEffect, measurement, profile, profile_weights
from simulation.world import World
from simulation.world import world as world_of

_REQUIRED_NUMERIC = {
    "age": "age_years",
    "nrs": "pain_intensity_nrs",
    "ppt": "ppt_baseline_kpa",
    "cpm": "cpm_pct",
    "pcs": "pcs_total",
    "tsk": "tsk17_total",
    "pseq": "pseq_total",
    "inten": "exercise_intensity_pct",
    "dur": "exercise_duration_min",
}
_REQUIRED_CATEGORY = {"cond": "pain_condition", "sex": "sex", "mod": "exercise_modality"}


def category_codes(df: pd.DataFrame, name: str) -> np.ndarray:
    """Contract category codes of one column (-1 = missing or unknown)."""
    cats = list(BY_NAME[name].categories)
    if name not in df.columns:
        return np.full(len(df), -1, dtype=np.int8)
    col = df[name]
    if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == cats:
        return col.cat.codes.to_numpy().astype(np.int8)
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("string").str.strip()
    return pd.Categorical(col, categories=cats).codes.astype(np.int8)


def _numbers(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    col = df[name]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        col = pd.to_numeric(col.astype("string"), errors="coerce")
    return col.to_numpy(dtype="float64", na_value=np.nan)


@dataclass
class Observed:
    """What a frame records, as arrays."""

    x: M.Required
    mech: np.ndarray  # mechanism code, -1 = missing
    matrix: np.ndarray  # BDNF matrix code, -1 = missing
    values: np.ndarray  # (n, K) optional numeric values, NaN = missing

    def __len__(self) -> int:
        return len(self.mech)

    def rows(self, start: int, stop: int) -> Observed:
        x = M.Required(**{f.name: getattr(self.x, f.name)[start:stop] for f in fields(M.Required)})
        return Observed(x=x, mech=self.mech[start:stop], matrix=self.matrix[start:stop], values=self.values[start:stop])


def observed_from_frame(df: pd.DataFrame) -> Observed:
    """Parse a contract frame. Raises ValueError naming a required field that is missing."""
    req = {}
    for key, name in _REQUIRED_CATEGORY.items():
        codes = category_codes(df, name)
        bad = int((codes < 0).sum())
        if bad:
            raise ValueError(f"{name}: missing or not one of {', '.join(BY_NAME[name].categories)} in {bad} row(s)")
        req[key] = codes
    for key, name in _REQUIRED_NUMERIC.items():
        v = _numbers(df, name)
        bad = int(np.isnan(v).sum())
        if bad:
            raise ValueError(f"{name}: required number missing in {bad} row(s)")
        req[key] = v
    if (req["ppt"] <= 0).any():
        raise ValueError("ppt_baseline_kpa: must be positive")
    values = np.column_stack([_numbers(df, name) for name in M.OPTIONAL_NUMERIC])
    return Observed(
        x=M.Required(**req),
        mech=category_codes(df, "pain_mechanism"),
        matrix=category_codes(df, "bdnf_matrix"),
        values=values,
    )


@dataclass
class Predictive:
    """eih_pct | observed predictors  ~  sum_m weights[:, m] * N(means[:, m], sd**2)."""

    weights: np.ndarray  # (n, n_mech)
    means: np.ndarray  # (n, n_mech)
    sd: np.ndarray  # (n,)

    def mean(self) -> np.ndarray:
        return (self.weights * self.means).sum(axis=1)

    def var(self) -> np.ndarray:
        m = self.mean()
        return self.sd**2 + (self.weights * self.means**2).sum(axis=1) - m**2

    def cdf(self, e: np.ndarray) -> np.ndarray:
        """P(eih_pct <= e) per row."""
        return (self.weights * ndtr((e[:, None] - self.means) / self.sd[:, None])).sum(axis=1)

    def class_probabilities(self, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> np.ndarray:
        """(n, 3) probabilities of hypoalgesia, no change, hyperalgesia at +-threshold_pct."""
        if not threshold_pct > 0:
            raise ValueError("threshold_pct must be a positive percentage")
        n = len(self.sd)
        out = np.empty((n, 3))
        # rows whose mechanism is known (or implied) have one component: no mixture sum
        top = self.weights.argmax(axis=1)
        single = self.weights[np.arange(n), top] == 1.0
        mean1 = self.means[np.arange(n), top]
        out[:, 0] = ndtr((mean1 - threshold_pct) / self.sd)
        out[:, 2] = ndtr((-threshold_pct - mean1) / self.sd)
        multi = ~single
        if multi.any():
            w, mu, sd = self.weights[multi], self.means[multi], self.sd[multi, None]
            out[multi, 0] = (w * ndtr((mu - threshold_pct) / sd)).sum(axis=1)
            out[multi, 2] = (w * ndtr((-threshold_pct - mu) / sd)).sum(axis=1)
        out[:, 1] = np.clip(1.0 - out[:, 0] - out[:, 2], 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One exact draw of eih_pct per row (mechanism component, then the normal)."""
        u = rng.random(len(self.sd))
        comp = (u[:, None] > np.cumsum(self.weights, axis=1)).sum(axis=1)
        comp = np.minimum(comp, self.weights.shape[1] - 1)
        mean = self.means[np.arange(len(comp)), comp]
        return mean + self.sd * rng.standard_normal(len(self.sd))


@dataclass
class Physiology:
    """phys | observed predictors ~ sum_m weights[:, m] N(means[:, m], var): the change the
    bout causes before any site effect (fade, response shift, measurement)."""

    weights: np.ndarray  # (n, n_mech)
    means: np.ndarray  # (n, n_mech)
    var: np.ndarray  # (n,)
    G: np.ndarray  # (n,) the protocol's dose gain (scales a site's response shift)
    cond: np.ndarray
    sex: np.ndarray
    ppt: np.ndarray  # recorded baseline
    dev: np.ndarray  # log recorded baseline minus its condition-and-sex median

    def at(self, site: SiteEffect, shift_var: float | np.ndarray = 0.0) -> Predictive:
        """eih_pct at a site with known effects; `shift_var` > 0 integrates an unknown
        response shift of that variance instead of site.shift."""
        n = len(self.var)
        f = np.broadcast_to(np.asarray(site.fade, dtype="float64"), (n,))
        shift = np.broadcast_to(np.asarray(site.shift, dtype="float64"), (n,))
        _, rtm, sd_meas = measurement(self.cond, self.dev, site)
        means = f[:, None] * (self.means + (shift * self.G)[:, None]) + rtm[:, None]
        var = f**2 * (self.var + shift_var * self.G**2) + sd_meas**2
        return Predictive(weights=self.weights, means=means, sd=np.sqrt(var))

    def new_site(self) -> NewSite:
        """eih_pct at a new site: a finite mixture over the site profiles (weighted by how
        likely the recorded baseline is under each algometer scale), each with an unknown
        response shift integrated exactly."""
        W = profile_weights(self.ppt, self.cond, self.sex)
        parts = [self.at(profile(q), P.SITE_RESPONSE_SD**2) for q in range(P.SITE_PROFILES)]
        return NewSite(profile_weights=W, parts=parts)


@dataclass
class NewSite:
    """eih_pct for a person at a new site: sum_q profile_weights[:, q] * parts[q]."""

    profile_weights: np.ndarray  # (n, n_profiles)
    parts: list[Predictive]

    def mean(self) -> np.ndarray:
        return sum(self.profile_weights[:, q] * p.mean() for q, p in enumerate(self.parts))

    def var(self) -> np.ndarray:
        m = self.mean()
        second = sum(self.profile_weights[:, q] * (p.var() + p.mean() ** 2) for q, p in enumerate(self.parts))
        return second - m**2

    def cdf(self, e: np.ndarray) -> np.ndarray:
        """P(eih_pct <= e) per row."""
        return sum(self.profile_weights[:, q] * p.cdf(e) for q, p in enumerate(self.parts))

    def class_probabilities(self, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> np.ndarray:
        """(n, 3) probabilities of hypoalgesia, no change, hyperalgesia at a new site."""
        out = sum(self.profile_weights[:, q, None] * p.class_probabilities(threshold_pct)
                  for q, p in enumerate(self.parts))
        return out / out.sum(axis=1, keepdims=True)


def physiology(obs: Observed, *, latent: np.ndarray | None = None, terms: M.Outcome | None = None,
               world: World | None = None) -> Physiology:
    """Exact law of the physiological change given what `obs` records (any site).

    `latent` (optional): the optional fields' latent z (NaN = missing), if already known;
    `terms`: `model.outcome_terms(obs.x, world)`, if already computed.
    """
    x = obs.x
    n = len(x)
    out = M.outcome_terms(x, world) if terms is None else terms
    Z = M.to_latent(obs.values, obs.matrix, out.lac_shift) if latent is None else latent
    seen = ~np.isnan(Z)
    obs_mask = seen.astype("float64")
    Zf = np.where(seen, Z, 0.0)

    muF = M.factor_means(x)
    c = M.indicator_intercepts(x)
    inv_psi2 = 1.0 / M.PSI**2
    lw = M.LOAD * inv_psi2[:, None]  # (K, 2)

    # posterior precision of F given the observed indicators (same for every mechanism)
    Si = M.SIGMA_F_INV
    P11 = Si[0, 0] + obs_mask @ (M.LOAD[:, 0] * lw[:, 0])
    P12 = Si[0, 1] + obs_mask @ (M.LOAD[:, 0] * lw[:, 1])
    P22 = Si[1, 1] + obs_mask @ (M.LOAD[:, 1] * lw[:, 1])
    det = P11 * P22 - P12**2
    V11, V12, V22 = P22 / det, -P12 / det, P11 / det

    # the outcome's coefficients on F after integrating the missing direct-effect latents
    e, lac = M.I_EXP, M.I_LAC
    miss_e, miss_l = ~seen[:, e], ~seen[:, lac]
    be = np.where(miss_e, out.beta_exp, 0.0)
    bl = np.where(miss_l, out.beta_lac, 0.0)
    w1 = out.w[:, 0] + be * M.LOAD[e, 0] + bl * M.LOAD[lac, 0]
    w2 = out.w[:, 1] + be * M.LOAD[e, 1] + bl * M.LOAD[lac, 1]
    var = (
        w1 * w1 * V11 + 2.0 * w1 * w2 * V12 + w2 * w2 * V22
        + be**2 * M.PSI[e] ** 2 + bl**2 * M.PSI[lac] ** 2
        + out.sigma**2
    )
    const = (
        out.b0
        + np.where(miss_e, out.beta_exp * c[:, e], out.beta_exp * Zf[:, e])
        + np.where(miss_l, out.beta_lac * c[:, lac], out.beta_lac * Zf[:, lac])
    )

    # residuals of the observed indicators for mechanism 'none'; a mechanism m shifts
    # them by obs_mask * shift_m, so its sufficient statistics are matrix-vector products
    R = (Zf - c - M.mm(muF, M.LOAD.T)) * obs_mask
    q1, q2 = R @ lw[:, 0], R @ lw[:, 1]
    n_mech = len(M.MECH)
    means = np.empty((n, n_mech))
    logw = np.empty((n, n_mech))
    mech_seen = obs.mech >= 0
    with np.errstate(divide="ignore"):
        logprior = np.log(M.MECH_PRIOR[x.cond])
    for m in range(n_mech):
        shift = M.LOAD[:, 0] * M.F1_MECH[m]
        shift[M.I_PD] += M.PD_MECH[m]
        if np.any(shift):
            q1m = q1 - obs_mask @ (shift * lw[:, 0])
            q2m = q2 - obs_mask @ (shift * lw[:, 1])
            # sum_k O_k (R_k - shift_k)^2 / psi_k^2, less the part common to every m
            quad = -2.0 * (R @ (shift * inv_psi2)) + obs_mask @ (shift**2 * inv_psi2)
        else:
            q1m, q2m, quad = q1, q2, 0.0
        mF1 = muF[:, 0] + M.F1_MECH[m] + V11 * q1m + V12 * q2m
        mF2 = muF[:, 1] + V12 * q1m + V22 * q2m
        means[:, m] = const + w1 * mF1 + w2 * mF2
        qVq = V11 * q1m * q1m + 2.0 * V12 * q1m * q2m + V22 * q2m * q2m
        ll = -0.5 * (quad - qVq)
        logw[:, m] = np.where(mech_seen, np.where(obs.mech == m, 0.0, -np.inf), logprior[:, m] + ll)
    logw -= logw.max(axis=1, keepdims=True)
    wts = np.exp(logw)
    wts /= wts.sum(axis=1, keepdims=True)
    dev = np.log(x.ppt) - M.ppt_log_median(x.cond, x.sex)
    return Physiology(weights=wts, means=means, var=var, G=out.G, cond=x.cond, sex=x.sex, ppt=x.ppt, dev=dev)


def predictive(obs: Observed, *, latent: np.ndarray | None = None, terms: M.Outcome | None = None,
               world: World | None = None, site: SiteEffect = REFERENCE) -> Predictive:
    """Exact predictive distribution of eih_pct given what `obs` records, at a known site
    (default: the reference site). Arguments as in `physiology`."""
    return physiology(obs, latent=latent, terms=terms, world=world).at(site)


def new_site(obs: Observed, *, latent: np.ndarray | None = None, terms: M.Outcome | None = None,
             world: World | None = None) -> NewSite:
    """Exact predictive distribution of eih_pct for a person at a new site (integrating
    the site prior). Arguments as in `physiology`."""
    return physiology(obs, latent=latent, terms=terms, world=world).new_site()


BLOCK = 8192
"""Rows per block of the oracle (bounded memory; the result does not depend on it)."""


def _site_rows(site: SiteEffect | None, start: int, stop: int) -> SiteEffect | None:
    if site is None:
        return None
    cut = {k: (v[start:stop] if np.ndim(v) else v) for k, v in vars(site).items()}
    return SiteEffect(**cut)


def class_probabilities(obs: Observed, threshold_pct: float = DEFAULT_THRESHOLD_PCT, *,
                        world: World | None = None, site: SiteEffect | None = None) -> np.ndarray:
    """Exact class probabilities (n, 3) of everything `obs` records, block by block: at a
    new site when `site` is None, else at that site (scalar or per-row effects)."""
    n = len(obs)
    out = np.empty((n, 3))
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        phys = physiology(obs.rows(start, stop), world=world)
        law = phys.new_site() if site is None else phys.at(_site_rows(site, start, stop))
        out[start:stop] = law.class_probabilities(threshold_pct)
    return out


def oracle_probabilities(df: pd.DataFrame, threshold_pct: float = DEFAULT_THRESHOLD_PCT, *,
                         world: int = 0, site: SiteEffect | None = None) -> np.ndarray:
    """True P(hypoalgesia, no_change, hyperalgesia) given the predictors in `df`.

    By default the truth for a person at a new site of world 0 (integrating over site
    effects: the oracle file's p_* columns); `site` (a `simulation.sites.SiteEffect`, e.g.
    `sites.REFERENCE`) gives the truth at a site with known effects (its p_site_* columns).
    Works for any contract-valid predictor frame (missing optional fields as NaN/None or
    absent columns). Columns in RESPONSES order; rows sum to 1.
    """
    if not threshold_pct > 0:
        raise ValueError("threshold_pct must be a positive percentage")
    return class_probabilities(observed_from_frame(df), threshold_pct, world=world_of(world), site=site)


def oracle_moments(df: pd.DataFrame, *, world: int = 0, site: SiteEffect | None = REFERENCE) -> tuple[np.ndarray, np.ndarray]:
    """E[eih_pct | predictors] and Var[eih_pct | predictors] (exact), at `site` (default
    the reference site; None = a new site)."""
    phys = physiology(observed_from_frame(df), world=world_of(world))
    law = phys.new_site() if site is None else phys.at(site)
    return law.mean(), law.var()
