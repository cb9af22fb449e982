"""The structural equations, shared by the simulator and the exact oracle.

Notation (per row): required fields x (always recorded), protocol p (part of x), pain
mechanism m, latent traits F = (F1 sensitization, F2 distress), one latent z_k per
optional numeric field k. The generative model is

    F | x, m      ~ N(mu_F(x, m), Sigma_F)
    z_k | x, m, F  = c_k(x, m) + Lambda_k . F + psi_k * u_k          (u_k iid N(0, 1))
    value_k        = T_k(z_k)          (strictly monotone, inside the contract range)
    phys           = b0(x) + w(x) . F + sum_k beta_k(x) z_k + sigma * eps
    eih_pct        = fade_s (phys + shift_s G(p)) + measurement_s(x)     (sites.py)

so given x, m, the site and any subset of the z_k the outcome is exactly Gaussian, with m
unknown an exact finite mixture, and at a new site a finite mixture over the site
profiles too (oracle.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts.fields import BY_NAME, FIELDS
from simulation import params as P

COND = BY_NAME["pain_condition"].categories
SEX = BY_NAME["sex"].categories
MECH = BY_NAME["pain_mechanism"].categories
MOD = BY_NAME["exercise_modality"].categories
MATRIX = BY_NAME["bdnf_matrix"].categories

PAIN_FREE = COND.index("pain_free")
MECH_NONE = MECH.index("none")
MALE = SEX.index("male")
SERUM = MATRIX.index("serum")
PLASMA = MATRIX.index("plasma")

OPTIONAL_NUMERIC: tuple[str, ...] = tuple(
    f.name for f in FIELDS if f.role == "predictor" and not f.required and f.kind == "number"
)
K = len(OPTIONAL_NUMERIC)
IDX = {name: i for i, name in enumerate(OPTIONAL_NUMERIC)}
I_BDNF = IDX["bdnf_ng_ml"]
I_LAC = IDX["lactate_mmol_l"]
I_EXP = IDX["expected_pain_change_nrs"]
I_PD = IDX["paindetect_score"]


def _by(table: dict, cats: tuple[str, ...], what: str) -> np.ndarray:
    if set(table) != set(cats):
        raise RuntimeError(f"simulation parameter {what} must cover exactly {cats}")
    return np.array([table[c] for c in cats], dtype="float64")


if set(P.INDICATORS) != set(OPTIONAL_NUMERIC):  # pragma: no cover - contract drift guard
    raise RuntimeError("simulation.params.INDICATORS must cover every optional numeric predictor")

# ---- arrays in contract order ---------------------------------------------------------
LOAD = np.array([P.INDICATORS[k]["load"] for k in OPTIONAL_NUMERIC])  # (K, 2)
PSI = np.array([P.INDICATORS[k]["psi"] for k in OPTIONAL_NUMERIC])  # (K,)
C_COND = np.stack([_by(P.INDICATOR_COND[k], COND, f"INDICATOR_COND[{k}]") for k in OPTIONAL_NUMERIC], axis=1)  # (5, K)
PD_MECH = _by(P.PAINDETECT_MECH, MECH, "PAINDETECT_MECH")
F1_COND = _by(P.F1_COND, COND, "F1_COND")
F1_MECH = _by(P.F1_MECH, MECH, "F1_MECH")
F2_COND = _by(P.F2_COND, COND, "F2_COND")
R_COND = _by(P.R_COND, COND, "R_COND")
MECH_PRIOR = np.stack([_by(P.MECHANISM[c], MECH, f"MECHANISM[{c}]") for c in COND])  # (5 cond, 5 mech)
PPT_MED_F = _by(P.PPT_MEDIAN_FEMALE, COND, "PPT_MEDIAN_FEMALE")
PPT_LOG_SD = _by(P.PPT_LOG_SD, COND, "PPT_LOG_SD")
PPT_SEM = _by(P.PPT_SEM, COND, "PPT_SEM")
GAIN = _by(P.GAIN, MOD, "GAIN")
LOADSENS = _by(P.LOAD, MOD, "LOAD")
LAC_RISE = _by(P.LACTATE_RISE, MOD, "LACTATE_RISE")

_sd1, _sd2 = P.F_SD
SIGMA_F = np.array([[_sd1**2, P.F_CORR * _sd1 * _sd2], [P.F_CORR * _sd1 * _sd2, _sd2**2]])
SIGMA_F_INV = np.linalg.inv(SIGMA_F)
CHOL_F = np.linalg.cholesky(SIGMA_F)

CHRONIC = (np.arange(len(COND)) != PAIN_FREE).astype("float64")  # by condition


@dataclass
class Required:
    """Required fields as arrays (categoricals as contract category codes)."""

    cond: np.ndarray
    sex: np.ndarray
    age: np.ndarray
    nrs: np.ndarray
    ppt: np.ndarray
    cpm: np.ndarray
    pcs: np.ndarray
    tsk: np.ndarray
    pseq: np.ndarray
    mod: np.ndarray
    inten: np.ndarray
    dur: np.ndarray

    def __len__(self) -> int:
        return len(self.cond)

    def with_protocol(self, mod: int, inten: float, dur: float) -> Required:
        n = len(self)
        return Required(
            self.cond, self.sex, self.age, self.nrs, self.ppt, self.cpm, self.pcs, self.tsk, self.pseq,
            np.full(n, mod, dtype=self.mod.dtype), np.full(n, float(inten)), np.full(n, float(dur)),
        )


def mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A (n, j) @ B (j, k) for a tiny inner dimension j (numpy's matmul is slow there)."""
    out = A[:, 0:1] * B[0]
    for i in range(1, B.shape[0]):
        out += A[:, i : i + 1] * B[i]
    return out


def _z(x: np.ndarray, key: str) -> np.ndarray:
    m, s = P.STD[key]
    return (x - m) / s


def ppt_log_median(cond: np.ndarray, sex: np.ndarray) -> np.ndarray:
    return np.log(PPT_MED_F[cond]) + np.where(sex == MALE, np.log(P.PPT_MALE_FACTOR), 0.0)


def ppt_dev(x: Required) -> np.ndarray:
    """Standardized deviation of log baseline PPT from its condition-and-sex median."""
    return (np.log(x.ppt) - ppt_log_median(x.cond, x.sex)) / PPT_LOG_SD[x.cond]


def factor_means(x: Required) -> np.ndarray:
    """mu_F for mechanism 'none' (n, 2); add F1_MECH[m] to column 0 for mechanism m."""
    c = P.F1_COEF
    mu1 = (
        F1_COND[x.cond]
        + c["cpm"] * _z(x.cpm, "cpm")
        + c["pcs"] * _z(x.pcs, "pcs")
        + c["nrs"] * (x.nrs - 5.0)
        + c["ppt_dev"] * ppt_dev(x)
    )
    c2 = P.F2_COEF
    mu2 = F2_COND[x.cond] + c2["pcs"] * _z(x.pcs, "pcs") + c2["tsk"] * _z(x.tsk, "tsk")
    return np.stack([mu1, mu2], axis=1)


def indicator_intercepts(x: Required) -> np.ndarray:
    """c_k for mechanism 'none' (n, K); add PD_MECH[m] to painDETECT for mechanism m."""
    c = C_COND[x.cond].copy()
    for name, terms in P.INDICATOR_EXTRA.items():
        k = IDX[name]
        for key, coef in terms.items():
            c[:, k] += coef * _z(getattr(x, key), key)
    return c


def _ramp(v: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.clip((v - a) / (b - a), 0.0, 1.0)


def protocol_terms(
    mod: np.ndarray, inten: np.ndarray, dur: np.ndarray, world=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dose gain G, load sensitivity H and lactate log-rise of each protocol.

    Aerobic intensity arrives in % HRmax and is converted to % VO2max (Swain 1994): no EIH
    at or below 50 % VO2max (~69 % HRmax) or under 10 min, full at 75 % VO2max (~85 % HRmax)
    for >= 25 min (Hoffman 2004, Naugle 2014); load sensitivity rises steeply above 60 %.
    `world` (a `simulation.world.World`) supplies the gains and load sensitivities of the
    modalities without data; None means the central world.
    Isometric: EIH at low and high intensity once the hold lasts >= 2 min (Naugle 2012).
    Dynamic resistance: grows from 30 to 60 % 1RM. HIIT and mind-body: priors (README).
    """
    gain = GAIN if world is None else world.gain
    load = LOADSENS if world is None else world.load
    G = np.zeros(len(mod))
    H = np.zeros(len(mod))
    lac = np.zeros(len(mod))
    i = MOD.index
    a = mod == i("aerobic")
    vo2 = P.vo2max_from_hrmax(inten[a])  # Hoffman's thresholds are in % VO2max
    on, full = P.AEROBIC_VO2_ONSET, P.AEROBIC_VO2_FULL
    G[a] = gain[i("aerobic")] * np.clip((vo2 - on) / (full - on), 0.0, 1.25) * _ramp(dur[a], 10.0, 25.0)
    lo, hi, power = P.AEROBIC_LOAD_VO2
    H[a] = load[i("aerobic")] * _ramp(vo2, lo, hi) ** power * (0.5 + 0.5 * _ramp(dur[a], 10.0, 40.0))
    lac[a] = LAC_RISE[i("aerobic")] * _ramp(vo2, 35.0, 90.0) ** 1.5 * (0.6 + 0.4 * _ramp(dur[a], 5.0, 20.0))
    s = mod == i("isometric")
    G[s] = gain[i("isometric")] * (0.75 + 0.25 * _ramp(inten[s], 20.0, 50.0)) * _ramp(dur[s], 0.0, 2.0)
    H[s] = load[i("isometric")] * (0.6 + 0.4 * _ramp(inten[s], 20.0, 80.0)) * (0.7 + 0.3 * _ramp(dur[s], 1.0, 5.0))
    lac[s] = LAC_RISE[i("isometric")] * _ramp(inten[s], 20.0, 80.0) * (0.5 + 0.5 * _ramp(dur[s], 1.0, 5.0))
    d = mod == i("dynamic_resistance")
    G[d] = gain[i("dynamic_resistance")] * _ramp(inten[d], 30.0, 60.0) * _ramp(dur[d], 3.0, 10.0)
    H[d] = load[i("dynamic_resistance")] * (0.5 + 0.5 * _ramp(inten[d], 50.0, 85.0))
    lac[d] = LAC_RISE[i("dynamic_resistance")] * _ramp(inten[d], 30.0, 85.0) * (0.6 + 0.4 * _ramp(dur[d], 5.0, 20.0))
    h = mod == i("hiit")
    G[h] = gain[i("hiit")] * _ramp(dur[h], 5.0, 15.0)
    H[h] = load[i("hiit")] * (0.5 + 0.5 * _ramp(inten[h], 80.0, 100.0))
    lac[h] = LAC_RISE[i("hiit")] * (0.7 + 0.3 * _ramp(inten[h], 80.0, 100.0)) * (0.7 + 0.3 * _ramp(dur[h], 5.0, 20.0))
    b = mod == i("mind_body")
    G[b] = gain[i("mind_body")] * _ramp(dur[b], 10.0, 30.0)
    H[b] = load[i("mind_body")] * _ramp(dur[b], 10.0, 30.0)
    lac[b] = LAC_RISE[i("mind_body")] * _ramp(inten[b], 40.0, 65.0)
    return G, H, lac


@dataclass
class Outcome:
    """The physiological part of eih_pct given x, F and z (the site layer adds the rest):
    phys = b0 + w . F + beta_exp z_exp + beta_lac z_lac + sigma * eps."""

    b0: np.ndarray  # (n,)
    w: np.ndarray  # (n, 2) coefficient of F
    beta_exp: np.ndarray  # (n,) coefficient of z_exp
    beta_lac: np.ndarray  # (n,) coefficient of z_lac
    sigma: np.ndarray  # (n,) SD of the person-by-bout variation nothing recorded explains
    lac_shift: np.ndarray  # (n,) lactate log-rise of the protocol (for its transform)
    G: np.ndarray
    H: np.ndarray


def outcome_terms(x: Required, world=None) -> Outcome:
    """The outcome equation's terms for each row (`world`: None = the central world)."""
    G, H, lac = protocol_terms(x.mod, x.inten, x.dur, world)
    rc = P.R_COEF
    zc = _z(x.cpm, "cpm")
    chronic = CHRONIC[x.cond]
    r_male = rc["male"] if world is None else world.r_male
    R0 = (
        1.0
        + R_COND[x.cond]
        + rc["cpm"] * zc
        + rc["age"] * _z(x.age, "age")
        + rc["pcs"] * _z(x.pcs, "pcs")
        + rc["tsk"] * _z(x.tsk, "tsk")
        + rc["pseq"] * _z(x.pseq, "pseq")
        + r_male * (x.sex == MALE)
    )
    impaired = np.maximum(0.0, -x.cpm) / P.STD["cpm"][1]
    S0 = chronic * (P.S_CHRONIC + P.S_CPM_IMPAIRED * impaired) + P.S_COEF["cpm"] * zc + P.S_COEF["pcs"] * _z(x.pcs, "pcs")
    b0 = G * R0 - H * S0
    w = np.outer(G, P.R_F) - np.outer(H, P.S_F)
    sigma = np.full(len(G), P.EIH_UNEXPLAINED_SD)
    return Outcome(b0=b0, w=w, beta_exp=G * P.R_EXP, beta_lac=G * P.R_LACTATE, sigma=sigma, lac_shift=lac, G=G, H=H)


# ---- transforms between latent z and reported value -----------------------------------
def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


_EPS = 1e-12


def _fwd(z, lo, hi, log, a, b):
    s = _sigmoid(a + b * z)
    if log:
        return lo * np.exp(np.log(hi / lo) * s)
    return lo + (hi - lo) * s


def _inv(v, lo, hi, log, a, b):
    if log:
        s = np.log(v / lo) / np.log(hi / lo)
    else:
        s = (v - lo) / (hi - lo)
    s = np.clip(s, _EPS, 1.0 - _EPS)
    return (np.log(s) - np.log1p(-s) - a) / b


def _lactate_a(lac_shift: np.ndarray) -> np.ndarray:
    lo, hi = BY_NAME["lactate_mmol_l"].min, BY_NAME["lactate_mmol_l"].max
    med = P.LACTATE_REST * np.exp(lac_shift)
    s = np.log(med / lo) / np.log(hi / lo)
    return np.log(s) - np.log1p(-s)


def _lactate_tf(lac_shift):
    f = BY_NAME["lactate_mmol_l"]
    return (f.min, f.max, True, _lactate_a(lac_shift), P.LACTATE_B)


def to_values(Z: np.ndarray, matrix: np.ndarray, lac_shift: np.ndarray) -> np.ndarray:
    """Latent z (n, K) -> reported values (n, K). matrix: BDNF matrix codes (serum/plasma)."""
    V = np.empty_like(Z)
    for name, k in IDX.items():
        if k == I_BDNF:
            serum = _fwd(Z[:, k], *P.BDNF_TF["serum"])
            plasma = _fwd(Z[:, k], *P.BDNF_TF["plasma"])
            V[:, k] = np.where(matrix == PLASMA, plasma, serum)
        elif k == I_LAC:
            V[:, k] = _fwd(Z[:, k], *_lactate_tf(lac_shift))
        else:
            V[:, k] = _fwd(Z[:, k], *P.INDICATORS[name]["tf"])
    return V


def to_latent(V: np.ndarray, matrix: np.ndarray, lac_shift: np.ndarray) -> np.ndarray:
    """Reported values (n, K, NaN = missing) -> latent z (NaN where missing).

    A BDNF value without a matrix counts as missing (the contract requires the matrix)."""
    Z = np.empty_like(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, k in IDX.items():
            v = V[:, k]
            if k == I_BDNF:
                z = np.where(matrix == PLASMA, _inv(v, *P.BDNF_TF["plasma"]), _inv(v, *P.BDNF_TF["serum"]))
                z = np.where(matrix < 0, np.nan, z)
            elif k == I_LAC:
                z = _inv(v, *_lactate_tf(lac_shift))
            else:
                z = _inv(v, *P.INDICATORS[name]["tf"])
            Z[:, k] = np.where(np.isnan(v), np.nan, z)
    return Z
