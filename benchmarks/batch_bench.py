"""Batch-scoring benchmark: `eih score` end to end on 1,000,000 simulated rows, with
`--explain full` and `--explain none`, next to the raw in-process call of the model's
own booster on the same rows (`Booster.predict` and `Booster.predict(pred_contribs=True)`
on a prebuilt DMatrix, all cores), measured in the same run and interleaved so the
machine's noise hits both alike; plus the peak memory of each end-to-end run, and the
service's own explainer (model_runtime/shap_tables.py) in process, which says where the
`--explain full` path gains on the raw call.

    .venv/bin/python benchmarks/batch_bench.py [--rows 1000000] [--repeats 3]
        [--model URI] [--n-trials 10] [--chunk-rows 50000] [--dask] [--workdir DIR]

Without --model a model is trained first (20,000 simulated rows, the project's training
code, --n-trials search trials) into a temporary MLflow store; with --model the URI is
read from MLFLOW_TRACKING_URI (or the project store). Each end-to-end run is a fresh
`python -m eih.cli score` process (Python start-up, imports, model loading, the
subject_id pass, validation, scoring, writing, the cohort report and the MLflow run all
included), its wall time measured from outside and its memory sampled over the whole
process tree (workers included with --dask). Prints a table and a markdown block for
benchmarks/RESULTS.md; the raw numbers go to WORKDIR/batch_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 100_000


def make_cohort(path: Path, rows: int, seed: int) -> None:
    """`rows` simulated rows in blocks (unique subject_ids), written as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulation import simulate

    writer = None
    done = 0
    b = 0
    while done < rows:
        n = min(BLOCK, rows - done)
        cohort, _ = simulate(n, seed=seed + b, n_sites=4)
        cohort = cohort.drop(columns=["ppt_post_kpa"])
        cohort["subject_id"] = [f"B{b:03d}-{i:06d}" for i in range(n)]
        table = pa.Table.from_pandas(cohort, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
        done += n
        b += 1
    writer.close()


def train_model(workdir: Path, n_trials: int, seed: int) -> str:
    from simulation import simulate

    cohort, oracle = simulate(20_000, seed=seed, n_sites=1)
    data, opath = workdir / "train.parquet", workdir / "train.oracle.parquet"
    cohort.to_parquet(data, index=False)
    oracle.to_parquet(opath, index=False)
    code = (
        "from rich.console import Console\n"
        "from training.config import load_config\n"
        "from training.train import train\n"
        f"r = train({str(data)!r}, oracle={str(opath)!r}, cfg=load_config(None, n_trials={n_trials}), seed={seed},"
        " console=Console(quiet=True))\n"
        "print('version', r.model_version)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=workdir, check=True, capture_output=True, text=True)
    return "models:/eih-responder@champion"


class TreeMemory:
    """Peak resident memory of a process and all its children, sampled every 0.1 s."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(0.1)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak / 2**20


def end_to_end(data: Path, out: Path, explain: str, chunk_rows: int, env: dict, model: str,
               dask: bool = False) -> dict:
    cmd = [sys.executable, "-m", "eih.cli", "score", str(data), "--out", str(out), "--explain", explain,
           "--chunk-rows", str(chunk_rows), "--no-progress", "--experiment", "eih-batch-bench", "--model", model]
    if dask:
        cmd += ["--engine", "dask", "--workers", str(os.cpu_count() or 1)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    peak = mem.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"eih score failed ({proc.returncode}): {stderr.strip()[-500:]}")
    text = " ".join(stdout.split())
    m = re.search(r"([\d,]+) rows/s while scoring, ([\d.]+) s in all", text)
    counts = re.search(r"rows read ([\d,]+) = scored ([\d,]+) \+ rejected ([\d,]+)", text)
    return {"wall_s": wall, "peak_tree_mib": peak, "scoring_rows_per_s": float(m.group(1).replace(",", "")),
            "job_s": float(m.group(2)), "rows_read": int(counts.group(1).replace(",", "")),
            "rows_scored": int(counts.group(2).replace(",", "")), "out_mb": out.stat().st_size / 1e6}


class Raw:
    """The model's own boosters on the same rows, in this process (all cores). A fresh
    DMatrix for every call (built outside the timing): XGBoost caches the predictions
    of a DMatrix it has seen, which would time a cache lookup instead of the trees."""

    def __init__(self, data: Path, uri: str):
        import pandas as pd

        from model_runtime.loading import load_model

        self.predictor = load_model(uri).predictor
        df = pd.read_parquet(data)
        self.n = len(df)
        self.X = self.predictor.transform(df)
        del df
        t = time.perf_counter()
        self.predictor._dmatrix(self.X)
        self.dmatrix_s = time.perf_counter() - t

    def _time(self, chunk: int | None, contribs: bool) -> float:
        """Seconds of booster calls over all rows: one call (chunk None) or one per chunk."""
        step = chunk or self.n
        dms = [self.predictor._dmatrix(self.X.iloc[i:i + step]) for i in range(0, self.n, step)]
        t = time.perf_counter()
        for dm in dms:
            for booster in self.predictor.boosters:  # the expected change and, if any, the spread
                out = booster.predict(dm, pred_contribs=contribs)
                del out
        return time.perf_counter() - t

    def tables(self, chunk: int) -> float | None:
        """Seconds of the service's own explainer (model_runtime/shap_tables.py) over all rows in
        chunks, matrices built outside the timing; None if the model's trees are not tabulated."""
        tables = self.predictor.all_tables()
        if tables is None:
            return None
        mats = [self.predictor.frame_matrix(self.X.iloc[i:i + chunk]) for i in range(0, self.n, chunk)]
        t = time.perf_counter()
        for m in mats:
            for table in tables:
                out = table.contributions(m)
                del out
        return time.perf_counter() - t

    def none(self, chunk: int | None = None) -> float:
        return self._time(chunk, contribs=False)

    def full(self, chunk: int | None = None) -> float:
        return self._time(chunk, contribs=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=None, help="model URI (default: train one into a temporary store)")
    ap.add_argument("--n-trials", type=int, default=10)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dask", action="store_true", help="also run --explain full with --engine dask (LocalCluster)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    workdir = Path(tmp.name) if tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    if args.model is None:
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
        t = time.perf_counter()
        uri = train_model(workdir, args.n_trials, args.seed)
        print(f"trained a model ({args.n_trials} trials) in {time.perf_counter() - t:.0f} s", flush=True)
    else:
        uri = args.model

    data = workdir / f"cohort{args.rows}.parquet"
    if not data.exists():
        t = time.perf_counter()
        make_cohort(data, args.rows, args.seed + 100)
        print(f"simulated {args.rows:,} rows in {time.perf_counter() - t:.0f} s ({data.stat().st_size / 1e6:.0f} MB)",
              flush=True)

    raw = Raw(data, uri)
    shape = raw.predictor.meta.model_shape
    print(f"model {uri}: depth {shape.get('max_depth')} x {shape.get('n_rounds')} rounds x "
          f"{len(raw.predictor.outputs)} outputs; DMatrix of {raw.n:,} rows built in {raw.dmatrix_s:.1f} s", flush=True)

    results: dict[str, list] = {"raw_none_s": [], "raw_full_s": [], "raw_none_chunked_s": [], "raw_full_chunked_s": [],
                                "tables_chunked_s": [],
                                "e2e_none": [], "e2e_full": [], "e2e_full_dask": []}
    for r in range(args.repeats):
        results["raw_none_s"].append(raw.none())
        results["raw_none_chunked_s"].append(raw.none(args.chunk_rows))
        results["e2e_none"].append(end_to_end(data, workdir / "scores_none.parquet", "none", args.chunk_rows,
                                              env, uri))
        results["raw_full_s"].append(raw.full())
        results["raw_full_chunked_s"].append(raw.full(args.chunk_rows))
        results["tables_chunked_s"].append(raw.tables(args.chunk_rows))
        results["e2e_full"].append(end_to_end(data, workdir / "scores_full.parquet", "full", args.chunk_rows,
                                              env, uri))
        if args.dask:
            results["e2e_full_dask"].append(end_to_end(data, workdir / "scores_full_dask.parquet", "full",
                                                       args.chunk_rows, env, uri, dask=True))
        rate = lambda key: raw.n / results[key][-1]  # noqa: E731
        print(f"repeat {r + 1}: raw none {rate('raw_none_s'):,.0f} rows/s (chunked {rate('raw_none_chunked_s'):,.0f}), "
              f"e2e none {raw.n / results['e2e_none'][-1]['wall_s']:,.0f} rows/s; raw full {rate('raw_full_s'):,.0f} "
              f"rows/s (chunked {rate('raw_full_chunked_s'):,.0f}), e2e full "
              f"{raw.n / results['e2e_full'][-1]['wall_s']:,.0f} rows/s", flush=True)

    n = raw.n
    summary = {"rows": n, "model_uri": uri, "model_shape": shape, "chunk_rows": args.chunk_rows,
               "repeats": args.repeats, "cpu_count": os.cpu_count(), "dmatrix_s": raw.dmatrix_s, "raw": results}
    lines = []
    def summarize(mode: str, runs: list[dict]) -> dict:
        whole, chunked = results[f"raw_{mode}_s"], results[f"raw_{mode}_chunked_s"]
        best = [min(a, b) for a, b in zip(whole, chunked, strict=False)]  # the faster raw call of each repeat
        raw_rate = n / np.median(best)
        e2e_rate = n / np.median([x["wall_s"] for x in runs])
        job_rate = n / np.median([x["job_s"] for x in runs])
        pair = [(n / x["wall_s"]) / (n / t) for x, t in zip(runs, best, strict=False)]
        return {"raw_rows_per_s": raw_rate, "raw_one_call_rows_per_s": n / np.median(whole),
                "raw_chunked_rows_per_s": n / np.median(chunked), "e2e_rows_per_s": e2e_rate,
                "job_rows_per_s": job_rate, "scoring_rows_per_s": float(np.median([x["scoring_rows_per_s"] for x in runs])),
                "ratio": e2e_rate / raw_rate, "ratio_pairs_median": float(np.median(pair)),
                "ratio_job": job_rate / raw_rate, "peak_mib": max(x["peak_tree_mib"] for x in runs),
                "out_mb": runs[-1]["out_mb"]}

    for mode in ("none", "full"):
        summary[mode] = summarize(mode, results[f"e2e_{mode}"])
        lines.append((mode, "local", summary[mode]))
    if results["e2e_full_dask"]:
        summary["full_dask"] = summarize("full", results["e2e_full_dask"])
        lines.append(("full", f"dask LocalCluster ({os.cpu_count()} workers x 1 thread)", summary["full_dask"]))
    (workdir / "batch_bench.json").write_text(json.dumps(summary, indent=1))

    print(f"\n{n:,} rows, chunk {args.chunk_rows:,}, medians of {args.repeats} interleaved repeats; end-to-end = wall "
          "time of a fresh `eih score` process (start-up, model load, id pass, validation, scoring, writing, report, "
          "MLflow)\n")
    print("| --explain | engine | raw booster rows/s: one call / in chunks | end-to-end rows/s | ratio to the faster raw "
          "(of medians; median of pairs) | job rows/s (no start-up) | scoring-phase rows/s | peak memory (MiB, process "
          "tree) | output (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, engine, s in lines:
        call = "predict" if mode == "none" else "pred_contribs"
        print(f"| {mode} | {engine} | {s['raw_one_call_rows_per_s']:,.0f} / {s['raw_chunked_rows_per_s']:,.0f} ({call}) | "
              f"{s['e2e_rows_per_s']:,.0f} | {s['ratio']:.2f}; {s['ratio_pairs_median']:.2f} | {s['job_rows_per_s']:,.0f} "
              f"({s['ratio_job']:.2f}) | {s['scoring_rows_per_s']:,.0f} | {s['peak_mib']:,.0f} | {s['out_mb']:,.0f} |")
    tab = [t for t in results["tables_chunked_s"] if t is not None]
    if tab:
        best = [min(a, b) for a, b in zip(results["raw_full_s"], results["raw_full_chunked_s"], strict=False)]
        summary["tables_rows_per_s"] = n / np.median(tab)
        print(f"\nwhere --explain full gains: the service's explainer (exact tables of XGBoost's numbers, "
              f"model_runtime/shap_tables.py, one thread) in process on the same chunks: {n / np.median(tab):,.0f} rows/s = "
              f"{np.median(best) / np.median(tab):.1f} x the faster raw pred_contribs call")
        (workdir / "batch_bench.json").write_text(json.dumps(summary, indent=1))
    else:
        print("\nthe model's trees are too deep for the table explainer: --explain full calls pred_contribs")
    print(f"\nraw numbers: {workdir / 'batch_bench.json'}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
