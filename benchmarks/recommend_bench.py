"""Exercise-prescription benchmark: how far the champion's recommended protocol is from the
truth's best, whether a ceiling on P(hyperalgesia) holds in the truth, and what a
recommendation costs.

    .venv/bin/python benchmarks/recommend_bench.py [--model URI] [--n 2000] [--seed 2024]
        [--ceiling 0.2] [--train-n 20000] [--train-seed 7] [--data-seed S] [--n-trials 30]
        [--requests 200] [--throughput-n 20000] [--workdir DIR] [--no-http | --timings-only]

Model: --model, else the @champion of the store MLFLOW_TRACKING_URI names; when that
variable is unset, a model is trained first into a temporary store exactly as `./run.sh`
trains the quickstart champion (--train-n simulated people of seed --data-seed, default
--train-seed; training seed --train-seed; --n-trials search trials; the default
configuration: fields measured before the bout only). Two training seeds on one cohort show
how much a recommendation depends on the fit rather than on the data.

Truth: --n fresh simulated people (one site, seed --seed, never used in training); for every
person and every protocol of the default grid (312) the simulator's exact probabilities at
the reference site (`simulation.oracle.oracle_probabilities(..., site=REFERENCE)`, the
p_site_* truth of a one-site cohort), with the post-bout lactate left out, as a prescription
must. Benefit = P(hypoalgesia) - P(hyperalgesia).

Printed:
1. regret = the truth's benefit of the truth's best protocol minus the truth's benefit of
   the recommended one (rank 1 of `eih recommend`, by the pooled ranking score; beside it
   the regret of ranking by the model's own benefit), mean overall and by condition with a
   bootstrap 95 % interval, how often the recommendation is the truth's best, and for
   scale the regret of one protocol for everyone (the one with the best mean truth);
2. with --ceiling on the predicted P(hyperalgesia): the share of people whose recommended
   protocol's true P(hyperalgesia) is within the ceiling + 0.02, and whether any returned
   protocol breaks a constraint; then the directions the literature gives: raising CSI (+15)
   or PCS (+10), how often each modality's best intensity moves up or down in the truth and
   in the model;
3. HTTP: p50 of one POST /recommend against one POST /predict of the same person (a real
   `eih serve` on 127.0.0.1, requests interleaved);
4. `eih recommend` (in process, --throughput-n people, file to file: reading, contract
   checks, scoring, ranking, writing, MLflow run) in person-protocol pairs per second,
   against the raw `inplace_predict` of the model's boosters over the same pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROTOCOL = ("exercise_modality", "exercise_intensity_pct", "exercise_duration_min")


def train_champion(workdir: Path, n: int, seed: int, n_trials: int, data_seed: int | None = None) -> None:
    """The quickstart's champion, trained into the store MLFLOW_TRACKING_URI names (cohort of
    `data_seed`, default `seed`)."""
    from rich.console import Console

    from simulation import simulate
    from training.config import load_config
    from training.train import train

    cohort, oracle = simulate(n, seed=seed if data_seed is None else data_seed, n_sites=1)
    data, opath = workdir / "train.parquet", workdir / "train.oracle.parquet"
    cohort.to_parquet(data, index=False)
    oracle.to_parquet(opath, index=False)
    t = time.perf_counter()
    r = train(data, oracle=opath, cfg=load_config(None, n_trials=n_trials), seed=seed, console=Console(quiet=True))
    print(f"trained version {r.model_version} on {n} people in {time.perf_counter() - t:.0f} s "
          f"(test log-loss {r.metrics['test_log_loss']:.4f}, oracle capture {r.metrics.get('oracle_capture', float('nan')):.3f})")


def truth_over_grid(people: pd.DataFrame, grid) -> np.ndarray:
    """(n, G, 3) the simulator's probabilities of every person at every grid protocol."""
    from simulation.oracle import oracle_probabilities
    from simulation.sites import REFERENCE

    rows = people.loc[people.index.repeat(len(grid))].reset_index(drop=True)
    rows = rows.drop(columns=[c for c in ("lactate_mmol_l", "ppt_post_kpa") if c in rows.columns])
    for f, v in zip(PROTOCOL, (grid.modality, grid.intensity, grid.duration), strict=True):
        rows[f] = np.tile(v, len(people))
    return oracle_probabilities(rows, site=REFERENCE).reshape(len(people), len(grid), 3)


def _ci(x: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def regret_report(people: pd.DataFrame, T: np.ndarray, P: np.ndarray, grid, score: np.ndarray) -> dict:
    """Regret of rank 1 (no constraints; ranked by `score`, the service's ranking score), by
    condition, with the one-protocol baseline and the regret of ranking by the model's own
    benefit without pooling."""
    from serving.recommend import benefit
    from serving.recommend_batch import ranked

    n = len(people)
    bo = benefit(T)
    _, _, pick = ranked(P, np.ones(P.shape[:2], dtype=bool), 1, score)
    _, _, unpooled = ranked(P, np.ones(P.shape[:2], dtype=bool), 1)
    best = bo.max(axis=1)
    regret = best - bo[np.arange(n), pick]
    regret_unpooled = best - bo[np.arange(n), unpooled]
    one = int(bo.mean(axis=0).argmax())
    cond = people["pain_condition"].astype(str).to_numpy()
    out = {"n": n, "regret": float(regret.mean()), "regret_ci": _ci(regret), "match_best": float(np.mean(
        np.isclose(bo[np.arange(n), pick], best, atol=1e-12))), "oracle_best_benefit": float(best.mean()),
        "recommended_true_benefit": float(bo[np.arange(n), pick].mean()),
        "one_protocol": grid.protocol(one), "one_protocol_regret": float((best - bo[:, one]).mean()),
        "unpooled_regret": float(regret_unpooled.mean()), "by_condition": {}}
    for c in sorted(set(cond)):
        m = cond == c
        out["by_condition"][c] = {"n": int(m.sum()), "regret": float(regret[m].mean()), "regret_ci": _ci(regret[m]),
                                  "one_protocol_regret": float((best[m] - bo[m, one]).mean()),
                                  "unpooled_regret": float(regret_unpooled[m].mean())}
    return out


def ceiling_report(T: np.ndarray, P: np.ndarray, grid, ceiling: float, score: np.ndarray) -> dict:
    """With a ceiling on the predicted P(hyperalgesia): how often the truth keeps it (+ 0.02)."""
    from serving.recommend import HYPER, Constraints
    from serving.recommend_batch import ranked

    c = Constraints(max_hyperalgesia=ceiling)
    allowed = c.mask(grid, P[..., HYPER])
    person, r, g = ranked(P, allowed, 1, score)
    got = r == 1
    p_true = T[person[got], g[got], HYPER]
    broken = int((P[person[got], g[got], HYPER] > ceiling).sum())
    return {"ceiling": ceiling, "people": len(T), "with_recommendation": int(got.sum()),
            "true_p_hyper_within_ceiling_plus_0.02": float(np.mean(p_true <= ceiling + 0.02)),
            "true_p_hyper_mean": float(p_true.mean()), "constraint_breaks": broken}


def direction_report(lm, people: pd.DataFrame, grid) -> dict:
    """Raise CSI by 15 or PCS by 10 points: how often each modality's best intensity moves up or
    down, in the truth and in the model (people x modalities)."""
    from serving.recommend import GridScorer, benefit

    p = lm.predictor
    gs = GridScorer(p)
    out = {}
    for field, delta, top in (("csi_score", 15.0, 100.0), ("pcs_total", 10.0, 52.0)):
        base = people[people[field].notna()]
        raised = base.assign(**{field: np.minimum(base[field] + delta, top)})
        row = {}
        for who, fn in (("truth", lambda d: benefit(truth_over_grid(d, grid))),
                        ("model", lambda d: benefit(gs.score(p.frame_matrix(p.transform(d)))))):
            b0, b1 = fn(base), fn(raised)
            up = down = 0
            for m in np.unique(grid.modality):
                idx = np.flatnonzero(grid.modality == m)
                i0 = grid.intensity[idx[np.round(b0[:, idx], 9).argmax(axis=1)]]
                i1 = grid.intensity[idx[np.round(b1[:, idx], 9).argmax(axis=1)]]
                up, down = up + int((i1 > i0).sum()), down + int((i1 < i0).sum())
            row[who] = {"up": up, "down": down}
        out[f"{field} +{delta:g}"] = row
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_report(model_uri: str, people: pd.DataFrame, requests: int, workdir: Path) -> dict:
    """p50 of POST /recommend against POST /predict for the same people, one server, interleaved."""
    import httpx

    from serving.gate import records_from_frame

    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENTOML_HOME=str(workdir / "bentoml"), BENTOML_DO_NOT_TRACK="true")
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(Path(sys.executable).parent / "eih"), "serve", "--port", str(port), "--model",
                             model_uri], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("eih serve did not become ready (see serve.log)")
            time.sleep(0.5)
        recs = records_from_frame(people.iloc[: max(requests, 20)])
        t_pred, t_rec = [], []
        with httpx.Client(base_url=base, timeout=60) as client:
            for i in range(20):
                client.post("/predict", json={"records": [recs[i]]})
                client.post("/recommend", json={"record": {k: v for k, v in recs[i].items() if k not in PROTOCOL}})
            for i in range(requests):
                rec = recs[i % len(recs)]
                t = time.perf_counter()
                assert client.post("/predict", json={"records": [rec]}).status_code == 200
                t_pred.append(time.perf_counter() - t)
                t = time.perf_counter()
                r = client.post("/recommend", json={"record": {k: v for k, v in rec.items() if k not in PROTOCOL}})
                t_rec.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
    p50_pred, p50_rec = float(np.median(t_pred)) * 1e3, float(np.median(t_rec)) * 1e3
    return {"requests": requests, "p50_predict_ms": p50_pred, "p50_recommend_ms": p50_rec,
            "p95_recommend_ms": float(np.quantile(t_rec, 0.95)) * 1e3, "ratio": p50_rec / p50_pred}


def throughput_report(lm, n: int, seed: int, workdir: Path) -> dict:
    """`recommend_file` (top 3) on n people against the raw booster calls over the same pairs."""
    from serving.recommend import GridScorer
    from serving.recommend_batch import RecommendOptions, recommend_file
    from simulation import simulate

    people, _ = simulate(n, seed=seed + 1, n_sites=1)
    people = people.drop(columns=[*PROTOCOL, "ppt_post_kpa"])
    src = workdir / "people.parquet"
    people.to_parquet(src, index=False)
    p = lm.predictor
    gs = GridScorer(p)
    X = p.frame_matrix(p.transform(people))
    raw_s = []
    for _ in range(3):
        total = 0.0
        for start in range(0, n, 5000):  # the job's chunk of people, so memory stays as in the job
            M = gs.matrix(X[start:start + 5000])
            t = time.perf_counter()
            for b in p.boosters:
                b.inplace_predict(M, predict_type="margin", validate_features=False)
            total += time.perf_counter() - t
            del M
        raw_s.append(total)
    job_s = []
    for _ in range(2):
        t = time.perf_counter()
        res = recommend_file(src, workdir / "rec.parquet", RecommendOptions(top=3), loaded=lm)
        job_s.append(time.perf_counter() - t)
    pairs = n * len(gs.grid)
    raw, job = pairs / min(raw_s), pairs / min(job_s)
    return {"people": n, "pairs": pairs, "raw_pairs_per_s": raw, "job_pairs_per_s": job, "ratio": job / raw,
            "job_scoring_pairs_per_s": res.pairs_per_s, "job_s": min(job_s), "threads": os.cpu_count()}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--ceiling", type=float, default=0.2)
    ap.add_argument("--train-n", type=int, default=20_000)
    ap.add_argument("--train-seed", type=int, default=7)
    ap.add_argument("--data-seed", type=int, help="the training cohort's simulation seed (default: --train-seed)")
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP and throughput timings (quality only)")
    ap.add_argument("--timings-only", action="store_true", help="skip the truth and the quality figures (1 and 2)")
    ap.add_argument("--n-trials", type=int, default=30)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--throughput-n", type=int, default=20_000)
    ap.add_argument("--workdir")
    return ap.parse_args()


def main() -> None:
    args = _args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="recommend-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.model and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
        train_champion(workdir, args.train_n, args.train_seed, args.n_trials, args.data_seed)
    from model_runtime.loading import load_model
    from serving.recommend import GridScorer
    from simulation import simulate

    lm = load_model(args.model)
    shape = lm.predictor.meta.model_shape
    blend = (f", weight {shape['varying_weight_on_trees']} on them beside the distilled varying-coefficient trees"
             if "varying_weight_on_trees" in shape else "")
    print(f"model {lm.uri} (version {lm.version}; {shape.get('family')} depth {shape.get('max_depth')} x "
          f"{shape.get('n_rounds')} rounds, average of {shape.get('average_of', 1)}{blend}; "
          f"{getattr(lm.predictor.boosters[0], 'num_boosted_rounds', lambda: 0)()} trees); protocols "
          f"{lm.predictor.meta.extra.get('protocols', 'unknown')}")
    people, _ = simulate(args.n, seed=args.seed, n_sites=1)
    people = people.drop(columns=["ppt_post_kpa"])
    gs = GridScorer(lm.predictor)
    results = {"model": lm.uri, "version": lm.version, "grid": len(gs.grid),
               "shrinkage": (lm.predictor.meta.extra.get("pooling") or {}).get("shrinkage")}
    if not args.timings_only:
        t = time.perf_counter()
        T = truth_over_grid(people, gs.grid)
        results["truth_s"] = time.perf_counter() - t
        X = lm.predictor.frame_matrix(lm.predictor.transform(people))
        P = gs.score(X)
        S = gs.ranking_score(X, P)
        results.update(regret=regret_report(people, T, P, gs.grid, S),
                       ceiling=ceiling_report(T, P, gs.grid, args.ceiling, S),
                       direction=direction_report(lm, people, gs.grid))
    if not args.no_http:
        results["http"] = http_report(lm.uri, people, args.requests, workdir)
        results["throughput"] = throughput_report(lm, args.throughput_n, args.seed, workdir)
    (workdir / "recommend_bench.json").write_text(json.dumps(results, indent=1))
    print_results(results)


def print_results(res: dict) -> None:
    """The figures, one block each."""
    if "regret" in res:
        _print_quality(res)
    if "http" in res:
        _print_timings(res)


def _print_quality(res: dict) -> None:
    r = res["regret"]
    lo, hi = r["regret_ci"]
    print(f"\n1. regret over {r['n']} fresh people, grid of {res['grid']} protocols (aim <= 0.015 overall, "
          f"<= 0.02 fibromyalgia)")
    print(f"   ranking by the pooled benefit (shrinkage {res['shrinkage']}); by the model's own benefit: "
          f"{r['unpooled_regret']:.4f} overall")
    print(f"   overall {r['regret']:.4f} (95 % CI {lo:.4f}-{hi:.4f}); recommendation = truth's best for "
          f"{r['match_best']:.0%}; truth's benefit: best {r['oracle_best_benefit']:.3f}, recommended "
          f"{r['recommended_true_benefit']:.3f}")
    for c, v in r["by_condition"].items():
        print(f"   {c:22s} n={v['n']:4d} regret {v['regret']:.4f} ({v['regret_ci'][0]:.4f}-{v['regret_ci'][1]:.4f}); "
              f"one protocol for all {v['one_protocol_regret']:.4f}; unpooled {v['unpooled_regret']:.4f}")
    print(f"   one protocol for everyone ({r['one_protocol']}): regret {r['one_protocol_regret']:.4f}")
    c = res["ceiling"]
    print(f"2. ceiling P(hyperalgesia) <= {c['ceiling']}: {c['with_recommendation']} of {c['people']} people get a "
          f"protocol; its true P(hyperalgesia) <= ceiling + 0.02 for {c['true_p_hyper_within_ceiling_plus_0.02']:.1%} "
          f"(aim >= 95 %), mean {c['true_p_hyper_mean']:.3f}; protocols breaking a constraint: {c['constraint_breaks']}")
    for change, row in res["direction"].items():
        print(f"   {change}: best intensity per modality moves up/down in the truth {row['truth']['up']}/"
              f"{row['truth']['down']}, in the model {row['model']['up']}/{row['model']['down']} (people x modalities)")


def _print_timings(res: dict) -> None:
    h = res["http"]
    print(f"3. HTTP p50 over {h['requests']} interleaved requests: /recommend {h['p50_recommend_ms']:.2f} ms "
          f"(p95 {h['p95_recommend_ms']:.2f}), /predict {h['p50_predict_ms']:.2f} ms: {h['ratio']:.2f} x (aim <= 3 x)")
    t = res["throughput"]
    print(f"4. eih recommend, {t['people']} people x {res['grid']} protocols = {t['pairs']:,} pairs in {t['job_s']:.1f} s: "
          f"{t['job_pairs_per_s']:,.0f} pairs/s end to end (scoring phase {t['job_scoring_pairs_per_s']:,.0f}); raw "
          f"inplace_predict {t['raw_pairs_per_s']:,.0f} pairs/s: {t['ratio']:.2f} x")


if __name__ == "__main__":
    main()
