"""Published-versus-simulated check of a cohort against the targets of docs/science.md.

Subgroup targets use the cohort's own rows. Targets that need a fixed protocol (4, 5,
the person-alone R² of 9, the acute BDNF rise of 12, resting lactate of 13) re-evaluate
the cohort's own people under that protocol with the simulator's structural equations
(a virtual crossover): each person's unrecorded latents are drawn from their exact
conditional distribution given the recorded fields, with fixed-seed noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from data_contracts.fields import RESPONSES
from data_contracts.labels import eih_pct, response_codes
from simulation import calibration2 as C2
from simulation import model as M
from simulation import params as P
from simulation.oracle import Observed, new_site, observed_from_frame, predictive
from simulation.world import world as world_of

REPORT_SEED = 20240613
MSK = ("chronic_low_back_pain", "knee_osteoarthritis", "chronic_neck_pain")
# Modalities with acute EIH data: the person-alone bound (Toomey 2025, one studied protocol)
# is checked there; HIIT and mind-body are priors and are reported beside it.
STUDIED = ("aerobic", "isometric", "dynamic_resistance")


@dataclass
class TargetRow:
    id: str
    target: str
    published: str
    tolerance: str
    simulated: str
    passed: bool | None  # None: not applicable to this input (the row says why)
    method: str
    value: float | None = None


def auroc_macro(y: np.ndarray, proba: np.ndarray) -> float:
    """One-vs-rest macro AUROC (rank formula, ties averaged); classes absent are skipped."""
    aucs = []
    for k in range(proba.shape[1]):
        pos = y == k
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        r = rankdata(proba[:, k])
        aucs.append((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def _d(change: np.ndarray, base: np.ndarray) -> float:
    if len(change) < 3:
        return float("nan")
    return float(np.mean(change) / np.std(base, ddof=1))


def _fmt(v: float, nd: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def _codes(values, cats) -> list[int]:
    return [cats.index(v) for v in values]


class _Cohort:
    def __init__(self, df: pd.DataFrame, world: int = 0):
        self.df = df
        self.world = world_of(world)
        self.obs: Observed = observed_from_frame(df)
        self.x = self.obs.x
        self.base = self.x.ppt
        self.post = df["ppt_post_kpa"].to_numpy(dtype="float64")
        self.eih = eih_pct(df).to_numpy()
        self.change = self.post - self.base
        out = M.outcome_terms(self.x, self.world)
        self.Z = M.to_latent(self.obs.values, self.obs.matrix, out.lac_shift)
        self.pred = predictive(self.obs, latent=self.Z, world=self.world)  # at the reference site

    def cond(self, *names: str) -> np.ndarray:
        return np.isin(self.x.cond, _codes(names, M.COND))

    def mod(self, *names: str) -> np.ndarray:
        return np.isin(self.x.mod, _codes(names, M.MOD))

    def at(self, modality: str, inten: float, dur: float):
        x0 = self.x.with_protocol(M.MOD.index(modality), inten, dur)
        obs0 = Observed(x=x0, mech=self.obs.mech, matrix=self.obs.matrix, values=self.obs.values)
        return predictive(obs0, latent=self.Z, world=self.world)


AEROBIC_MODERATE_HRMAX = 70.0  # % HRmax, about 52 % VO2max (Swain 1994): "moderate to high"


def _moderate_high_aerobic(c: _Cohort) -> np.ndarray:
    return c.mod("aerobic") & (c.x.inten >= AEROBIC_MODERATE_HRMAX) & (c.x.dur >= 10)


def calibration_report(df: pd.DataFrame, seed: int = REPORT_SEED, *, retest: pd.DataFrame | None = None,
                       world: int = 0) -> dict:
    """Every target's published and simulated value, tolerance and pass/fail, plus the
    oracle's macro AUROC and the R² figures. `df` must hold ppt_post_kpa; `retest` (the
    same people on another day, `eih simulate --retest`) enables targets 14a-c; `world` is
    the world the cohort was simulated in."""
    if "ppt_post_kpa" not in df.columns or df["ppt_post_kpa"].isna().any():
        raise ValueError("the cohort needs ppt_post_kpa on every row (a simulated cohort)")
    c = _Cohort(df, world)
    rng = np.random.default_rng(seed)
    rows: list[TargetRow] = []

    def add(id_, target, published, tolerance, simulated, passed, method, value=None):
        rows.append(TargetRow(id_, target, published, tolerance, simulated, None if passed is None else bool(passed),
                              method, None if value is None or not np.isfinite(value) else float(value)))

    _laboratory_targets(c, rng, add)
    # 9: variance explained
    r2_all = _r2(c.eih, c.pred.mean())
    person = _person_alone(c)
    studied = {k: v for k, v in person["within_condition"].items() if k.split(" @ ")[1] in STUDIED}
    worst = max(studied.items(), key=lambda kv: kv[1], default=("too few rows", float("nan")))
    add("9a", "EIH variance explained by the person alone, protocol fixed (R², within condition)", "< 0.20 (Toomey 2025)",
        "< 0.20", f"max {_fmt(worst[1], 3)} ({worst[0]}); whole cohort {_fmt(person['pooled_max'], 3)}",
        worst[1] < 0.20, "virtual crossover, exact", worst[1])
    add("9b", "EIH variance explained by everything, protocol included (R²)", "<= 0.40", "<= 0.40", _fmt(r2_all, 3),
        r2_all <= 0.40, "cohort rows, oracle mean", r2_all)

    _marginal_targets(c, rng, add)
    C2.retest_rows(c, retest, add)
    C2.threshold_rows(add)
    C2.cpm_rows(c, _moderate_high_aerobic, MSK, add)
    C2.site_rows(c, add)
    worlds = C2.world_rows(c, add)

    y = response_codes(c.eih)
    auc = auroc_macro(y, c.pred.class_probabilities())
    auc_new = auroc_macro(y, new_site(c.obs, latent=c.Z, world=c.world).class_probabilities())
    return {
        "n_rows": int(len(df)),
        "world": c.world.index,
        "targets": [asdict(r) for r in rows],
        "all_passed": all(r.passed is not False for r in rows),
        "oracle_auroc_macro": auc,
        "oracle_auroc_macro_new_site": auc_new,
        "world_means": worlds,
        "r2_everything": r2_all,
        "r2_person_alone": person,
        "class_shares": {r: float(np.mean(y == k)) for k, r in enumerate(RESPONSES)},
        "class_shares_by_threshold": class_shares_by_threshold(c.eih),
    }


SHARE_THRESHOLDS_PCT = (5.0, 10.0, 15.0, 20.0, 30.0)
"""Label thresholds the report shows class shares for: the default 10 % up to about the smallest
detectable change of one PPT re-test (about 30 %)."""


def class_shares_by_threshold(eih: np.ndarray, thresholds=SHARE_THRESHOLDS_PCT) -> dict[str, dict[str, float]]:
    """{threshold: {class: share}}: how the three classes move with `eih train --label-threshold-pct`."""
    out = {}
    for t in thresholds:
        y = response_codes(eih, t)
        out[f"{t:g}"] = {r: float(np.mean(y == k)) for k, r in enumerate(RESPONSES)}
    return out



def _laboratory_targets(c: _Cohort, rng: np.random.Generator, add) -> None:
    """Targets 1-8: effect sizes and subgroup means of published laboratory studies."""
    pf = c.cond("pain_free")
    # 1-3: pain-free, pre-to-post d by modality (cohort rows)
    for id_, label, sel, pub, lo, hi in (
        ("1", "pain-free, isometric: d", pf & c.mod("isometric"), "~1.0 (0.7-1.3)", 0.7, 1.3),
        ("2", "pain-free, dynamic resistance: d", pf & c.mod("dynamic_resistance"), "~0.8 (0.5-1.1)", 0.5, 1.1),
        ("3", "pain-free, aerobic >= 70 % HRmax for >= 10 min: d", pf & _moderate_high_aerobic(c), "~0.4 (0.2-0.6)", 0.2, 0.6),
    ):
        d = _d(c.change[sel], c.base[sel])
        add(id_, label, pub, f"{lo}-{hi}", f"{_fmt(d)} (n={int(sel.sum())})", lo <= d <= hi, "cohort rows", d)

    # 4-5: aerobic dose, virtual crossover of the pain-free people
    def virtual_d(inten, dur):
        p0 = c.at("aerobic", inten, dur)
        e0 = p0.sample(rng)[pf]
        base = c.base[pf]
        return _d(base * e0 / 100.0, base)

    hr50, hr75 = P.hrmax_from_vo2max(50.0), P.hrmax_from_vo2max(75.0)  # 69 and 85 % HRmax
    d50, d75s = virtual_d(hr50, 30), virtual_d(hr75, 10)
    add("4", "aerobic 50 % VO2max (69 % HRmax) x 30 min; 75 % VO2max (85 % HRmax) x 10 min (pain-free): d",
        "~0 (|d| < 0.2)", "|d| < 0.2 both",
        f"{_fmt(d50)}; {_fmt(d75s)}", abs(d50) < 0.2 and abs(d75s) < 0.2, "virtual crossover", max(abs(d50), abs(d75s)))
    d75 = virtual_d(hr75, 30)
    add("5", "aerobic 75 % VO2max (85 % HRmax) x 30 min (pain-free): d", "clear effect (d > 0.3)", "d > 0.3",
        _fmt(d75), d75 > 0.3,
        "virtual crossover", d75)

    # 6: chronic MSK pain (not fibromyalgia), aerobic
    sel = c.cond(*MSK) & _moderate_high_aerobic(c)
    med = float(np.median(c.eih[sel])) if sel.any() else float("nan")
    add("6", "chronic MSK pain (no FM), aerobic >= 70 % HRmax >= 10 min: median PPT change %",
        "~+10 % (2-24 %)", "2-24 %",
        f"{_fmt(med, 1)} % (n={int(sel.sum())})", 2 <= med <= 24, "cohort rows", med)

    # 7: fibromyalgia vs pain-free, standard fixed-intensity exercise
    std = c.mod("isometric") | _moderate_high_aerobic(c)
    fm = c.cond("fibromyalgia") & std
    pfs = pf & std
    m_fm = float(np.mean(c.change[fm])) if fm.any() else float("nan")
    m_pf = float(np.mean(c.change[pfs])) if pfs.any() else float("nan")
    add("7", "fibromyalgia vs pain-free, isometric or aerobic >= 70 % HRmax: mean PPT change kPa",
        "FM < 0 while pain-free > 0", "FM < 0 and pain-free > 0", f"FM {_fmt(m_fm, 1)}; pain-free {_fmt(m_pf, 1)}",
        m_fm < 0 < m_pf, "cohort rows", m_fm)

    # 8: chronic low back pain, local loading
    local = c.mod("isometric", "dynamic_resistance")
    lb = c.cond("chronic_low_back_pain") & local
    m_lb = float(np.mean(c.change[lb])) if lb.any() else float("nan")
    m_pfl = float(np.mean(c.change[pf & local])) if (pf & local).any() else float("nan")
    add("8", "chronic low back pain vs pain-free, local loading (isometric/resistance): mean PPT change kPa",
        "below pain-free, can be < 0 (-14.9 vs +29.8)", "CLBP < pain-free", f"CLBP {_fmt(m_lb, 1)}; pain-free {_fmt(m_pfl, 1)}",
        m_lb < m_pfl, "cohort rows", m_lb)



def _marginal_targets(c: _Cohort, rng: np.random.Generator, add) -> None:
    """Targets 10-13: questionnaire, painDETECT and biomarker marginals."""
    pf = c.cond("pain_free")
    # 10: pain clinic marginals (chronic pain rows)
    pain = ~pf
    pcs, pseq, nrs = (float(np.mean(v[pain])) if pain.any() else float("nan") for v in (c.x.pcs, c.x.pseq, c.x.nrs))
    add("10", "chronic pain rows: PCS, PSEQ, pain NRS means", "PCS ~30, PSEQ ~21, NRS ~6.4",
        "PCS 26-34, PSEQ 17-25, NRS 5.8-7.0", f"PCS {_fmt(pcs, 1)}, PSEQ {_fmt(pseq, 1)}, NRS {_fmt(nrs, 2)}",
        26 <= pcs <= 34 and 17 <= pseq <= 25 and 5.8 <= nrs <= 7.0, "cohort rows", pcs)

    # 11: painDETECT >= 19 in chronic low back pain
    pdv = c.obs.values[:, M.I_PD]
    sel = c.cond("chronic_low_back_pain") & ~np.isnan(pdv)
    share = float(np.mean(pdv[sel] >= 19)) if sel.any() else float("nan")
    add("11", "chronic low back pain: painDETECT >= 19", "~37 %", "30-44 %", f"{_fmt(100 * share, 1)} % (n={int(sel.sum())})",
        0.30 <= share <= 0.44, "cohort rows (recorded)", share)

    # 12: serum BDNF in healthy people, and its acute rise
    bd = c.obs.values[:, M.I_BDNF]
    sel = pf & (c.obs.matrix == M.SERUM) & ~np.isnan(bd)
    mean_b = float(np.mean(bd[sel])) if sel.sum() > 2 else float("nan")
    sd_b = float(np.std(bd[sel], ddof=1)) if sel.sum() > 2 else float("nan")
    g = _bdnf_acute_g(c.Z[sel, M.I_BDNF], rng)
    add("12", "healthy serum BDNF mean +/- SD; acute rise g after one aerobic bout", "32.7 +/- 8.3 ng/mL; g ~0.46",
        "mean 29.7-35.7, SD 5.8-10.8, g 0.30-0.62", f"{_fmt(mean_b, 1)} +/- {_fmt(sd_b, 1)} (n={int(sel.sum())}); g {_fmt(g)}",
        29.7 <= mean_b <= 35.7 and 5.8 <= sd_b <= 10.8 and 0.30 <= g <= 0.62,
        "cohort rows; rise by virtual crossover", mean_b)

    # 13: IL-6 and lactate at rest; lactate rises with intensity
    il6 = c.obs.values[:, M.IDX["il6_pg_ml"]]
    il6_med = float(np.nanmedian(il6)) if (~np.isnan(il6)).any() else float("nan")
    lz = c.Z[:, M.I_LAC]
    lseen = ~np.isnan(lz)
    rest = M._fwd(lz[lseen], *M._lactate_tf(np.zeros(int(lseen.sum())))) if lseen.any() else np.array([np.nan])
    lac_rest = float(np.mean(rest))
    aer = lseen & c.mod("aerobic")
    rho = float(spearmanr(c.obs.values[aer, M.I_LAC], c.x.inten[aer]).statistic) if aer.sum() > 10 else float("nan")
    add("13", "IL-6 median; resting lactate mean; Spearman(lactate, intensity) in aerobic bouts",
        "IL-6 ~2 pg/mL; lactate 1-2 mmol/L at rest, rising with intensity", "IL-6 1-3, lactate 1-2, rho > 0.3",
        f"IL-6 {_fmt(il6_med)}; lactate {_fmt(lac_rest)}; rho {_fmt(rho)}",
        1 <= il6_med <= 3 and 1 <= lac_rest <= 2 and rho > 0.3, "cohort rows; rest by the structural equation", il6_med)


def _r2(y: np.ndarray, m: np.ndarray) -> float:
    ss = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - m) ** 2) / ss) if len(y) > 2 and ss > 0 else float("nan")


def _person_alone(c: _Cohort) -> dict:
    """R² of eih_pct explained by everything recorded about the person, with the protocol
    held fixed at each reference protocol: Var(E[Y|x]) / (Var(E[Y|x]) + E[Var(Y|x)]),
    exact given the cohort's people. Reported within each condition (as in Toomey 2025,
    one clinical population) and for the whole mixed cohort."""
    within: dict[str, float] = {}
    pooled = {}
    for modality, (inten, dur) in P.REFERENCE_PROTOCOLS.items():
        p0 = c.at(modality, inten, dur)
        m, v = p0.mean(), p0.var()
        pooled[modality] = float(np.var(m) / (np.var(m) + np.mean(v))) if len(m) > 1 else float("nan")
        for k, cond in enumerate(M.COND):
            sel = c.x.cond == k
            if sel.sum() < 30:
                continue
            r2 = float(np.var(m[sel]) / (np.var(m[sel]) + np.mean(v[sel])))
            key = f"{cond} @ {modality}"
            within[key] = r2
    return {"within_condition": within, "pooled": pooled, "pooled_max": float(np.max(list(pooled.values())))}


def _bdnf_acute_g(z: np.ndarray, rng: np.random.Generator) -> float:
    if len(z) < 3:
        return float("nan")
    pre = M._fwd(z, *P.BDNF_TF["serum"])
    post = M._fwd(z + P.BDNF_ACUTE_SHIFT + P.BDNF_ACUTE_NOISE * rng.standard_normal(len(z)), *P.BDNF_TF["serum"])
    n = len(z)
    sp = np.sqrt((np.var(pre, ddof=1) + np.var(post, ddof=1)) / 2.0)
    j = 1.0 - 3.0 / (4.0 * (2 * n - 2) - 1.0)
    return float(j * (post.mean() - pre.mean()) / sp)
