"""Draw a synthetic cohort (one exercise bout per person) and its exact oracle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, FIELDS, RESPONSES
from simulation import model as M
from simulation import params as P
from simulation.oracle import Observed, predictive

ORACLE_COLUMNS = ["subject_id"] + [f"p_{r}" for r in RESPONSES]


@dataclass
class Site:
    name: str
    archetype: str
    mix: np.ndarray  # condition probabilities in contract order
    age_shift: float
    psych_shift: float
    observe: dict


def sites_for(n_sites: int, seed: int) -> list[Site]:
    """The K sites of a cohort: one pooled site, or archetypes cycled (jittered after the 4th)."""
    if n_sites == 1:
        return [Site("site_01", "pooled", M._by(P.POOLED_MIX, M.COND, "POOLED_MIX"), 0.0, 0.0, {})]
    rng = np.random.default_rng([seed, 20250])
    out = []
    for k in range(n_sites):
        arch = P.SITE_ARCHETYPES[k % len(P.SITE_ARCHETYPES)]
        mix = M._by(arch["mix"], M.COND, f"{arch['name']} mix")
        age, psych = arch["age_shift"], arch["psych_shift"]
        if k >= len(P.SITE_ARCHETYPES):
            mix = rng.dirichlet(mix * P.SITE_JITTER_CONCENTRATION)
            age += rng.normal(0.0, 2.0)
            psych += rng.normal(0.0, 0.1)
        out.append(Site(f"site_{k + 1:02d}", arch["name"], mix, float(age), float(psych), dict(arch["observe"])))
    return out


def _uniform_int(u: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.floor(lo + u * (hi - lo + 1)).clip(lo, hi)


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Categorical draw per row: probs (n, k) rows summing to 1."""
    cum = np.cumsum(probs, axis=1)
    return np.minimum((u[:, None] > cum).sum(axis=1), probs.shape[1] - 1).astype(np.int8)


@dataclass
class Draw:
    """Everything the simulator draws (the cohort frame is built from it)."""

    site: np.ndarray
    sites: list[Site]
    x: M.Required
    duration_months: np.ndarray
    mech: np.ndarray  # true mechanism
    F: np.ndarray
    Z: np.ndarray  # true latents of every optional numeric field
    matrix: np.ndarray  # BDNF matrix (true, for every row)
    values: np.ndarray  # values of every optional numeric field (no missingness)
    eih: np.ndarray
    seen: np.ndarray  # (n, K) recorded optional numeric fields
    mech_seen: np.ndarray


def draw(n: int, seed: int, n_sites: int = 1) -> Draw:
    """Draw n people and one randomized bout each (no missingness applied yet)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if n_sites < 1:
        raise ValueError("n_sites must be at least 1")
    if n_sites > n:
        raise ValueError("n_sites cannot exceed n")
    rng = np.random.default_rng(seed)
    sites = sites_for(n_sites, seed)
    sizes = np.array([len(a) for a in np.array_split(np.arange(n), n_sites)])
    site = np.repeat(np.arange(n_sites), sizes)

    U = rng.random((n, 8))
    N = rng.standard_normal((n, 10))

    mix = np.stack([s.mix for s in sites])[site]
    cond = _pick(U[:, 0], mix)
    pf = cond == M.PAIN_FREE
    sex = np.where(U[:, 1] < M._by(P.P_FEMALE, M.COND, "P_FEMALE")[cond], M.SEX.index("female"), M.MALE).astype(np.int8)

    age_m = M._by({c: v[0] for c, v in P.AGE.items()}, M.COND, "AGE")
    age_s = M._by({c: v[1] for c, v in P.AGE.items()}, M.COND, "AGE")
    age_shift = np.array([s.age_shift for s in sites])[site]
    age = np.round(np.clip(age_m[cond] + age_shift + age_s[cond] * N[:, 0], 18.0, 90.0))

    dmed = M._by(P.DURATION_MEDIAN_MONTHS, M.COND, "DURATION_MEDIAN_MONTHS")
    with np.errstate(divide="ignore"):
        dur_m = np.round(np.clip(np.exp(np.log(np.maximum(dmed[cond], 1e-9)) + P.DURATION_LOG_SD * N[:, 1]), 3.0, 600.0))
    dur_m = np.where(pf, 0.0, dur_m)

    nrs_m = M._by({c: v[0] for c, v in P.NRS.items()}, M.COND, "NRS")
    nrs_s = M._by({c: v[1] for c, v in P.NRS.items()}, M.COND, "NRS")
    nrs = np.where(pf, 0.0, np.round(np.clip(nrs_m[cond] + nrs_s[cond] * N[:, 2], 0.0, 10.0)))

    psych = N[:, 3:6] @ np.linalg.cholesky(np.array(P.PSYCH_CORR)).T
    shift = np.array([s.psych_shift for s in sites])[site]

    def scale(table, col, sign, lo, hi):
        m = M._by({c: v[0] for c, v in table.items()}, M.COND, "psych")
        s = M._by({c: v[1] for c, v in table.items()}, M.COND, "psych")
        return np.round(np.clip(m[cond] + s[cond] * (sign * shift + psych[:, col]), lo, hi))

    pcs = scale(P.PCS, 0, 1.0, 0.0, 52.0)
    tsk = scale(P.TSK, 1, 1.0, 17.0, 68.0)
    pseq = scale(P.PSEQ, 2, -1.0, 0.0, 60.0)

    cpm_m = M._by({c: v[0] for c, v in P.CPM.items()}, M.COND, "CPM")
    cpm_s = M._by({c: v[1] for c, v in P.CPM.items()}, M.COND, "CPM")
    cpm = np.round(np.clip(cpm_m[cond] + cpm_s[cond] * N[:, 6], -95.0, 290.0), 1)

    ppt = np.round(np.clip(np.exp(M.ppt_log_median(cond, sex) + M.PPT_LOG_SD[cond] * N[:, 7]), 55.0, 1950.0))

    modp = M._by(P.MODALITY_P, M.MOD, "MODALITY_P")
    mod = _pick(U[:, 2], np.broadcast_to(modp, (n, len(modp))))
    ilo = M._by({m: v[0] for m, v in P.INTENSITY_RANGE.items()}, M.MOD, "INTENSITY_RANGE")
    ihi = M._by({m: v[1] for m, v in P.INTENSITY_RANGE.items()}, M.MOD, "INTENSITY_RANGE")
    dlo = M._by({m: v[0] for m, v in P.DURATION_RANGE.items()}, M.MOD, "DURATION_RANGE")
    dhi = M._by({m: v[1] for m, v in P.DURATION_RANGE.items()}, M.MOD, "DURATION_RANGE")
    inten = _uniform_int(U[:, 3], ilo[mod], ihi[mod])
    dur = _uniform_int(U[:, 4], dlo[mod], dhi[mod])

    mech = _pick(U[:, 5], M.MECH_PRIOR[cond])
    matrix = np.where(U[:, 6] < P.SERUM_SHARE, M.SERUM, M.PLASMA).astype(np.int8)

    x = M.Required(cond=cond, sex=sex, age=age, nrs=nrs, ppt=ppt, cpm=cpm, pcs=pcs, tsk=tsk, pseq=pseq,
                   mod=mod, inten=inten, dur=dur)

    # latent traits and optional fields
    F = M.factor_means(x) + N[:, 8:10] @ M.CHOL_F.T
    F[:, 0] += M.F1_MECH[mech]
    c = M.indicator_intercepts(x)
    c[:, M.I_PD] += M.PD_MECH[mech]
    Z = c + F @ M.LOAD.T + M.PSI * rng.standard_normal((n, M.K))
    out = M.outcome_terms(x)
    values = M.to_values(Z, matrix, out.lac_shift)

    eih = (
        out.b0
        + (out.w * F).sum(axis=1)
        + out.beta_exp * Z[:, M.I_EXP]
        + out.beta_lac * Z[:, M.I_LAC]
        + out.sigma * rng.standard_normal(n)
    )

    seen, mech_seen = _missingness(rng, n, site, sites, cond)
    return Draw(site=site, sites=sites, x=x, duration_months=dur_m, mech=mech, F=F, Z=Z, matrix=matrix,
                values=values, eih=eih, seen=seen, mech_seen=mech_seen)


def _missingness(rng, n, site, sites, cond) -> tuple[np.ndarray, np.ndarray]:
    """Which optional values are recorded: random within site and condition (MAR on
    recorded fields), never dependent on the outcome or on unrecorded values."""
    U = rng.random((n, 13))
    o = P.OBSERVE

    def p(key: str, base: float) -> np.ndarray:
        mult = np.array([s.observe.get(key, 1.0) for s in sites])[site]
        return np.minimum(base * mult, 0.98)

    pf = cond == M.PAIN_FREE
    seen = np.zeros((n, M.K), dtype=bool)
    I = M.IDX
    seen[:, I["bmi_kg_m2"]] = U[:, 0] < p("bmi", o["bmi"])
    seen[:, I["csi_score"]] = U[:, 1] < p("csi", o["csi"])
    seen[:, I["paindetect_score"]] = ~pf & (U[:, 2] < p("paindetect", o["paindetect"]))
    seen[:, I["temporal_summation_nrs"]] = U[:, 3] < p("ts", o["ts"])
    hads = U[:, 4] < p("hads", o["hads"])
    blank = U[:, 5] < o["hads_single_missing"]
    which = U[:, 6] < 0.5
    seen[:, I["hads_anxiety"]] = hads & ~(blank & which)
    seen[:, I["hads_depression"]] = hads & ~(blank & ~which)
    seen[:, I["expected_pain_change_nrs"]] = U[:, 7] < p("expectation", o["expectation"])
    blood = U[:, 8] < p("blood", o["blood"])
    seen[:, I["bdnf_ng_ml"]] = blood & (U[:, 9] < o["bdnf_given_blood"])
    seen[:, I["il6_pg_ml"]] = blood & (U[:, 10] < o["il6_given_blood"])
    seen[:, I["lactate_mmol_l"]] = U[:, 12] < p("lactate", o["lactate"])
    mech_seen = np.where(pf, U[:, 11] < P.OBSERVE_NONE, U[:, 11] < p("mechanism", o["mechanism"]))
    return seen, mech_seen


def _subject_ids(n: int) -> np.ndarray:
    width = max(7, len(str(n)))
    return np.array([f"P{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def cohort_frame(d: Draw) -> pd.DataFrame:
    """The contract frame of a draw: subject_id, site, every predictor, ppt_post_kpa."""
    x = d.x
    n = len(x)
    vals = np.where(d.seen, d.values, np.nan)
    mech = np.where(d.mech_seen, d.mech, -1)
    matrix = np.where(d.seen[:, M.I_BDNF], d.matrix, -1)
    post = np.clip(x.ppt * (1.0 + d.eih / 100.0), BY_NAME["ppt_post_kpa"].min, BY_NAME["ppt_post_kpa"].max)
    site_names = np.array([s.name for s in d.sites], dtype=object)

    def cat(name: str, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes.astype(np.int8), categories=list(BY_NAME[name].categories))

    cols = {
        "subject_id": _subject_ids(n),
        "site": site_names[d.site],
        "age_years": x.age,
        "sex": cat("sex", x.sex),
        "pain_condition": cat("pain_condition", x.cond),
        "pain_mechanism": cat("pain_mechanism", mech),
        "pain_duration_months": d.duration_months,
        "pain_intensity_nrs": x.nrs,
        "ppt_baseline_kpa": x.ppt,
        "cpm_pct": x.cpm,
        "pcs_total": x.pcs,
        "tsk17_total": x.tsk,
        "pseq_total": x.pseq,
        "bdnf_matrix": cat("bdnf_matrix", matrix),
        "exercise_modality": cat("exercise_modality", x.mod),
        "exercise_intensity_pct": x.inten,
        "exercise_duration_min": x.dur,
        "ppt_post_kpa": post,
    }
    for name, k in M.IDX.items():
        cols[name] = vals[:, k]
    missing = [f.name for f in FIELDS if f.name not in cols]
    if missing:  # pragma: no cover - contract drift guard
        raise RuntimeError(f"simulator does not produce {missing}")
    frame = pd.DataFrame({f.name: cols[f.name] for f in FIELDS})
    frame["subject_id"] = frame["subject_id"].astype("str")
    frame["site"] = frame["site"].astype("str")
    return frame


def observed_of(d: Draw) -> Observed:
    return Observed(
        x=d.x,
        mech=np.where(d.mech_seen, d.mech, -1).astype(np.int8),
        matrix=np.where(d.seen[:, M.I_BDNF], d.matrix, -1).astype(np.int8),
        values=np.where(d.seen, d.values, np.nan),
    )


def simulate(n: int, seed: int, n_sites: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A contract-valid cohort of n people (one randomized bout each) and its exact oracle.

    Returns (cohort, oracle): cohort columns are the contract's fields (subject_id, site,
    every predictor, ppt_post_kpa); oracle columns subject_id, p_hypoalgesia,
    p_no_change, p_hyperalgesia at the default 10 % threshold, same row order. The same
    (n, seed, n_sites) gives the same frames.
    """
    d = draw(int(n), int(seed), int(n_sites))
    cohort = cohort_frame(d)
    probs = predictive(observed_of(d)).class_probabilities()
    oracle = pd.DataFrame({"subject_id": cohort["subject_id"]})
    for j, r in enumerate(RESPONSES):
        oracle[f"p_{r}"] = probs[:, j]
    return cohort, oracle
