"""Two XGBoost jobs at once on a small machine: OpenMP thread contention.

XGBoost's OpenMP threads spin while they wait for work. When two processes each use
every core (two trainings, a training beside `eih score`), the spinning threads steal
each other's cores and both jobs slow down far more than twice. `OMP_WAIT_POLICY=PASSIVE`
makes waiting threads sleep instead: contention vanishes, but a job alone gets slower.

This script times a small training (16,000 rows x 26 features, 4 x 100 depth-3 rounds,
all cores) alone and as a pair of simultaneous processes, with the default wait policy
and with PASSIVE, and as a pair whose jobs each take half the cores, in interleaved repeats, and prints
medians and ratios to the job alone
with the default policy (the reference, measured in the same run).

    .venv/bin/python benchmarks/omp_contention_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

JOB = r"""
import os, time
import numpy as np, xgboost as xgb
rng = np.random.default_rng(0)
X = rng.normal(size=(16000, 26)); y = X[:, 0] * X[:, 1] + rng.normal(size=16000)
d = xgb.DMatrix(X, label=y)
t = time.perf_counter()
for _ in range(4):
    xgb.train({"max_depth": 3, "nthread": int(os.environ.get("JOB_NTHREAD", os.cpu_count())), "tree_method": "hist"},
              d, 100)
print(time.perf_counter() - t)
"""


def run(n_procs: int, passive: bool, nthread: int | None = None) -> float:
    """Seconds of the slowest of `n_procs` simultaneous jobs (their own timers)."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if nthread:
        env["JOB_NTHREAD"] = str(nthread)
    procs = [subprocess.Popen([sys.executable, "-c", JOB], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(n_procs)]
    return max(float(p.communicate()[0].strip()) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    split = max(1, (os.cpu_count() or 2) // 2)
    cases = {("alone", False): [], ("alone", True): [], ("pair", False): [], ("pair", True): [], ("pair-split", False): []}
    for r in range(args.repeats):
        for (kind, passive), out in cases.items():
            out.append(run(1 if kind == "alone" else 2, passive, split if kind == "pair-split" else None))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {'PASSIVE' if p else 'default'} {v[-1]:.2f} s"
                                             for (k, p), v in cases.items()), flush=True)
    ref = statistics.median(cases[("alone", False)])
    print(f"\n{os.cpu_count()} CPUs; medians of {args.repeats}; time of one job (the slower of a pair)\n")
    print("| case | OMP_WAIT_POLICY | seconds | x the job alone (default) |")
    print("|---|---|---:|---:|")
    for (kind, passive), v in cases.items():
        m = statistics.median(v)
        name = {"alone": "one job alone", "pair": "two jobs at once",
                "pair-split": f"two jobs at once, {split} thread(s) each"}[kind]
        print(f"| {name} | {'PASSIVE' if passive else 'default'} "
              f"| {m:.2f} | {m / ref:.1f} |")


if __name__ == "__main__":
    main()
