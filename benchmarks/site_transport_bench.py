"""Does a model trained at some sites transport to another? Simulator 2 gives every site
its own algometer scale, examiner noise, bout-to-retest delay and shift of the mean
response, so a held-out site should show calibration drift, and the tools a user has
(the per-site test metrics of training, and `eih score`'s input drift) should show it.

    python benchmarks/site_transport_bench.py [--n 18000] [--sites 3] [--seed 5] [--trials 10]

Trains on all sites but one (the model never sees the last site), then scores
held-out people of the training sites and every person of the new site, and prints per
site: people, mean predicted vs observed P(hyperalgesia) and P(hypoalgesia)
(calibration in the large), ECE, log-loss against the truth at that site, and the PSI of
the inputs against the model's training reference (the numbers `eih score`'s drift report
shows; PSI >= 0.2 is flagged there), and the coverage of the 80 % and 90 % prediction
intervals (`eih evaluate` flags a site more than 5 points off nominal).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

SITE_ORACLE = ["p_site_hypoalgesia", "p_site_no_change", "p_site_hyperalgesia"]


def main() -> None:
    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from features.reference import psi
    from simulation import simulate
    from training import metrics, steps
    from training.config import TrainConfig
    from training.external import coverage_figures, inside_intervals

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=18000)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    df, oracle = simulate(args.n, seed=args.seed, n_sites=args.sites)
    valid = validate_frame(df).valid.reset_index(drop=True)
    y = response_codes(eih_pct(valid), 10.0).astype("int64")
    oP = oracle.set_index("subject_id").loc[valid["subject_id"], SITE_ORACLE].to_numpy()
    sites = sorted(valid["site"].astype(str).unique())
    new = valid["site"].astype(str).to_numpy() == sites[-1]
    train_rows = np.flatnonzero(~new)
    part = valid.iloc[train_rows].drop(columns=["site"]).reset_index(drop=True)  # a stratified split within
    cfg = TrainConfig(n_trials=args.trials)
    prep = steps.prepare(part, y[train_rows], cfg, args.seed)
    trained = steps.run_steps(prep, cfg, args.seed)
    pred = trained.predictor
    held_same = train_rows[prep.te]
    rows = []
    for name, idx in [(f"training sites {', '.join(sites[:-1])} (held-out people)", held_same),
                      (f"new site {sites[-1]}", np.flatnonzero(new))]:
        d = valid.iloc[idx]
        P = pred.predict_proba(d)
        X = pred.transform(d)
        drift = {f: psi(pred.reference[f], X[f]) for f in ("ppt_baseline_kpa", "cpm_pct", "age_years")}
        cover = coverage_figures(inside_intervals(pred, d))
        rows.append({"people": name, "n": len(idx), "pred_hyper": P[:, 2].mean(), "obs_hyper": np.mean(y[idx] == 2),
                     "pred_hypo": P[:, 0].mean(), "obs_hypo": np.mean(y[idx] == 0), "ece": metrics.ece(y[idx], P),
                     "log_loss": metrics.log_loss(y[idx], P), "truth_log_loss": metrics.log_loss(y[idx], oP[idx]),
                     **{k.replace("interval", "cov").replace("_coverage", ""): v for k, v in cover.items()},
                     **{f"psi_{k}": v for k, v in drift.items()}})
    pd.set_option("display.width", 250)
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
