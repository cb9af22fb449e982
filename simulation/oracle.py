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

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from data_contracts.fields import BY_NAME, DEFAULT_THRESHOLD_PCT
from simulation import model as M

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

    def class_probabilities(self, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> np.ndarray:
        if not threshold_pct > 0:
            raise ValueError("threshold_pct must be a positive percentage")
        sd = self.sd[:, None]
        hypo = ndtr((self.means - threshold_pct) / sd)
        hyper = ndtr((-threshold_pct - self.means) / sd)
        out = np.empty((len(self.sd), 3))
        out[:, 0] = (self.weights * hypo).sum(axis=1)
        out[:, 2] = (self.weights * hyper).sum(axis=1)
        out[:, 1] = np.clip(1.0 - out[:, 0] - out[:, 2], 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One exact draw of eih_pct per row (mechanism component, then the normal)."""
        u = rng.random(len(self.sd))
        comp = (u[:, None] > np.cumsum(self.weights, axis=1)).sum(axis=1)
        comp = np.minimum(comp, self.weights.shape[1] - 1)
        mean = self.means[np.arange(len(comp)), comp]
        return mean + self.sd * rng.standard_normal(len(self.sd))


def predictive(obs: Observed, *, latent: np.ndarray | None = None) -> Predictive:
    """Exact predictive distribution of eih_pct given what `obs` records.

    `latent` (optional): the optional fields' latent z (NaN = missing), if already known.
    """
    x = obs.x
    n = len(x)
    out = M.outcome_terms(x)
    Z = M.to_latent(obs.values, obs.matrix, out.lac_shift) if latent is None else latent
    seen = ~np.isnan(Z)
    O = seen.astype("float64")
    Zf = np.where(seen, Z, 0.0)

    muF = M.factor_means(x)
    c = M.indicator_intercepts(x)
    inv_psi2 = 1.0 / M.PSI**2
    lw = M.LOAD * inv_psi2[:, None]  # (K, 2)

    # posterior precision of F given the observed indicators (same for every mechanism)
    Si = M.SIGMA_F_INV
    P11 = Si[0, 0] + O @ (M.LOAD[:, 0] * lw[:, 0])
    P12 = Si[0, 1] + O @ (M.LOAD[:, 0] * lw[:, 1])
    P22 = Si[1, 1] + O @ (M.LOAD[:, 1] * lw[:, 1])
    det = P11 * P22 - P12**2
    V11, V12, V22 = P22 / det, -P12 / det, P11 / det

    # the outcome's coefficients on F after integrating the missing direct-effect latents
    e, l = M.I_EXP, M.I_LAC
    miss_e, miss_l = ~seen[:, e], ~seen[:, l]
    be = np.where(miss_e, out.beta_exp, 0.0)
    bl = np.where(miss_l, out.beta_lac, 0.0)
    w1 = out.w[:, 0] + be * M.LOAD[e, 0] + bl * M.LOAD[l, 0]
    w2 = out.w[:, 1] + be * M.LOAD[e, 1] + bl * M.LOAD[l, 1]
    var = (
        w1 * w1 * V11 + 2.0 * w1 * w2 * V12 + w2 * w2 * V22
        + be**2 * M.PSI[e] ** 2 + bl**2 * M.PSI[l] ** 2
        + out.sigma**2
    )
    const = (
        out.b0
        + np.where(miss_e, out.beta_exp * c[:, e], out.beta_exp * Zf[:, e])
        + np.where(miss_l, out.beta_lac * c[:, l], out.beta_lac * Zf[:, l])
    )

    # residuals of the observed indicators for mechanism 'none'
    R = (Zf - c - muF @ M.LOAD.T) * O
    n_mech = len(M.MECH)
    means = np.empty((n, n_mech))
    logw = np.empty((n, n_mech))
    mech_seen = obs.mech >= 0
    prior = M.MECH_PRIOR[x.cond]
    need_ll = ~mech_seen & ((prior > 0).sum(axis=1) > 1)
    for m in range(n_mech):
        shift = M.LOAD[:, 0] * M.F1_MECH[m]
        shift[M.I_PD] += M.PD_MECH[m]
        Rm = R - O * shift
        q1 = Rm @ lw[:, 0]
        q2 = Rm @ lw[:, 1]
        mF1 = muF[:, 0] + M.F1_MECH[m] + V11 * q1 + V12 * q2
        mF2 = muF[:, 1] + V12 * q1 + V22 * q2
        means[:, m] = const + w1 * mF1 + w2 * mF2
        with np.errstate(divide="ignore"):
            lp = np.where(mech_seen, np.where(obs.mech == m, 0.0, -np.inf), np.log(prior[:, m]))
        ll = np.zeros(n)
        if need_ll.any():
            quad = (Rm[need_ll] ** 2) @ inv_psi2
            qVq = V11[need_ll] * q1[need_ll] ** 2 + 2 * V12[need_ll] * q1[need_ll] * q2[need_ll] + V22[need_ll] * q2[need_ll] ** 2
            ll[need_ll] = -0.5 * (quad - qVq)
        logw[:, m] = lp + ll
    logw -= logw.max(axis=1, keepdims=True)
    wts = np.exp(logw)
    wts /= wts.sum(axis=1, keepdims=True)
    return Predictive(weights=wts, means=means, sd=np.sqrt(var))


def oracle_probabilities(df: pd.DataFrame, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> np.ndarray:
    """True P(hypoalgesia, no_change, hyperalgesia) given the predictors in `df`.

    Works for any contract-valid predictor frame (missing optional fields as NaN/None or
    absent columns). Columns in RESPONSES order; rows sum to 1.
    """
    return predictive(observed_from_frame(df)).class_probabilities(threshold_pct)


def oracle_moments(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """E[eih_pct | predictors] and Var[eih_pct | predictors] (exact)."""
    p = predictive(observed_from_frame(df))
    return p.mean(), p.var()
