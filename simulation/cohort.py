"""Draw a synthetic cohort (one exercise bout per person) and its exact oracle.

Rows are drawn in fixed chunks of CHUNK rows, each from its own random stream spawned
from the seed, so the same (n, seed, n_sites) always gives the same cohort and memory
stays small; the oracle of each chunk is computed from what the chunk records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, FIELDS, RESPONSES
from simulation import model as M
from simulation import params as P
from simulation.oracle import Observed, predictive

ORACLE_COLUMNS = ["subject_id"] + [f"p_{r}" for r in RESPONSES]
CHUNK = 8192
"""Rows per random stream and per oracle block (part of the definition of a seed)."""


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


def _col(table: dict, j: int, cats: tuple[str, ...]) -> np.ndarray:
    return M._by({c: v[j] for c, v in table.items()}, cats, "table")


# parameter arrays in contract category order
_P_FEMALE = M._by(P.P_FEMALE, M.COND, "P_FEMALE")
_AGE_M, _AGE_S = _col(P.AGE, 0, M.COND), _col(P.AGE, 1, M.COND)
_DUR_LOGMED = np.log(np.maximum(M._by(P.DURATION_MEDIAN_MONTHS, M.COND, "DURATION_MEDIAN_MONTHS"), 1e-9))
_NRS_M, _NRS_S = _col(P.NRS, 0, M.COND), _col(P.NRS, 1, M.COND)
_PSYCH = {k: (_col(t, 0, M.COND), _col(t, 1, M.COND)) for k, t in (("pcs", P.PCS), ("tsk", P.TSK), ("pseq", P.PSEQ))}
_PSYCH_CHOL = np.linalg.cholesky(np.array(P.PSYCH_CORR))
_CPM_M, _CPM_S = _col(P.CPM, 0, M.COND), _col(P.CPM, 1, M.COND)
_MOD_CUM = np.cumsum(M._by(P.MODALITY_P, M.MOD, "MODALITY_P"))
_I_LO, _I_HI = _col(P.INTENSITY_RANGE, 0, M.MOD), _col(P.INTENSITY_RANGE, 1, M.MOD)
_D_LO, _D_HI = _col(P.DURATION_RANGE, 0, M.MOD), _col(P.DURATION_RANGE, 1, M.MOD)
_MECH_CUM = np.cumsum(M.MECH_PRIOR, axis=1)


def _uniform_int(u: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.floor(lo + u * (hi - lo + 1)), hi)


def _pick_by(u: np.ndarray, group: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Categorical draw per row from the cumulative probabilities of its group."""
    out = np.empty(len(u), dtype=np.int8)
    last = cum.shape[1] - 1
    for g in np.unique(group):
        sel = group == g
        out[sel] = np.minimum(np.searchsorted(cum[g], u[sel], side="right"), last)
    return out


@dataclass
class Draw:
    """Everything the simulator draws for a block of rows."""

    site: np.ndarray
    x: M.Required
    duration_months: np.ndarray
    mech: np.ndarray  # true mechanism
    F: np.ndarray
    Z: np.ndarray  # true latents of every optional numeric field
    matrix: np.ndarray  # BDNF matrix of a blood sample (true, for every row)
    values: np.ndarray  # values of every optional numeric field (before missingness)
    eih: np.ndarray
    seen: np.ndarray  # (n, K) recorded optional numeric fields
    mech_seen: np.ndarray
    terms: M.Outcome | None = None  # the outcome equation's terms (blocks only)


def _draw_block(rng: np.random.Generator, site: np.ndarray, sites: list[Site]) -> Draw:
    n = len(site)
    U = rng.random((n, 7))
    N = rng.standard_normal((n, 10))

    mix_cum = np.cumsum(np.stack([s.mix for s in sites]), axis=1)
    cond = _pick_by(U[:, 0], site, mix_cum)
    pf = cond == M.PAIN_FREE
    sex = np.where(U[:, 1] < _P_FEMALE[cond], M.SEX.index("female"), M.MALE).astype(np.int8)

    age_shift = np.array([s.age_shift for s in sites])[site]
    age = np.round(np.clip(_AGE_M[cond] + age_shift + _AGE_S[cond] * N[:, 0], 18.0, 90.0))
    dur_m = np.where(pf, 0.0, np.round(np.clip(np.exp(_DUR_LOGMED[cond] + P.DURATION_LOG_SD * N[:, 1]), 3.0, 600.0)))
    nrs = np.where(pf, 0.0, np.round(np.clip(_NRS_M[cond] + _NRS_S[cond] * N[:, 2], 0.0, 10.0)))

    psych = M.mm(N[:, 3:6], _PSYCH_CHOL.T)
    shift = np.array([s.psych_shift for s in sites])[site]

    def scale(key, col, sign, lo, hi):
        m, s = _PSYCH[key]
        return np.round(np.clip(m[cond] + s[cond] * (sign * shift + psych[:, col]), lo, hi))

    pcs = scale("pcs", 0, 1.0, 0.0, 52.0)
    tsk = scale("tsk", 1, 1.0, 17.0, 68.0)
    pseq = scale("pseq", 2, -1.0, 0.0, 60.0)
    cpm = np.round(np.clip(_CPM_M[cond] + _CPM_S[cond] * N[:, 6], -95.0, 290.0), 1)
    ppt = np.round(np.clip(np.exp(M.ppt_log_median(cond, sex) + M.PPT_LOG_SD[cond] * N[:, 7]), 55.0, 1950.0))

    mod = np.minimum(np.searchsorted(_MOD_CUM, U[:, 2], side="right"), len(M.MOD) - 1).astype(np.int8)
    inten = _uniform_int(U[:, 3], _I_LO[mod], _I_HI[mod])
    dur = _uniform_int(U[:, 4], _D_LO[mod], _D_HI[mod])
    mech = _pick_by(U[:, 5], cond, _MECH_CUM)
    matrix = np.where(U[:, 6] < P.SERUM_SHARE, M.SERUM, M.PLASMA).astype(np.int8)

    x = M.Required(cond=cond, sex=sex, age=age, nrs=nrs, ppt=ppt, cpm=cpm, pcs=pcs, tsk=tsk, pseq=pseq,
                   mod=mod, inten=inten, dur=dur)

    # latent traits, optional fields, outcome
    F = M.factor_means(x) + M.mm(N[:, 8:10], M.CHOL_F.T)
    F[:, 0] += M.F1_MECH[mech]
    c = M.indicator_intercepts(x)
    c[:, M.I_PD] += M.PD_MECH[mech]
    Z = c + M.mm(F, M.LOAD.T) + M.PSI * rng.standard_normal((n, M.K))
    out = M.outcome_terms(x)
    values = M.to_values(Z, matrix, out.lac_shift)
    eih = (
        out.b0
        + out.w[:, 0] * F[:, 0] + out.w[:, 1] * F[:, 1]
        + out.beta_exp * Z[:, M.I_EXP]
        + out.beta_lac * Z[:, M.I_LAC]
        + out.sigma * rng.standard_normal(n)
    )
    seen, mech_seen = _missingness(rng, site, sites, cond)
    return Draw(site=site, x=x, duration_months=dur_m, mech=mech, F=F, Z=Z, matrix=matrix,
                values=values, eih=eih, seen=seen, mech_seen=mech_seen, terms=out)


def _missingness(rng, site, sites, cond) -> tuple[np.ndarray, np.ndarray]:
    """Which optional values are recorded: random within site and condition (MAR on
    recorded fields), never dependent on the outcome or on unrecorded values."""
    n = len(site)
    U = rng.random((n, 13))
    o = P.OBSERVE

    def p(key: str, base: float) -> np.ndarray:
        mult = np.array([s.observe.get(key, 1.0) for s in sites])
        return np.minimum(base * mult, 0.98)[site]

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


def _check(n: int, n_sites: int) -> None:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError("n must be a whole number of at least 1")
    if isinstance(n_sites, bool) or int(n_sites) != n_sites or n_sites < 1:
        raise ValueError("n_sites must be a whole number of at least 1")
    if n_sites > n:
        raise ValueError("n_sites cannot exceed n")


def _blocks(n: int, seed: int, n_sites: int):
    """(start, rng, site codes) of every chunk, and the site list."""
    sites = sites_for(n_sites, seed)
    sizes = np.array([len(a) for a in np.array_split(np.arange(n), n_sites)])
    site = np.repeat(np.arange(n_sites), sizes).astype(np.int16)
    n_chunks = -(-n // CHUNK)
    streams = np.random.SeedSequence(int(seed)).spawn(n_chunks)
    blocks = [(i * CHUNK, np.random.default_rng(streams[i]), site[i * CHUNK : (i + 1) * CHUNK]) for i in range(n_chunks)]
    return blocks, sites


def draw(n: int, seed: int, n_sites: int = 1) -> tuple[Draw, list[Site]]:
    """Everything the simulator draws for the whole cohort (tests and diagnostics)."""
    _check(n, n_sites)
    blocks, sites = _blocks(int(n), int(seed), int(n_sites))
    parts = [_draw_block(rng, s, sites) for _, rng, s in blocks]
    return _concat(parts), sites


def _concat(parts: list[Draw]) -> Draw:
    def cat(get):
        return np.concatenate([get(p) for p in parts])

    x = M.Required(**{f.name: cat(lambda p, k=f.name: getattr(p.x, k)) for f in fields(M.Required)})
    kw = {f.name: cat(lambda p, k=f.name: getattr(p, k)) for f in fields(Draw) if f.name not in ("x", "terms")}
    return Draw(x=x, **kw)


def observed_of(d: Draw) -> Observed:
    """What a clinic records of a draw (the oracle's input)."""
    return Observed(
        x=d.x,
        mech=np.where(d.mech_seen, d.mech, -1).astype(np.int8),
        matrix=np.where(d.seen[:, M.I_BDNF], d.matrix, -1).astype(np.int8),
        values=np.where(d.seen, d.values, np.nan),
    )


def _str_column(values) -> pd.Series:
    import pyarrow as pa

    dt = pd.StringDtype("pyarrow", na_value=np.nan)
    return pa.chunked_array([values]).to_pandas(types_mapper=lambda t: dt if t == pa.string() else None)


def subject_ids(n: int) -> pd.Series:
    """P0000001, P0000002, ... (zero-padded to at least 7 digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    width = max(7, len(str(n)))
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()), width, "0")
    return _str_column(pc.binary_join_element_wise(pa.scalar("P"), digits, ""))


def _frame(cols: dict[str, np.ndarray], n: int, sites: list[Site]) -> pd.DataFrame:
    import pyarrow as pa

    def cat(name: str, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes.astype(np.int8), categories=list(BY_NAME[name].categories))

    data = {}
    for f in FIELDS:
        if f.name == "subject_id":
            data[f.name] = subject_ids(n)
        elif f.name == "site":
            names = pa.array([s.name for s in sites], pa.string())
            data[f.name] = _str_column(names.take(pa.array(cols["site"])))
        elif f.kind == "category":
            data[f.name] = cat(f.name, cols[f.name])
        elif f.name in cols:
            data[f.name] = cols[f.name]
        else:  # pragma: no cover - contract drift guard
            raise RuntimeError(f"simulator does not produce {f.name}")
    return pd.DataFrame(data, copy=False)  # no consolidation copy of 1e6-row columns


_X_FIELDS = {
    "age_years": "age", "pain_intensity_nrs": "nrs", "ppt_baseline_kpa": "ppt", "cpm_pct": "cpm",
    "pcs_total": "pcs", "tsk17_total": "tsk", "pseq_total": "pseq", "exercise_intensity_pct": "inten",
    "exercise_duration_min": "dur", "sex": "sex", "pain_condition": "cond", "exercise_modality": "mod",
}


def _columns_of(d: Draw) -> dict[str, np.ndarray]:
    cols = {name: getattr(d.x, attr) for name, attr in _X_FIELDS.items()}
    cols["site"] = d.site
    cols["pain_duration_months"] = d.duration_months
    cols["pain_mechanism"] = np.where(d.mech_seen, d.mech, -1)
    cols["bdnf_matrix"] = np.where(d.seen[:, M.I_BDNF], d.matrix, -1)
    vals = np.where(d.seen, d.values, np.nan)
    for name, k in M.IDX.items():
        cols[name] = vals[:, k]
    f = BY_NAME["ppt_post_kpa"]
    cols["ppt_post_kpa"] = np.clip(d.x.ppt * (1.0 + d.eih / 100.0), f.min, f.max)
    return cols


def cohort_frame(d: Draw, sites: list[Site]) -> pd.DataFrame:
    """The contract frame of a draw: subject_id, site, every predictor, ppt_post_kpa."""
    return _frame(_columns_of(d), len(d.eih), sites)


def _workers(n_blocks: int) -> int:
    """Threads for the block loop: numpy releases the GIL inside its kernels."""
    import os

    env = os.environ.get("EIH_SIM_THREADS")
    if env is not None:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4, n_blocks))


def simulate(n: int, seed: int, n_sites: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A contract-valid cohort of n people (one randomized bout each) and its exact oracle.

    Returns (cohort, oracle): cohort columns are the contract's fields (subject_id, site,
    every predictor, ppt_post_kpa); oracle columns subject_id, p_hypoalgesia,
    p_no_change, p_hyperalgesia at the default 10 % threshold, same row order. The same
    (n, seed, n_sites) gives the same frames.
    """
    _check(n, n_sites)
    n, seed, n_sites = int(n), int(seed), int(n_sites)
    blocks, sites = _blocks(n, seed, n_sites)
    cols: dict[str, np.ndarray] = {}
    probs = np.empty((n, 3))

    def run(block) -> None:
        start, rng, site = block
        d = _draw_block(rng, site, sites)
        stop = start + len(site)
        block = _columns_of(d)
        for name, v in block.items():
            cols[name][start:stop] = v
        obs = Observed(
            x=d.x, mech=block["pain_mechanism"].astype(np.int8), matrix=block["bdnf_matrix"].astype(np.int8),
            values=np.column_stack([block[name] for name in M.OPTIONAL_NUMERIC]),
        )
        probs[start:stop] = predictive(obs, terms=d.terms).class_probabilities()

    # each block has its own random stream and rows, so threads cannot change the result
    for f in FIELDS:
        if f.name != "subject_id":
            cols[f.name] = np.empty(n, dtype=np.int16 if f.name == "site" else np.int8 if f.kind == "category" else np.float64)
    workers = _workers(len(blocks))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, blocks))
    else:
        for block in blocks:
            run(block)
    cohort = _frame(cols, n, sites)
    oracle = pd.DataFrame({"subject_id": cohort["subject_id"].copy()})
    for j, r in enumerate(RESPONSES):
        oracle[f"p_{r}"] = probs[:, j]
    return cohort, oracle
