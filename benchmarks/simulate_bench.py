"""Benchmark: `simulation.simulate` (cohort + exact oracle, in memory) on 1,000,000 rows.

Each repetition runs in a fresh subprocess (so peak RSS is that process's own) and times

- simulate:   simulate(rows, seed)          the cohort frame and the exact oracle
- draws:      the bare numpy random draws the simulator makes for the same rows
              (21 standard normals + 20 uniforms per row, one Generator)
- parquet:    writing the simulated cohort to Parquet (data_contracts.io.write_table)

and prints medians, rows/s, the ratios simulate / draws and simulate / parquet, and peak
RSS. The aim is at least 200,000 rows/s on 2 cores. `--record` appends the result, with
`date` and the machine, to benchmarks/RESULTS.md under "## Simulator".

    .venv/bin/python benchmarks/simulate_bench.py                    # 1,000,000 rows, 5 repeats
    .venv/bin/python benchmarks/simulate_bench.py --rows 200000 --repeat 3
    .venv/bin/python benchmarks/simulate_bench.py --record
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AIM_ROWS_PER_S = 200_000
NORMALS_PER_ROW = 21  # 10 person draws + 10 optional-field latents + 1 outcome noise
UNIFORMS_PER_ROW = 20  # 7 categorical/protocol draws + 13 missingness draws
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Simulator"


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, rows: int, seed: int) -> None:
    import numpy as np

    from simulation import simulate

    simulate(1000, seed)  # imports and first-call set-up are not part of the timing
    rss0 = _peak_rss_bytes()
    out: dict = {}
    if mode == "simulate":
        c0 = os.times()
        t0 = time.perf_counter()
        cohort, oracle = simulate(rows, seed)
        out["seconds"] = time.perf_counter() - t0
        c1 = os.times()
        out["cpu_seconds"] = (c1.user - c0.user) + (c1.system - c0.system)
        assert len(cohort) == rows and len(oracle) == rows
    elif mode == "draws":
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((rows, NORMALS_PER_ROW))
        b = rng.random((rows, UNIFORMS_PER_ROW))
        out["seconds"] = time.perf_counter() - t0
        del a, b
    elif mode == "parquet":
        from data_contracts.io import write_table

        cohort, _ = simulate(rows, seed)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            write_table(cohort, Path(d) / "cohort.parquet")
            out["seconds"] = time.perf_counter() - t0
    else:  # pragma: no cover
        raise SystemExit(f"unknown mode {mode}")
    out["peak_rss"] = _peak_rss_bytes()
    out["rss_after_imports"] = rss0
    print(json.dumps(out))


def run_child(mode: str, rows: int, seed: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rows", str(rows), "--seed", str(seed)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 0
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    gib = math.ceil(mem_kib / 1024**2) if mem_kib else 0
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    return f"{cores} cores, {gib} GiB (load average {load:.1f} at start)"


def _mib(b: float) -> str:
    return f"{b / 1024**2:,.0f} MiB"


def bench(rows: int, repeat: int, seed: int) -> dict:
    load = machine()
    sims = [run_child("simulate", rows, seed + i) for i in range(repeat)]
    draws = [run_child("draws", rows, seed + i) for i in range(repeat)]
    parq = [run_child("parquet", rows, seed + i) for i in range(repeat)]
    med = statistics.median(r["seconds"] for r in sims)
    d_med = statistics.median(r["seconds"] for r in draws)
    p_med = statistics.median(r["seconds"] for r in parq)
    return {
        "rows": rows,
        "repeat": repeat,
        "machine": load,
        "threads": os.environ.get("EIH_SIM_THREADS", "default (one per core, at most 4)"),
        "median_s": med,
        "all_s": [round(r["seconds"], 2) for r in sims],
        "rows_per_s": rows / med,
        "cpu_median_s": statistics.median(r["cpu_seconds"] for r in sims),
        "draws_median_s": d_med,
        "parquet_median_s": p_med,
        "ratio_to_draws": med / d_med,
        "ratio_to_parquet": med / p_med,
        "peak_rss": max(r["peak_rss"] for r in sims),
        "rss_after_imports": statistics.median(r["rss_after_imports"] for r in sims),
        "aim_met": rows / med >= AIM_ROWS_PER_S,
    }


def report(res: dict) -> str:
    return "\n".join([
        f"simulate({res['rows']:,} rows) + exact oracle: median {res['median_s']:.2f} s over {res['repeat']} runs "
        f"{res['all_s']} -> {res['rows_per_s']:,.0f} rows/s (aim >= {AIM_ROWS_PER_S:,}: "
        f"{'met' if res['aim_met'] else 'NOT met'})",
        f"CPU time of simulate (user + sys, all threads): median {res['cpu_median_s']:.2f} s "
        f"= {res['rows'] / res['cpu_median_s']:,.0f} rows per CPU-second",
        f"reference, bare numpy draws ({NORMALS_PER_ROW} normals + {UNIFORMS_PER_ROW} uniforms per row): median "
        f"{res['draws_median_s']:.2f} s; simulate / draws = {res['ratio_to_draws']:.1f}x",
        f"reference, writing the cohort to Parquet: median {res['parquet_median_s']:.2f} s; "
        f"simulate / parquet write = {res['ratio_to_parquet']:.2f}x",
        f"peak RSS {_mib(res['peak_rss'])} (after imports {_mib(res['rss_after_imports'])}); "
        f"machine {res['machine']}; threads {res['threads']}",
    ])


def record(res: dict) -> None:
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    entry = "\n".join([
        f"### {date}: simulate {res['rows']:,} rows (`benchmarks/simulate_bench.py`)",
        "",
        f"- machine: {res['machine']}; Python {sys.version.split()[0]}; threads {res['threads']}",
        f"- simulate + exact oracle (in memory), median of {res['repeat']} fresh processes: "
        f"**{res['median_s']:.2f} s = {res['rows_per_s']:,.0f} rows/s** (aim >= {AIM_ROWS_PER_S:,}: "
        f"{'met' if res['aim_met'] else 'not met'}); runs {res['all_s']}",
        f"- CPU time of simulate (user + sys, all threads): median {res['cpu_median_s']:.2f} s "
        f"({res['rows'] / res['cpu_median_s']:,.0f} rows per CPU-second)",
        f"- reference, bare numpy draws of the same random numbers: median {res['draws_median_s']:.2f} s "
        f"(simulate is {res['ratio_to_draws']:.1f}x that)",
        f"- reference, writing the cohort to Parquet: median {res['parquet_median_s']:.2f} s "
        f"(simulate is {res['ratio_to_parquet']:.2f}x that)",
        f"- peak RSS {_mib(res['peak_rss'])} (after imports {_mib(res['rss_after_imports'])})",
        "",
    ])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{entry}"
    else:
        lines = text.splitlines()
        start = lines.index(SECTION)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        body = "\n".join(lines[:end]).rstrip("\n") + "\n\n" + entry
        rest = "\n".join(lines[end:])
        text = body + ("\n" + rest if rest else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")
    print(f"appended to {RESULTS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    ap.add_argument("--child", choices=["simulate", "draws", "parquet"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rows, args.seed)
        return
    res = bench(args.rows, args.repeat, args.seed)
    print(report(res))
    if args.record:
        record(res)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
