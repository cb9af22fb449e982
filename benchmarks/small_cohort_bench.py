"""Small-cohort benchmark (issue 16): is the internal validation honest at 300-3,000 people,
and does a site update help?

    .venv/bin/python benchmarks/small_cohort_bench.py [--sizes 300 1000 3000] [--seeds 0 1 2]
        [--n-trials 8] [--repeats 2] [--fresh 20000] [--no-update] [--site-seed 3 [S ...]]

1. For each size and seed: a simulated single-site cohort, trained in memory with repeated
   cross-validation (training.internal.run_resampled), scored on `--fresh` new people of the
   same site: the model's oracle capture (truth = p_site_*) beside the best baseline's (fitted
   on the same cohort), and the card's internal capture estimate (`oracle_capture_expected`,
   from expected log-losses, after the size correction; before it too) beside the fresh figure.
2. A parent model (the largest size, seed 0, trained at the pooled reference site) is updated
   on 200 people of each of 8 simulated sites (one of each site profile: algometer scale,
   examiner noise, minutes between bout and re-test, response shift; training.update_steps,
   step chosen by cross-validation on those 200, fitted by `fit_update`) and scored on fresh
   people of that site:
   capture without and with the update, site by site.
Prints one line per case and a summary; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from data_contracts.labels import eih_pct, response_codes
from data_contracts.validate import validate_frame
from simulation import simulate
from simulation.cohort import sites_for
from training import baselines, internal, metrics, update_steps
from training.config import TrainConfig

SITE = ["p_site_hypoalgesia", "p_site_no_change", "p_site_hyperalgesia"]


def labelled(df, oracle):
    """Valid rows, their labels and the truth at their own site."""
    v = validate_frame(df).valid
    y = response_codes(eih_pct(v), 10.0).astype("int64")
    return v, y, oracle.set_index("subject_id").loc[v["subject_id"], SITE].to_numpy()


def capture(y, P, prior, oP) -> float:
    """Share of the truth's log-loss gain over the training prior that P earns."""
    null = metrics.log_loss(y, np.tile(prior, (len(y), 1)))
    return metrics.oracle_capture(null, metrics.log_loss(y, P), metrics.log_loss(y, oP))


def train_case(n, seed, fresh, cfg):
    """(model, internal capture (point, CI low, CI high, point before the size correction), fresh
    capture, best baseline's fresh capture, seconds)."""
    t0 = time.perf_counter()
    v, y, oP = labelled(*simulate(n, seed=100 + seed, n_sites=1))
    trained = internal.run_resampled(internal.prepare_all(v, y, cfg, seed), cfg, seed, oP)
    fv, fy, foP = fresh
    prior = np.bincount(y, minlength=3) / len(y)
    got = capture(fy, trained.predictor.predict_proba(fv), prior, foP)
    base = baselines.fit_baselines(v, y, fv, seed, cfg.derived_features, cfg.predictors)
    best = max(capture(fy, Q, prior, foP) for k, Q in base.items() if k != "null")
    m = trained.evaluation.metrics
    est = (m["oracle_capture_expected"], m["oracle_capture_expected_ci_low"], m["oracle_capture_expected_ci_high"],
           m["oracle_capture_expected_uncorrected"])
    return trained.predictor, est, got, best, time.perf_counter() - t0


N_SITES = 8  # one site of each simulated site profile


def site_people(seed: int, per_site: int):
    """For each of 8 simulated sites: (its site effects, 200 people to update on, the rest fresh)."""
    df, oracle = simulate(N_SITES * per_site, seed=seed, n_sites=N_SITES)
    out = []
    for site in sites_for(N_SITES, seed):
        v, y, oP = labelled(df.loc[(df["site"] == site.name).to_numpy()], oracle)
        out.append((site.effect, (v.iloc[:200], y[:200]), (v.iloc[200:], y[200:], oP[200:])))
    return out


def update_case(parent, local, fresh, repeats, seed):
    """(step, capture without update, capture with it) on fresh people of one site."""
    (lv, ly), (fv, fy, foP) = local, fresh
    step, _ = update_steps.choose(update_steps.out_of_fold(parent, lv, ly, repeats, 5, seed), ly, seed=seed)
    child = update_steps.fit_update(step, parent, lv, ly)
    prior = np.bincount(ly, minlength=3) / len(ly)
    return step, capture(fy, parent.predict_proba(fv), prior, foP), capture(fy, child.predict_proba(fv), prior, foP)


def main() -> None:
    """Run both parts and print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-trials", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fresh", type=int, default=20000)
    ap.add_argument("--no-update", action="store_true", help="only part 1 (the internal estimate)")
    ap.add_argument("--site-seed", type=int, nargs="+", default=[3],
                    help="seeds of part 2, 8 simulated sites each")
    a = ap.parse_args()
    cfg = TrainConfig(n_trials=a.n_trials, cv_repeats=a.repeats, bootstrap=100, max_rounds=400)
    fresh = labelled(*simulate(a.fresh, seed=999, n_sites=1))
    parent = None
    for n in a.sizes:
        for s in a.seeds:
            model, est, got, best, sec = train_case(n, s, fresh, cfg)
            parent = model if (n == max(a.sizes) and s == a.seeds[0]) else parent
            fam = model.meta.extra["family_choice"]
            scores = ", ".join(f"{k} {v:.4f}" for k, v in fam["log_loss"].items())
            print(f"n={n} seed={s}: family {fam['family']} (out-of-fold log-loss {scores}); fresh capture {got:.3f}"
                  f" (best baseline {best:.3f}; model - baseline {got - best:+.3f}); internal estimate {est[0]:.3f}"
                  f" (error {est[0] - got:+.3f}; 95 % CI {est[1]:.3f}-{est[2]:.3f}"
                  f" {'covers' if est[1] <= got <= est[2] else 'misses'} the fresh figure; before the size correction"
                  f" {est[3]:.3f}, error {est[3] - got:+.3f}); {sec:.0f} s", flush=True)
    if a.no_update:
        return
    per_site = max(2200, a.fresh // 4 + 200)
    diffs = []
    for ss in a.site_seed:
        for effect, local, fresh_site in site_people(ss, per_site):
            step, before, after = update_case(parent, local, fresh_site, a.repeats, ss)
            diffs.append(after - before)
            print(f"site update (scale x{np.exp(effect.log_scale):.2f}, noise x{effect.noise:.2f}, re-test after"
                  f" {effect.delay_min:.0f} min, response shift {effect.shift:+.2f}): step {step}; fresh capture"
                  f" {before:.3f} -> {after:.3f} ({after - before:+.3f})", flush=True)
    d = np.array(diffs)
    big = d[d > 0.05]
    print(f"site updates ({len(d)} sites): largest lift {d.max():+.3f}, worst change {d.min():+.3f} (aim: never below"
          f" -0.02; below it at {(d < -0.02).sum()}), mean {d.mean():+.3f}, median {np.median(d):+.3f}; lifted by more"
          f" than 0.05 at {len(big)}" + (f" ({big.min():+.3f} to {big.max():+.3f})" if len(big) else ""))


if __name__ == "__main__":
    main()
