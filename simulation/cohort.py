"""Draw a synthetic cohort (one exercise bout per person) and its exact oracle.

Rows are drawn in fixed chunks of CHUNK rows, each from its own random stream spawned
from the seed, so the same (n, seed, n_sites) always gives the same cohort and memory
stays small; the oracle of each chunk is computed from what the chunk records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from data_contracts.fields import FIELDS, RESPONSES
from simulation import model as M
from simulation import params as P
from simulation.frames import _columns_of, _frame, cohort_frame, retest_columns, subject_ids  # noqa: F401
from simulation.oracle import Observed, physiology
from simulation.sites import REFERENCE, SiteEffect, profile
from simulation.world import World, check_world
from simulation.world import world as world_of

ORACLE_COLUMNS = ["subject_id"] + [f"p_{r}" for r in RESPONSES] + [f"p_site_{r}" for r in RESPONSES]
"""p_*: the truth for a person at a new site (site effects integrated); p_site_*: the truth
at the row's own site (its effects known)."""
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
    effect: SiteEffect = REFERENCE
    profile: int = -1  # index of the site profile; -1 = the reference site


def _site_effects(n_sites: int, seed: int) -> list[tuple[int, SiteEffect]]:
    """Profiles in shuffled cycles (every run of SITE_PROFILES sites holds each once) and a
    normal response shift per site."""
    rng = np.random.default_rng([seed, 1713])
    cycles = -(-n_sites // P.SITE_PROFILES)
    order = np.concatenate([rng.permutation(P.SITE_PROFILES) for _ in range(cycles)])[:n_sites]
    shifts = P.SITE_RESPONSE_SD * rng.standard_normal(n_sites)
    return [(int(q), profile(int(q), float(d))) for q, d in zip(order, shifts, strict=True)]


def sites_for(n_sites: int, seed: int) -> list[Site]:
    """The K sites of a cohort: one pooled reference site, or archetypes cycled (jittered
    after the 4th), each with its own site effects."""
    if n_sites == 1:
        return [Site("site_01", "pooled", M._by(P.POOLED_MIX, M.COND, "POOLED_MIX"), 0.0, 0.0, {})]
    effects = _site_effects(n_sites, seed)
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
        q, effect = effects[k]
        out.append(Site(f"site_{k + 1:02d}", arch["name"], mix, float(age), float(psych), dict(arch["observe"]),
                        effect, q))
    return out


def site_effect_rows(site: np.ndarray, sites: list[Site]) -> SiteEffect:
    """Per-row site effects of rows whose site codes are `site`."""
    def col(name):
        return np.array([float(getattr(s.effect, name)) for s in sites])[site]

    return SiteEffect(col("log_scale"), col("noise"), col("delay_min"), col("shift"))


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
    retest: Retest | None = None  # the second day (when asked for)


@dataclass
class Retest:
    """The same protocol on another day: new readings, new achieved effort, new outcome."""

    ppt: np.ndarray  # recorded baseline of day 2
    lactate: np.ndarray  # lactate value of day 2 (before missingness)
    eih: np.ndarray


def _draw_block(rng: np.random.Generator, site: np.ndarray, sites: list[Site], world: World | None = None,
                retest: bool = False) -> Draw:
    n = len(site)
    U = rng.random((n, 7))
    N = rng.standard_normal((n, 10))
    eff = site_effect_rows(site, sites)

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
    # the site's algometer and examiner read every PPT x exp(log_scale)
    reading = np.exp(M.ppt_log_median(cond, sex) + M.PPT_LOG_SD[cond] * N[:, 7] + eff.log_scale)
    ppt = np.round(np.clip(reading, 55.0, 1950.0))

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
    out = M.outcome_terms(x, world)
    values = M.to_values(Z, matrix, out.lac_shift)
    E = rng.standard_normal((n, 4))
    stable = (out.b0 + out.w[:, 0] * F[:, 0] + out.w[:, 1] * F[:, 1] + out.beta_exp * Z[:, M.I_EXP]
              + P.EIH_PERSON_SD * E[:, 0])
    phys = stable + out.beta_lac * Z[:, M.I_LAC] + P.EIH_DAY_SD * E[:, 1]
    k, sem = _site_sem(cond, eff)
    dev = np.log(ppt) - M.ppt_log_median(cond, sex) - eff.log_scale  # reference units
    e_pre = k * dev + np.sqrt(1.0 - k) * sem * E[:, 2]  # error of the recorded baseline
    eih = eff.fade * (phys + eff.shift * out.G) + 100.0 * (sem * E[:, 3] - e_pre)
    seen, mech_seen = _missingness(rng, site, sites, cond)
    d = Draw(site=site, x=x, duration_months=dur_m, mech=mech, F=F, Z=Z, matrix=matrix,
             values=values, eih=eih, seen=seen, mech_seen=mech_seen, terms=out)
    if retest:
        d.retest = _second_day(rng, d, eff, stable, c[:, M.I_LAC], ppt * np.exp(-e_pre), sem)
    return d


def _site_sem(cond: np.ndarray, eff: SiteEffect) -> tuple[np.ndarray, np.ndarray]:
    """(k, SEM) of one PPT reading at each row's site (log scale)."""
    sem = M.PPT_SEM[cond] * eff.noise
    return sem**2 / M.PPT_LOG_SD[cond] ** 2, sem


def _second_day(rng, d: Draw, eff: SiteEffect, stable, c_lac, true_ppt, sem) -> Retest:
    """The same person, protocol and site on another day: the stable part of the response
    repeats; the day's variation, achieved effort (lactate) and both readings are new.
    Drawn after everything of day 1, so asking for a retest never changes the cohort."""
    n = len(stable)
    E = rng.standard_normal((n, 4))
    z_lac = c_lac + M.PSI[M.I_LAC] * E[:, 0]
    lactate = M.to_values(np.where(np.arange(M.K) == M.I_LAC, z_lac[:, None], 0.0), d.matrix,
                          d.terms.lac_shift)[:, M.I_LAC]
    phys = stable + d.terms.beta_lac * z_lac + P.EIH_DAY_SD * E[:, 1]
    e_pre, e_post = sem * E[:, 2], sem * E[:, 3]
    ppt = np.round(np.clip(true_ppt * np.exp(e_pre), 55.0, 1950.0))
    eih = eff.fade * (phys + eff.shift * d.terms.G) + 100.0 * (e_post - e_pre)
    return Retest(ppt=ppt, lactate=lactate, eih=eih)


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
    idx = M.IDX
    seen[:, idx["bmi_kg_m2"]] = U[:, 0] < p("bmi", o["bmi"])
    seen[:, idx["csi_score"]] = U[:, 1] < p("csi", o["csi"])
    seen[:, idx["paindetect_score"]] = ~pf & (U[:, 2] < p("paindetect", o["paindetect"]))
    seen[:, idx["temporal_summation_nrs"]] = U[:, 3] < p("ts", o["ts"])
    hads = U[:, 4] < p("hads", o["hads"])
    blank = U[:, 5] < o["hads_single_missing"]
    which = U[:, 6] < 0.5
    seen[:, idx["hads_anxiety"]] = hads & ~(blank & which)
    seen[:, idx["hads_depression"]] = hads & ~(blank & ~which)
    seen[:, idx["expected_pain_change_nrs"]] = U[:, 7] < p("expectation", o["expectation"])
    blood = U[:, 8] < p("blood", o["blood"])
    seen[:, idx["bdnf_ng_ml"]] = blood & (U[:, 9] < o["bdnf_given_blood"])
    seen[:, idx["il6_pg_ml"]] = blood & (U[:, 10] < o["il6_given_blood"])
    seen[:, idx["lactate_mmol_l"]] = U[:, 12] < p("lactate", o["lactate"])
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


def draw(n: int, seed: int, n_sites: int = 1, *, world: int = 0, retest: bool = False) -> tuple[Draw, list[Site]]:
    """Everything the simulator draws for the whole cohort (tests and diagnostics)."""
    _check(n, n_sites)
    w = world_of(check_world(world))
    blocks, sites = _blocks(int(n), int(seed), int(n_sites))
    parts = [_draw_block(rng, s, sites, w, retest) for _, rng, s in blocks]
    return _concat(parts), sites


def _concat(parts: list[Draw]) -> Draw:
    def cat(get):
        return np.concatenate([get(p) for p in parts])

    x = M.Required(**{f.name: cat(lambda p, k=f.name: getattr(p.x, k)) for f in fields(M.Required)})
    skip = ("x", "terms", "retest")
    kw = {f.name: cat(lambda p, k=f.name: getattr(p, k)) for f in fields(Draw) if f.name not in skip}
    retest = None
    if parts[0].retest is not None:
        retest = Retest(**{f.name: cat(lambda p, k=f.name: getattr(p.retest, k)) for f in fields(Retest)})
    return Draw(x=x, retest=retest, **kw)


def observed_of(d: Draw) -> Observed:
    """What a clinic records of a draw (the oracle's input)."""
    return Observed(
        x=d.x,
        mech=np.where(d.mech_seen, d.mech, -1).astype(np.int8),
        matrix=np.where(d.seen[:, M.I_BDNF], d.matrix, -1).astype(np.int8),
        values=np.where(d.seen, d.values, np.nan),
    )


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


def simulate(n: int, seed: int, n_sites: int = 1, *, world: int = 0, retest: bool = False):
    """A contract-valid cohort of n people (one randomized bout each) and its exact oracle.

    Returns (cohort, oracle), or (cohort, oracle, retest) with `retest=True`. Cohort and
    retest columns are the contract's fields (subject_id, site, every predictor,
    ppt_post_kpa); the retest is the same people, protocol and site on another day (new
    baseline PPT, lactate and outcome). Oracle columns: subject_id, p_hypoalgesia,
    p_no_change, p_hyperalgesia (the truth for a person at a new site, site effects
    integrated) and p_site_* (the truth at the row's own site), at the default 10 %
    threshold, same row order. `world` selects the values of the parameters the literature
    leaves open (0 = central). The same arguments give the same frames.
    """
    _check(n, n_sites)
    n, seed, n_sites = int(n), int(seed), int(n_sites)
    w = world_of(check_world(world))
    blocks, sites = _blocks(n, seed, n_sites)
    cols: dict[str, np.ndarray] = {}
    day2: dict[str, np.ndarray] = {}
    probs = np.empty((n, 6))

    def run(block) -> None:
        start, rng, site = block
        d = _draw_block(rng, site, sites, w, retest)
        stop = start + len(site)
        block = _columns_of(d)
        for name, v in block.items():
            cols[name][start:stop] = v
        if retest:
            for name, v in retest_columns(block, d).items():
                day2[name][start:stop] = v
        obs = Observed(
            x=d.x, mech=block["pain_mechanism"].astype(np.int8), matrix=block["bdnf_matrix"].astype(np.int8),
            values=np.column_stack([block[name] for name in M.OPTIONAL_NUMERIC]),
        )
        phys = physiology(obs, terms=d.terms, world=w)
        probs[start:stop, :3] = phys.new_site().class_probabilities()
        probs[start:stop, 3:] = phys.at(site_effect_rows(site, sites)).class_probabilities()

    # each block has its own random stream and rows, so threads cannot change the result
    for f in FIELDS:
        if f.name != "subject_id":
            dtype = np.int16 if f.name == "site" else np.int8 if f.kind == "category" else np.float64
            cols[f.name] = np.empty(n, dtype=dtype)
            if retest:
                day2[f.name] = np.empty(n, dtype=dtype)
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
    for j, name in enumerate(ORACLE_COLUMNS[1:]):
        oracle[name] = probs[:, j]
    if retest:
        return cohort, oracle, _frame(day2, n, sites)
    return cohort, oracle
