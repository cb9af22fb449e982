"""Benchmark: `read_table` + `validate_frame` end to end on a large contract file.

Generates (seeded) a valid contract-1.0 cohort of --rows rows from `FIELDS` with a few
planted bad rows, writes it as Parquet and CSV to a temporary directory, then times, in
a fresh subprocess per repetition (so peak RSS is that of the validating process alone):

- validate: read_table(path) + validate_frame(frame)   (what `eih validate` does)
- reference: the bare pandas read of the same file     (pd.read_parquet / pd.read_csv)

and prints medians, rows/s, peak RSS and the ratio validate / reference. Then, in this
process, `validate_frame` on one 50,000-row chunk of the same rows with its vectorized
pre-screen (pandera sees only the doubtful rows) and without it (pandera checks every
row), interleaved, median of 7: the pre-screen's speed-up.

    .venv/bin/python benchmarks/validate_bench.py                  # 1,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/validate_bench.py --rows 200000 --repeat 5 --formats parquet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AIM_ROWS_PER_S = 200_000
AIM_PEAK_BYTES = 2 * 1024**3


# --- data -------------------------------------------------------------------------------


def generate(n: int, seed: int = 20240601):
    """n valid rows from FIELDS (cross-field rules respected) plus planted bad rows;
    returns (frame, sorted 1-based rows that must be rejected)."""
    import numpy as np
    import pandas as pd

    from data_contracts.fields import BY_NAME, FIELDS

    rng = np.random.default_rng(seed)
    cols = {}
    for f in FIELDS:
        if f.name == "subject_id":
            cols[f.name] = pd.array([f"P{i:08d}" for i in range(n)], dtype="str")
            continue
        if f.name == "site":
            vals = rng.choice(np.array(["site_A", "site_B", "site_C", "site_D"], dtype=object), n)
        elif f.kind == "number":
            vals = np.round(rng.uniform(f.min, f.max, n), 2).clip(f.min, f.max)
        else:
            vals = rng.choice(np.array(f.categories, dtype=object), n)
        if not f.required:  # optional values are often missing (biomarkers most of all)
            rate = 0.7 if f.name in ("bdnf_ng_ml", "lactate_mmol_l", "il6_pg_ml") else 0.2
            miss = rng.random(n) < rate
            if f.kind == "number":
                vals[miss] = np.nan
            else:
                vals = vals.astype(object)
                vals[miss] = None
        cols[f.name] = vals
    pain_free = cols["pain_condition"] == "pain_free"
    dur = cols["pain_duration_months"]
    dur[pain_free] = 0.0
    short = ~pain_free & (dur < 3)
    dur[short] = 3.0 + dur[short]
    mech = cols["pain_mechanism"]
    mech[pain_free & (mech != None)] = "none"  # noqa: E711 - elementwise on an object array
    not_none = [c for c in BY_NAME["pain_mechanism"].categories if c != "none"]
    fix = ~pain_free & (mech == "none")
    mech[fix] = rng.choice(np.array(not_none, dtype=object), int(fix.sum()))
    bdnf, matrix = cols["bdnf_ng_ml"], cols["bdnf_matrix"]
    matrix[~np.isnan(bdnf) & (matrix == None)] = "serum"  # noqa: E711
    plasma = (matrix == "plasma") & ~np.isnan(bdnf)
    bdnf[plasma] = np.round(rng.uniform(0.01, 5.0, int(plasma.sum())), 2)

    df = pd.DataFrame(cols)
    # planted bad rows of assorted kinds (one problem each, the duplicate pair is two rows)
    bad = sorted(int(p) for p in rng.choice(n, size=12, replace=False))
    df.loc[bad[0], "age_years"] = 140.0
    df.loc[bad[1], "sex"] = "unknown"
    df.loc[bad[2], "ppt_baseline_kpa"] = 4.2  # kgf/cm² slip
    df.loc[bad[3], "exercise_intensity_pct"] = 0.7  # fraction slip
    df.loc[bad[4], ["bdnf_ng_ml", "bdnf_matrix"]] = [180.0, "serum"]  # pg/mL slip
    df.loc[bad[5], "lactate_mmol_l"] = 80.0  # mg/dL slip
    df.loc[bad[6], ["pain_condition", "pain_mechanism", "pain_duration_months"]] = ["pain_free", "none", 12.0]
    df.loc[bad[7], ["pain_condition", "pain_mechanism", "pain_duration_months"]] = ["fibromyalgia", "none", 24.0]
    df.loc[bad[8], "pcs_total"] = None
    df.loc[bad[9], "subject_id"] = "has space"
    df.loc[bad[11], "subject_id"] = df.loc[bad[10], "subject_id"]  # duplicate pair
    return df, [p + 1 for p in bad]


# --- child processes --------------------------------------------------------------------


def _peak_rss_bytes() -> int:
    """Peak resident set of this process. VmHWM belongs to this process's own address
    space; getrusage's ru_maxrss would also carry the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(mode: str, path: str, warmup_path: str) -> None:
    import pandas as pd

    if mode == "validate":
        from data_contracts.io import read_table
        from data_contracts.validate import validate_frame

        # one-off cost of the first validation in a process (pandera registers its
        # backends lazily, importing hypothesis when it is installed): measured apart
        w0 = time.perf_counter()
        validate_frame(read_table(warmup_path))  # a 5-row file of the same format
        warmup = time.perf_counter() - w0
        rss0 = _peak_rss_bytes()
        c0 = _cpu_s()
        t0 = time.perf_counter()
        frame = read_table(path)
        t1 = time.perf_counter()
        report = validate_frame(frame)
        t2 = time.perf_counter()
        out = {
            "seconds": t2 - t0,
            "cpu_s": _cpu_s() - c0,
            "first_call_overhead_s": warmup,
            "read_s": t1 - t0,
            "validate_s": t2 - t1,
            "rows": report.n_rows,
            "valid": report.n_valid,
            "rejected": report.n_rejected,
            "rejected_rows": [int(r) for r in report.rejected_rows],
        }
    else:
        rss0 = _peak_rss_bytes()
        c0 = _cpu_s()
        t0 = time.perf_counter()
        frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        out = {"seconds": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0, "rows": len(frame)}
    out["peak_rss"] = _peak_rss_bytes()
    out["rss_after_imports"] = rss0
    print(json.dumps(out))


def run_child(mode: str, path: Path) -> dict:
    warmup = path.with_name("warmup" + path.suffix)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(warmup)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- driver -----------------------------------------------------------------------------


def _mib(b: float) -> str:
    return f"{b / 1024**2:,.0f} MiB"


def bench(rows: int, repeat: int, formats: list[str], workdir: Path) -> list[dict]:
    from data_contracts.io import write_table

    t0 = time.perf_counter()
    df, planted = generate(rows)
    print(f"generated {rows:,} rows ({len(planted)} planted bad rows) in {time.perf_counter() - t0:.1f} s")
    paths = {}
    for fmt in formats:
        p = workdir / f"cohort.{fmt}"
        t0 = time.perf_counter()
        write_table(df, p)
        write_table(df.head(5), p.with_name("warmup" + p.suffix))
        paths[fmt] = p
        print(f"wrote {p.name}: {p.stat().st_size / 1024**2:,.0f} MiB in {time.perf_counter() - t0:.1f} s")
    del df

    results = []
    for fmt, p in paths.items():
        val = [run_child("validate", p) for _ in range(repeat)]
        ref = [run_child("reference", p) for _ in range(repeat)]
        for r in val:
            assert r["rows"] == rows, r
            assert r["rejected_rows"] == planted, (r["rejected_rows"], planted)
            assert r["valid"] + r["rejected"] == r["rows"]
        med = statistics.median(r["seconds"] for r in val)
        ref_med = statistics.median(r["seconds"] for r in ref)
        res = {
            "format": fmt,
            "rows": rows,
            "median_s": med,
            "all_s": [round(r["seconds"], 2) for r in val],
            "median_read_s": statistics.median(r["read_s"] for r in val),
            "median_validate_s": statistics.median(r["validate_s"] for r in val),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in val),
            "first_call_overhead_s": statistics.median(r["first_call_overhead_s"] for r in val),
            "ref_median_cpu_s": statistics.median(r["cpu_s"] for r in ref),
            "rows_per_s": rows / med,
            "peak_rss": max(r["peak_rss"] for r in val),
            "rss_after_imports": statistics.median(r["rss_after_imports"] for r in val),
            "ref_median_s": ref_med,
            "ref_all_s": [round(r["seconds"], 2) for r in ref],
            "ref_peak_rss": max(r["peak_rss"] for r in ref),
            "ratio": med / ref_med,
            "rejected": val[0]["rejected"],
        }
        results.append(res)
        ok = res["rows_per_s"] >= AIM_ROWS_PER_S and res["peak_rss"] < AIM_PEAK_BYTES
        print(
            f"\n[{fmt}] read_table+validate_frame, median of {repeat}: {med:.2f} s "
            f"(runs {res['all_s']}; read {res['median_read_s']:.2f} s + validate {res['median_validate_s']:.2f} s)\n"
            f"[{fmt}] throughput {res['rows_per_s']:,.0f} rows/s (CPU time {res['median_cpu_s']:.2f} s: "
            f"{rows / res['median_cpu_s']:,.0f} rows per CPU-second); peak RSS {_mib(res['peak_rss'])} "
            f"(before reading {_mib(res['rss_after_imports'])}); rejected {res['rejected']} rows as planted\n"
            f"[{fmt}] one-off first-validation overhead per process (not in the time above): "
            f"{res['first_call_overhead_s']:.2f} s\n"
            f"[{fmt}] reference bare pandas read, median of {repeat}: {ref_med:.2f} s (runs {res['ref_all_s']}; "
            f"CPU {res['ref_median_cpu_s']:.2f} s), peak RSS {_mib(res['ref_peak_rss'])}\n"
            f"[{fmt}] ratio validate/reference: {res['ratio']:.1f}x   "
            f"aim >= {AIM_ROWS_PER_S:,} rows/s and < 2 GiB: {'met' if ok else 'MISSED'}"
        )
    return results


def prescreen_speedup(rows: int = 50_000, repeat: int = 7) -> dict:
    """validate_frame with and without its pre-screen on the same chunk (same answer)."""
    import data_contracts.validate as v

    df, _ = generate(rows)
    v.validate_frame(df.head(100))  # one-off imports out of the timing
    with_, without = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        fast = v.validate_frame(df)
        with_.append(time.perf_counter() - t)
        t = time.perf_counter()
        slow = v.validate_frame(df, prescreen=False)
        without.append(time.perf_counter() - t)
    assert fast.problems.equals(slow.problems) and fast.n_valid == slow.n_valid
    a, b = statistics.median(with_), statistics.median(without)
    print(f"\n[pre-screen] validate_frame on {rows:,} rows ({fast.n_rejected} planted bad), median of {repeat}: "
          f"{a * 1e3:.0f} ms with the pre-screen vs {b * 1e3:.0f} ms without = {b / a:.2f}x faster "
          f"({rows / a:,.0f} vs {rows / b:,.0f} rows/s)")
    return {"mode": "prescreen", "rows": rows, "with_s": a, "without_s": b, "speedup": b / a}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default="parquet,csv", help="comma-separated: parquet,csv")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "WARMUP_PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.repeat < 3:
        ap.error("--repeat must be >= 3 (medians)")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB RAM, {platform.platform()}"
    )
    with tempfile.TemporaryDirectory(prefix="validate_bench_") as tmp:
        results = bench(args.rows, args.repeat, [f.strip() for f in args.formats.split(",") if f.strip()], Path(tmp))
    results.append(prescreen_speedup())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
