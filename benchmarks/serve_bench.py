"""Serving benchmark: one-record latency and throughput at 16 concurrent clients for

- eih       this service (`eih serve`: BentoML, validation, exact TreeSHAP, clinical statements),
- eih-nobatch  the same with micro-batching off (EIH_MAX_BATCH_ROWS=1),
- eih-2w    the same with two worker processes,
- mlflow    the same registered model behind `mlflow models serve` (probabilities only),
- floor     a bare uvicorn ASGI app that parses the JSON and calls the booster directly
            (probabilities and exact contributions, no validation), the lower bound,

all in the same run, on the same model and the same records, one server at a time.

    .venv/bin/python benchmarks/serve_bench.py [--model URI] [--sequential 500]
        [--concurrency 16] [--duration 15] [--write-results]

MLFLOW_TRACKING_URI selects the store (default ./mlruns/mlflow.db); without --model the
champion is served. With --write-results the "## Serving" section of
benchmarks/RESULTS.md is replaced by this run's table. Servers listen on 127.0.0.1 on
free ports and are stopped at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# ---- the floor: a bare ASGI app on uvicorn ----------------------------------------------------
def floor_app(model_uri: str):
    """Parse JSON, build the feature row, one TreeSHAP call per booster, the link; nothing else."""
    import numpy as np
    import xgboost as xgb

    from model_runtime.loading import load_model

    predictor = load_model(model_uri).predictor
    predictor.set_threads(1)
    boosters, fields = predictor.boosters, list(predictor.fields)
    types = list(predictor.booster.feature_types)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if scope["path"] == "/predict":
            records = json.loads(body)["records"]
            X = predictor.matrix(records)
            dm = xgb.DMatrix(X, feature_names=fields, feature_types=types, enable_categorical=True, nthread=1)
            # every booster's TreeSHAP (the expected change and, for the distributional model, the spread)
            contrib = np.concatenate([c.reshape(len(records), -1, c.shape[-1]) for c in (
                b.predict(dm, pred_contribs=True) for b in boosters)], axis=1)  # (n, outputs, fields + bias)
            p = predictor.proba(predictor.meta.calibration.apply(contrib.sum(axis=2)))  # the model's calibrated link
            out = json.dumps({"probabilities": p.tolist(), "contributions": contrib[:, :, :-1].tolist()}).encode()
        else:
            out = b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def run_floor(port: int, model_uri: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(model_uri), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---- servers ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, ready_path: str, logdir: Path) -> None:
        self.name, self.argv, self.env, self.ready_path = name, argv, env, ready_path
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, port: int, timeout: float = 240.0) -> str:
        import httpx

        self.base = f"http://127.0.0.1:{port}"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log}")
            try:
                if httpx.get(self.base + self.ready_path, timeout=2).status_code == 200:
                    return self.base
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s: see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# ---- load -------------------------------------------------------------------------------------
def sequential(url: str, bodies: list[bytes], n: int, headers: dict, warmup: int = 50) -> list[float]:
    """Latencies (ms) of n one-at-a-time requests on one kept-alive connection."""
    import httpx

    lat = []
    with httpx.Client(timeout=30) as c:
        for i in range(warmup):
            c.post(url, content=bodies[i % len(bodies)], headers=headers).raise_for_status()
        for i in range(n):
            t = time.perf_counter()
            r = c.post(url, content=bodies[i % len(bodies)], headers=headers)
            lat.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
    return lat


def summarise_latency(lat: list[float]) -> dict:
    lat = sorted(lat)
    return {"p50_ms": lat[len(lat) // 2], "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "n": len(lat)}


def merge_concurrent(parts: list[dict]) -> dict:
    ok = sum(p["ok"] for p in parts)
    elapsed = sum(p["elapsed_s"] for p in parts)
    codes: collections.Counter = collections.Counter()
    for p in parts:
        codes.update(p["codes"])
    return {"rps": ok / elapsed, "requests": sum(p["requests"] for p in parts), "ok": ok,
            "n_503": sum(p["n_503"] for p in parts), "errors": sum(p["errors"] for p in parts), "codes": dict(codes),
            "rps_rounds": [p["rps"] for p in parts]}


async def _concurrent(url: str, bodies: list[bytes], clients: int, duration: float, headers: dict) -> dict:
    import httpx

    codes: collections.Counter = collections.Counter()
    lat: list[float] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        end = time.perf_counter() + duration

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    r = await c.post(url, content=bodies[i % len(bodies)], headers=headers)
                    codes[r.status_code] += 1
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                lat.append((time.perf_counter() - t) * 1000)
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - t0
    lat.sort()
    ok = codes.get(200, 0)
    return {"rps": ok / elapsed, "elapsed_s": elapsed, "requests": sum(codes.values()), "ok": ok, "n_503": codes.get(503, 0),
            "errors": sum(v for k, v in codes.items() if k != 200), "codes": {str(k): v for k, v in codes.items()},
            "p50_ms_loaded": lat[len(lat) // 2] if lat else None}


# ---- main -------------------------------------------------------------------------------------
def make_records(n: int, seed: int) -> list[dict]:
    from serving.gate import records_from_frame

    try:
        from simulation import simulate

        cohort, _ = simulate(n, seed=seed, n_sites=1)
        return records_from_frame(cohort)
    except ImportError:  # pragma: no cover - without the simulator: the example record, varied
        from data_contracts.examples import EXAMPLE_RECORD

        return [dict(EXAMPLE_RECORD, subject_id=f"bench-{i}", age_years=20 + i % 60) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model URI [default: models:/eih-responder@champion]")
    ap.add_argument("--sequential", type=int, default=500, help="sequential one-record requests per server")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=16.0, help="seconds of concurrent load per server (in total)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the sequential requests")
    ap.add_argument("--rounds-concurrent", type=int, default=2, help="interleaved rounds of the concurrent load")
    ap.add_argument("--only", nargs="*", default=None, help="subset of: eih eih-nobatch eih-2w mlflow floor")
    ap.add_argument("--write-results", action="store_true", help="replace the Serving section of benchmarks/RESULTS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--_floor", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from model_runtime.settings import champion_uri, tracking_uri

    uri = args.model or champion_uri()
    if args._floor is not None:
        run_floor(args._floor, uri)
        return 0

    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri(), EIH_MODEL_RETRY_SECONDS="5", PYTHONUNBUFFERED="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # mlflow execs `uvicorn`
    env.pop("EIH_API_TOKEN", None)
    records = make_records(200, seed=2024)
    eih_bodies = [json.dumps({"records": [r]}).encode() for r in records]
    mlflow_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
    headers = {"content-type": "application/json"}
    logdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    variants = {
        "eih": (Server("eih", [str(BIN / "eih"), "serve", "--model", uri, "--port", "{port}"], env, "/readyz", logdir),
                "/predict", eih_bodies),
        "eih-nobatch": (Server("eih-nobatch", [str(BIN / "eih"), "serve", "--model", uri, "--port", "{port}"],
                               dict(env, EIH_MAX_BATCH_ROWS="1"), "/readyz", logdir), "/predict", eih_bodies),
        "eih-2w": (Server("eih-2w", [str(BIN / "eih"), "serve", "--model", uri, "--port", "{port}", "--workers", "2"],
                          env, "/readyz", logdir), "/predict", eih_bodies),
        "mlflow": (Server("mlflow", [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
                                     "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
                          env, "/ping", logdir), "/invocations", mlflow_bodies),
        "floor": (Server("floor", [sys.executable, str(Path(__file__).resolve()), "--model", uri, "--_floor", "{port}"],
                         env, "/health", logdir), "/predict", eih_bodies),
    }
    chosen = args.only or list(variants)
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    shape: dict = {}
    print(f"model {uri}; store {env['MLFLOW_TRACKING_URI']}; logs in {logdir}")
    try:
        # all servers up at once (an idle server costs memory, not CPU) ...
        bases, startup = {}, {}
        for name in chosen:
            server, path, bodies = variants[name]
            port = free_port()
            server.argv = [a.replace("{port}", str(port)) for a in server.argv]
            t0 = time.perf_counter()
            bases[name] = server.start(port)
            startup[name] = time.perf_counter() - t0
            print(f"[{name}] ready in {startup[name]:.1f} s", flush=True)
            if name.startswith("eih") and not shape:
                import httpx

                meta = httpx.get(bases[name] + "/metadata", timeout=30).json()
                shape.update(meta.get("model_shape", {}), version=meta["model"]["version"])
        # ... then measured in interleaved rounds, so a change in the machine's load hits all alike
        lat: dict[str, list[float]] = {n: [] for n in chosen}
        conc: dict[str, list[dict]] = {n: [] for n in chosen}
        per_round = max(1, args.sequential // args.rounds)
        for r in range(args.rounds):
            for name in chosen:
                _, path, bodies = variants[name]
                lat[name] += sequential(bases[name] + path, bodies, per_round, headers, warmup=50 if r == 0 else 5)
            print(f"round {r + 1}/{args.rounds}: {per_round} sequential requests per server", flush=True)
        for r in range(args.rounds_concurrent):
            for name in chosen:
                _, path, bodies = variants[name]
                conc[name].append(asyncio.run(_concurrent(bases[name] + path, bodies, args.concurrency,
                                                          args.duration / args.rounds_concurrent, headers)))
            print(f"round {r + 1}/{args.rounds_concurrent}: {args.concurrency} clients per server", flush=True)
        for name in chosen:
            results[name] = {**summarise_latency(lat[name]), **merge_concurrent(conc[name]), "startup_s": startup[name]}
            res = results[name]
            print(f"[{name}] p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  {res['rps']:.0f} req/s  "
                  f"503: {res['n_503']}  other errors: {res['errors'] - res['n_503']}", flush=True)
    finally:
        for server, _, _ in variants.values():
            server.stop()
    load_after = os.getloadavg()
    table = render(results, args, uri, load_before, load_after, shape)
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write_results:
        write_section(table)
        print(f"\nwritten to {ROOT / 'benchmarks' / 'RESULTS.md'}")
    return 0


def render(results: dict, args, uri: str, load_before, load_after, shape: dict) -> str:
    names = {"eih": "eih serve (BentoML, validation, TreeSHAP, statements)",
             "eih-nobatch": "eih serve, micro-batching off",
             "eih-2w": "eih serve --workers 2",
             "mlflow": "mlflow models serve (probabilities only)",
             "floor": "floor: bare uvicorn + booster (probabilities + contributions)"}
    lines = [
        f"| server | p50 ms | p99 ms | req/s at {args.concurrency} clients | 503s | other errors | start-up s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in results.items():
        lines.append(f"| {names[k]} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | {r['n_503']} | "
                     f"{r['errors'] - r['n_503']} | {r['startup_s']:.0f} |")
    ratios = []
    e, f, m = results.get("eih"), results.get("floor"), results.get("mlflow")
    if e and f:
        ratios.append(f"- p50 latency, eih / floor: **{e['p50_ms'] / f['p50_ms']:.2f} x** (aim: at most 2 x)")
        ratios.append(f"- p99 latency, eih / floor: {e['p99_ms'] / f['p99_ms']:.2f} x")
    if e and m:
        ratios.append(f"- throughput at {args.concurrency} clients, eih / mlflow models serve: "
                      f"**{e['rps'] / m['rps']:.1f} x** (aim: at least 4 x)")
        ratios.append(f"- p50 latency, eih / mlflow models serve: {e['p50_ms'] / m['p50_ms']:.2f} x")
    if e and results.get("eih-nobatch"):
        nb = results["eih-nobatch"]
        ratios.append(f"- throughput, micro-batching on / off: {e['rps'] / nb['rps']:.2f} x")
    if e and f:
        ratios.append(f"- throughput, eih / floor: {e['rps'] / f['rps']:.2f} x")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"Run {when} on {os.cpu_count()} cores ({platform.machine()}, Python {platform.python_version()}); "
            f"model `{uri}`{_shape_text(shape)}; per server {args.sequential} sequential one-record requests (after "
            f"warm-up) and {args.duration:g} s of {args.concurrency} concurrent clients (httpx, asyncio), measured "
            f"in interleaved rounds ({args.rounds} and {args.rounds_concurrent}) so that load drift hits every "
            f"server alike; one worker each unless stated; the load client runs on the same machine. "
            f"Load average before/after: "
            f"{load_before[0]:.1f} / {load_after[0]:.1f}.")
    return "\n".join([head, "", *lines, "", *ratios])


def _shape_text(shape: dict) -> str:
    if not shape.get("n_rounds"):
        return ""
    spread = (f" + a spread booster of {shape['spread_n_rounds']} rounds, depth {shape.get('spread_max_depth')}"
              if shape.get("spread_n_rounds") else "")
    return (f" (version {shape.get('version')}: {shape['n_rounds']} rounds x {shape.get('n_outputs', 3)} outputs, "
            f"depth {shape.get('max_depth')}{spread})")


def write_section(table: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = ("## Serving\n\n`benchmarks/serve_bench.py`: one-record latency and throughput of the HTTP service next "
               "to `mlflow models serve` and a bare uvicorn app calling the booster (the floor).\n\n" + table + "\n")
    pattern = re.compile(r"^## Serving\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
