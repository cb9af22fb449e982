"""Second-round targets (14-18 of docs/science.md): test-retest reliability, intensity
units, the CPM link in chronic pain, sites and worlds.

Each function returns rows for `calibration.calibration_report`; a row whose figure needs
data the report was not given (a retest file, two or more sites) is marked not applicable
(passed None) and says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.labels import eih_pct
from simulation import model as M
from simulation import params as P
from simulation.sites import REFERENCE
from simulation.world import world as world_of

N_WORLDS = 20
RESPONDER_PCT = 10.0  # the contract's default threshold: a "responder" shows eih_pct >= 10


def icc_agreement(y1: np.ndarray, y2: np.ndarray) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, one measurement per day."""
    Y = np.column_stack([y1, y2])
    n = len(Y)
    if n < 3:
        return float("nan")
    grand = Y.mean()
    rows, cols = Y.mean(axis=1), Y.mean(axis=0)
    msr = 2.0 * np.sum((rows - grand) ** 2) / (n - 1)
    msc = n * np.sum((cols - grand) ** 2)
    mse = np.sum((Y - rows[:, None] - cols[None, :] + grand) ** 2) / (n - 1)
    return float((msr - mse) / (msr + mse + 2.0 * (msc - mse) / n))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary ratings."""
    if len(a) < 3:
        return float("nan")
    po = np.mean(a == b)
    pe = np.mean(a) * np.mean(b) + np.mean(~a) * np.mean(~b)
    return float((po - pe) / (1.0 - pe)) if pe < 1 else float("nan")


def _strata(c) -> list[tuple[str, np.ndarray]]:
    pf = c.cond("pain_free")
    out = []
    for mod in M.MOD:
        for name, grp in (("pain-free", pf), ("chronic pain", ~pf)):
            sel = c.mod(mod) & grp
            if sel.sum() >= 200:
                out.append((f"{mod}, {name}", sel))
    return out


def retest_rows(c, retest: pd.DataFrame | None, add) -> None:
    """14a-c: ICC and responder kappa of eih_pct within each modality x group stratum; SEM
    of the baseline PPT between days, and the smallest detectable change."""
    pub = "Aron et al. 2024"
    if retest is None:
        for id_, what in (("14a", "ICC"), ("14b", "responder kappa"), ("14c", "SEM % of PPT; SDC")):
            add(id_, f"test-retest {what}", pub, "-", "n/a (give --retest FILE)", None, "retest file")
        return
    r = retest.set_index(retest["subject_id"].astype(str)).reindex(c.df["subject_id"].astype(str).to_numpy())
    if r["ppt_post_kpa"].isna().any():
        raise ValueError("the retest file must hold every subject_id of the cohort, with ppt_post_kpa")
    e2 = eih_pct(r.reset_index(drop=True)).to_numpy()
    iccs, kappas = [], []
    for _, sel in _strata(c):
        iccs.append(icc_agreement(c.eih[sel], e2[sel]))
        kappas.append(cohen_kappa(c.eih[sel] >= RESPONDER_PCT, e2[sel] >= RESPONDER_PCT))
    iccs, kappas = np.array(iccs), np.array(kappas)

    def span(v):
        return f"median {np.median(v):.2f} (range {v.min():.2f} to {v.max():.2f}; {len(v)} strata)" if len(v) else "n/a"

    ok_icc = len(iccs) > 0 and -0.05 <= iccs.min() and iccs.max() <= 0.61 and 0 <= np.median(iccs)
    add("14a", "test-retest ICC(2,1) of eih_pct, within modality x pain group", "ICC 0-0.61 (" + pub + ")",
        "every stratum <= 0.61 (>= -0.05 for sampling), median >= 0", span(iccs), ok_icc, "cohort + retest rows",
        float(np.median(iccs)) if len(iccs) else None)
    ok_k = len(kappas) > 0 and 0.01 <= np.median(kappas) and kappas.max() <= 0.46
    add("14b", "test-retest responder kappa (eih_pct >= 10 % on both days)", "kappa 0.01-0.46 (" + pub + ")",
        "every stratum <= 0.46, median >= 0.01", span(kappas), ok_k, "cohort + retest rows",
        float(np.median(kappas)) if len(kappas) else None)
    p1 = c.base
    p2 = r["ppt_baseline_kpa"].to_numpy(dtype="float64")
    sems = []
    for k in range(len(M.COND)):
        sel = c.x.cond == k
        if sel.sum() >= 50:
            sems.append(100.0 * np.std(p2[sel] - p1[sel], ddof=1) / np.sqrt(2.0) / np.mean((p1[sel] + p2[sel]) / 2.0))
    sems = np.array(sems)
    sdc = 1.96 * np.sqrt(2.0) * sems
    ok_sem = len(sems) > 0 and 10.0 <= sems.min() and sems.max() <= 21.0
    add("14c", "SEM of baseline PPT between days, % of PPT, by condition; SDC = 1.96 sqrt(2) SEM",
        "SEM 10-21 % (" + pub + "); SDC about 28-58 %", "SEM 10-21 % in every condition",
        f"SEM {sems.min():.1f}-{sems.max():.1f} %; SDC {sdc.min():.0f}-{sdc.max():.0f} %" if len(sems) else "n/a",
        ok_sem, "cohort + retest rows", float(np.max(sems)) if len(sems) else None)


def threshold_rows(add) -> None:
    """15: where the simulator's aerobic dose gain starts and saturates (30 min), in % HRmax."""
    grid = np.arange(40.0, 100.01, 0.25)
    mod = np.full(len(grid), M.MOD.index("aerobic"))
    G, _, _ = M.protocol_terms(mod, grid, np.full(len(grid), 30.0))
    full_gain = G.max() / 1.25
    onset = float(grid[G <= 1e-12].max())
    full = float(grid[G >= full_gain - 1e-9].min())
    want_on, want_full = P.hrmax_from_vo2max(P.AEROBIC_VO2_ONSET), P.hrmax_from_vo2max(P.AEROBIC_VO2_FULL)
    add("15", "aerobic dose thresholds (30 min) in % HRmax: last intensity without EIH; first at the full effect",
        f"{want_on:.0f} % HRmax (50 % VO2max) and {want_full:.0f} % HRmax (75 % VO2max), Swain 1994 + Hoffman 2004",
        "each within 1 point", f"{onset:.1f} and {full:.1f} % HRmax",
        abs(onset - want_on) <= 1 and abs(full - want_full) <= 1, "structural equation", onset)


def cpm_rows(c, moderate_high_aerobic, msk, add) -> None:
    """16a: impaired vs normal CPM in chronic musculoskeletal pain; 16b: r(CPM, EIH) in pain-free people."""
    chronic = c.cond(*msk)
    imp = c.x.cpm < 0
    parts, ok = [], True
    for label, sel in (("aerobic", moderate_high_aerobic(c)), ("isometric", c.mod("isometric"))):
        a, b = chronic & sel & imp, chronic & sel & ~imp
        m_imp = float(np.mean(c.change[a])) if a.sum() > 5 else float("nan")
        m_nor = float(np.mean(c.change[b])) if b.sum() > 5 else float("nan")
        ok = ok and m_imp < 0 < m_nor
        parts.append(f"{label}: impaired {m_imp:.1f} (n={int(a.sum())}), normal {m_nor:.1f}")
    add("16a", "chronic MSK pain, mean PPT change kPa by CPM group (cpm_pct < 0 impaired); aerobic >= 70 % HRmax, isometric",
        "impaired < 0 < normal after aerobic and isometric (Fingleton et al. 2017)", "impaired < 0 < normal, both",
        "; ".join(parts), ok, "cohort rows")
    pf = c.cond("pain_free")
    r = float(np.corrcoef(c.x.cpm[pf], c.eih[pf])[0, 1]) if pf.sum() > 10 else float("nan")
    add("16b", "pain-free people: Pearson r(CPM, eih_pct)", "loose (small positive)", "0 <= r < 0.2",
        f"{r:.3f} (n={int(pf.sum())})", 0 <= r < 0.2, "cohort rows", r)


def site_rows(c, add) -> None:
    """17: between-site SD of mean eih_pct after case-mix adjustment (observed minus the
    reference-site truth of the same people)."""
    sites = c.df["site"].astype(str).to_numpy() if "site" in c.df.columns else np.array(["?"] * len(c.eih))
    names = np.unique(sites)
    if len(names) < 2:
        add("17", "between-site SD of case-mix-adjusted mean eih_pct", "no published size (assumption 1-10 points)",
            "-", "n/a (one site)", None, "cohort rows by site")
        return
    resid = c.eih - c.pred.mean()
    means = np.array([resid[sites == s].mean() for s in names])
    sd = float(np.std(means, ddof=1))
    add("17", "between-site SD of case-mix-adjusted mean eih_pct (% points)", "no published size (assumption)",
        "1-10 points", f"{sd:.2f} over {len(names)} sites (site means {means.min():.1f} to {means.max():.1f})",
        1.0 <= sd <= 10.0, "cohort rows minus the reference-site oracle", sd)


def world_rows(c, add) -> dict:
    """18: mean eih_pct of the cohort's people at the HIIT and mind-body reference protocols
    (reference site) in worlds 0-19: the spread is the prior's honest width."""
    from simulation.oracle import Observed, physiology

    out = {}
    for modality, need in (("hiit", 10.0), ("mind_body", 5.0)):
        inten, dur = P.REFERENCE_PROTOCOLS[modality]
        x0 = c.x.with_protocol(M.MOD.index(modality), inten, dur)
        obs0 = Observed(x=x0, mech=c.obs.mech, matrix=c.obs.matrix, values=c.obs.values)
        means = np.array([physiology(obs0, latent=c.Z, world=world_of(w)).at(REFERENCE).mean().mean()
                          for w in range(N_WORLDS)])
        out[modality] = means.tolist()
        span = float(means.max() - means.min())
        add(f"18{'a' if modality == 'hiit' else 'b'}",
            f"{modality}: mean eih_pct at {inten:.0f} % x {dur:.0f} min across {N_WORLDS} worlds",
            "no acute EIH data: a wide prior", f"range >= {need:.0f} points (assumption)",
            f"world 0 {means[0]:.1f}; SD {np.std(means, ddof=1):.1f}; range {means.min():.1f} to {means.max():.1f}",
            span >= need, "virtual crossover, exact per world", span)
    return out
