"""Training benchmark: wall time and peak memory of a full `eih train` on simulated
cohorts of 20,000 and 100,000 rows, and the chosen model's exact-explanation speed
next to what a user would otherwise do (an untuned default `XGBClassifier()` explained
with `shap.TreeExplainer`) on the same rows, measured in the same run.

    .venv/bin/python benchmarks/train_bench.py [--sizes 20000 100000] [--n-trials 30] [--config FILE]

`--config` is a training config file (TOML or JSON, as for `eih train --config`), for
ablations: for example `derived_features = []` trains on the contract fields only, and
`cost_tolerance = 0.0` takes the best CV candidate whatever it costs to explain.

Each training runs in its own process (fresh peak-RSS counter) against a temporary
MLflow store; the oracle file gives oracle_capture. Prints a table and a markdown
block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_training(n: int, n_trials: int, seed: int, workdir: Path, config: str | None = None) -> dict:
    from simulation import simulate

    cohort, oracle = simulate(n, seed=seed, n_sites=1)
    data, opath = workdir / f"cohort{n}.parquet", workdir / f"cohort{n}.oracle.parquet"
    cohort.to_parquet(data, index=False)
    oracle.to_parquet(opath, index=False)
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{workdir / f'mlflow{n}.db'}",
               MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    code = (
        "import json,resource,sys,time\n"
        "from rich.console import Console\n"
        "from training.config import load_config\n"
        "from training.train import train\n"
        f"t=time.perf_counter(); r=train({str(data)!r}, oracle={str(opath)!r}, cfg=load_config({config!r}, n_trials={n_trials}),"
        f" seed={seed}, console=Console(quiet=True)); wall=time.perf_counter()-t\n"
        "print(json.dumps({'wall_s': wall, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,"
        " 'metrics': r.metrics, 'chosen': r.chosen, 'version': r.model_version}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=workdir, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
    res["data"] = str(data)
    return res


def explain_speed(res: dict, n_rows: int = 5000, repeats: int = 3) -> dict:
    """Chosen model's exact explanations vs default XGBClassifier + shap.TreeExplainer, same rows."""
    import shap
    import xgboost as xgb

    from data_contracts.io import read_table
    from data_contracts.labels import eih_pct, response_codes
    from data_contracts.validate import validate_frame
    from model_runtime.loading import load_model

    os.environ["MLFLOW_TRACKING_URI"] = res["tracking_uri"]
    pred = load_model("models:/eih-responder@champion").predictor
    df = validate_frame(read_table(res["data"])).valid
    y = response_codes(eih_pct(df), 10.0)
    X = pred.transform(df)
    rows = df.iloc[:n_rows]
    Xr = X.iloc[:n_rows]

    def median_rate(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return n_rows / float(np.median(ts))

    ours = median_rate(lambda: pred.explain(rows))
    default = xgb.XGBClassifier(enable_categorical=True, tree_method="hist", n_jobs=2).fit(X, y)
    explainer = shap.TreeExplainer(default)
    theirs = median_rate(lambda: explainer.shap_values(Xr))
    return {"chosen_rows_per_s": ours, "default_shap_rows_per_s": theirs, "ratio": ours / theirs,
            "default_shape": f"{default.n_estimators or 100} rounds x 3, depth {default.max_depth or 6}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--n-trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--config", default=None, help="training config file (TOML/JSON) for an ablation")
    args = ap.parse_args()
    config = str(Path(args.config).resolve()) if args.config else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            res = run_training(n, args.n_trials, args.seed, Path(tmp), config)
            sp = explain_speed(res)
            m = res["metrics"]
            rows.append((n, res, sp, m))
            print(f"n={n}: wall {res['wall_s']:.0f} s, peak RSS {res['peak_rss_mb']:.0f} MiB, "
                  f"oracle_capture {m.get('oracle_capture', float('nan')):.3f}, AUROC {m['test_auroc_macro']:.3f} "
                  f"(oracle {m.get('oracle_test_auroc_macro', float('nan')):.3f}), chosen depth {res['chosen']['max_depth']} "
                  f"x {res['chosen']['n_rounds']} rounds; explain {sp['chosen_rows_per_s']:.0f} rows/s vs default+shap "
                  f"{sp['default_shap_rows_per_s']:.0f} rows/s (x{sp['ratio']:.1f})", flush=True)
    print("\n| rows | trials | wall (s) | peak RSS (MiB) | test log-loss | null | oracle | oracle_capture |"
          " AUROC (model / oracle) | logreg log-loss | chosen shape | best-CV candidate capture |"
          " explain rows/s (chosen) | default XGB + shap rows/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, res, sp, m in rows:
        print(f"| {n} | {args.n_trials} | {res['wall_s']:.0f} | {res['peak_rss_mb']:.0f} | {m['test_log_loss']:.4f} | "
              f"{m['null_test_log_loss']:.4f} | {m['oracle_test_log_loss']:.4f} | {m['oracle_capture']:.3f} | "
              f"{m['test_auroc_macro']:.3f} / {m['oracle_test_auroc_macro']:.3f} | {m['baseline_logreg_test_log_loss']:.4f} | "
              f"depth {res['chosen']['max_depth']} x {res['chosen']['n_rounds']} | "
              f"{m.get('best_cv_candidate_oracle_capture', m['oracle_capture']):.3f} | {sp['chosen_rows_per_s']:.0f} | "
              f"{sp['default_shap_rows_per_s']:.0f} | {sp['ratio']:.1f} |")


if __name__ == "__main__":
    main()
