"""The answers of POST /recommend: `Recommender` scores and ranks a batch of requests for one
model; `RecommendRoute` is what the service's endpoint holds (the model's Recommender,
rebuilt when the served model changes, and a micro-batcher of its own).

Scoring (`Recommender.run`): every person's grid at once (`serving.recommend.GridScorer`:
read from the explanation tables for a request's few people), ranking within the
constraints, then one exact
explanation of the returned protocols and the current one. The numbers returned are those
of that explanation, the same bits /predict gives for the record with that protocol, and
the ceiling on P(hyperalgesia) is checked again on them.
"""

from __future__ import annotations

import logging

import numpy as np
from starlette.responses import JSONResponse, Response

from serving.gate import GateError
from serving.recommend import PROTOCOL_FIELDS, TIE_DECIMALS, Constraints
from serving.recommend_api import RecommendJob, dumps, job_of


class Recommender:
    """The answers of POST /recommend for one loaded model (`serving.scoring.Scorer`'s model)."""

    def __init__(self, predictor, model_info: dict, top_k_reasons: int = 4) -> None:
        from serving.recommend import GridScorer, causal_note, protocols_of

        self.predictor = predictor
        self.scorer = GridScorer(predictor)
        self.grid = self.scorer.grid
        protocols = protocols_of(predictor.meta)
        self.model_info = {**model_info, "protocols": protocols}
        self.causal = {"protocols": protocols, "causal": protocols == "randomized", "note": causal_note(protocols)}
        self.top_k_reasons = top_k_reasons

    def run(self, jobs: list[RecommendJob]) -> list[bytes]:
        """One JSON body per job: every person's grid scored in one call, then ranked."""
        from serving.recommend import HYPER, benefit, rank

        p = self.predictor
        X = p.matrix([job.record for job in jobs])
        P = self.scorer.score(X)
        score = self.scorer.ranking_score(X, P)
        out = []
        for i, job in enumerate(jobs):
            allowed = job.constraints.mask(self.grid, P[i:i + 1, :, HYPER])
            order = rank(P[i:i + 1], allowed, None, score[i:i + 1])[0]
            out.append(dumps(self._answer(job, X[i:i + 1], P[i], order, score[i] - benefit(P[i]))))
        return out

    def _answer(self, job: RecommendJob, x, P, order, pooling_shift) -> dict:
        """The body for one person: the top protocols (exact numbers), the current one, notes.
        `pooling_shift` (G,): ranking score - benefit of each grid protocol."""
        from serving.recommend import benefit

        p, c = self.predictor, job.constraints
        spares = 0 if c.max_hyperalgesia is None else 3  # in case the exact numbers cross the ceiling
        cand = order[: job.top + spares]
        rows = self.scorer.matrix(x, cand)
        if job.current:
            rows = np.vstack([rows, x])
        protocols = [self.grid.protocol(g) for g in cand]
        if job.current:
            protocols.append({f: job.record[f] for f in PROTOCOL_FIELDS})
        items = self._items(job.record, rows, protocols)
        for item, g in zip(items, cand, strict=False):  # the current protocol (last, if any) has no grid place
            item["ranking_benefit"] = item["benefit"] + float(pooling_shift[g])
        person_warn = set(p.range_warnings_matrix(_without_protocol(x, self.scorer.proto_cols))[0])
        for item in items:
            item["warnings"] = [w for w in item["warnings"] if w not in person_warn]
        current = items.pop() if job.current else None
        ceiling = c.max_hyperalgesia
        kept = [it for it in items if ceiling is None or it["probabilities"]["hyperalgesia"] <= ceiling]
        top = sorted(kept, key=_order)[: job.top]  # stable: equal keys keep the grid ranking's order
        for r, it in enumerate(top, 1):
            it["rank"] = r
        n_allowed = len(order)
        body = {"model": self.model_info, "subject_id": job.record["subject_id"], "causal": self.causal,
                "constraints": c.as_dict(),
                "grid": {"protocols_scored": len(self.grid), "within_constraints": n_allowed},
                "recommendations": top, "current": None, "no_recommendation": None,
                "missing_inputs": p.missing_optional_matrix(x)[0], "warnings": sorted(person_warn)}
        if not top:
            body["no_recommendation"] = self._none_text(c, P)
        if current is not None:
            b = current["benefit"]
            current["ranking_benefit"] = None
            current["meets_constraints"] = _meets(c, job.record, current["probabilities"]["hyperalgesia"])
            current["protocols_with_more_benefit"] = int((benefit(P)[order] > b).sum())
            current["benefit_gap_to_best"] = (top[0]["benefit"] - b) if top else None
            body["current"] = current
        return body

    def _items(self, record: dict, rows: np.ndarray, protocols: list[dict]) -> list[dict]:
        """One exact explanation of `rows` (the person at each protocol) -> the protocol items."""
        from serving.explain import top_contributions
        from serving.recommend import HYPER, HYPO, NO_CHANGE, PRIOR_MODALITIES

        p = self.predictor
        ex = p.explain_matrix(rows)
        P = p.proba(ex.margins)
        change = p.change_of(ex.margins)
        intervals = p.intervals_matrix(rows, ex.margins) or {}
        risk = p.risk_level(P[:, HYPER])
        cols = self.scorer.cols
        recs = [{**record, **proto} for proto in protocols]
        why = top_contributions(recs, tuple(p.fields[j] for j in cols), ex.reasons()[:, :, cols],
                                k=min(self.top_k_reasons, len(cols)), values=rows[:, cols])
        warnings = p.range_warnings_matrix(rows)
        out = []
        for i, proto in enumerate(protocols):
            w = list(warnings[i])
            if proto["exercise_modality"] in PRIOR_MODALITIES:
                w.insert(0, PRIOR_MODALITIES[proto["exercise_modality"]])
            out.append({"rank": None, "protocol": proto,
                        "probabilities": {"hypoalgesia": float(P[i, HYPO]), "no_change": float(P[i, NO_CHANGE]),
                                          "hyperalgesia": float(P[i, HYPER])},
                        "benefit": float(P[i, HYPO] - P[i, HYPER]), "hyperalgesia_risk": str(risk[i]),
                        "why": why[i], "warnings": w})
            if change is not None:  # the measured change this protocol gives people like this one
                out[-1].update(expected_change_pct=float(change[0][i]), change_sd_pct=float(change[1][i]))
                if intervals:
                    out[-1]["change_interval_pct"] = {lv: [float(b[i, 0]), float(b[i, 1])] for lv, b in intervals.items()}
        return out

    def _none_text(self, c: Constraints, P: np.ndarray) -> str:
        """Why no protocol is returned, in one sentence (counts and the lowest risk on offer)."""
        from serving.recommend import HYPER

        inside = c.protocol_mask(self.grid)
        if not inside.any():
            return ("No protocol of the grid keeps the modality, intensity and duration limits: widen them "
                    "(the grid's ranges per modality are in serving/README.md).")
        g = int(np.flatnonzero(inside)[np.argmin(P[inside, HYPER])])
        pr = self.grid.protocol(g)
        return (f"No protocol meets the constraints: {int(inside.sum())} protocols keep the modality, intensity and "
                f"duration limits, but none has a predicted P(hyperalgesia) at or below {c.max_hyperalgesia:g}; the "
                f"lowest is {P[g, HYPER]:.2f} ({pr['exercise_modality'].replace('_', ' ')} at "
                f"{pr['exercise_intensity_pct']:g} % for {pr['exercise_duration_min']:g} min). For this person no "
                "exercise bout is predicted to stay under that risk; consider a higher ceiling or no bout.")


def _order(item: dict) -> tuple[float, float]:
    """The ranking key of an item's exact numbers (as `serving.recommend.rank`)."""
    return (-round(item["ranking_benefit"], TIE_DECIMALS), round(item["probabilities"]["hyperalgesia"], TIE_DECIMALS))


def _without_protocol(x: np.ndarray, cols: list[int]) -> np.ndarray:
    """A copy of model-matrix rows with the protocol columns missing (person-level checks)."""
    out = x.copy()
    out[:, cols] = np.nan
    return out


def _meets(c: Constraints, record: dict, p_hyper: float) -> bool:
    """Whether a protocol given as contract fields keeps every limit."""
    mod, inten, dur = (record[f] for f in PROTOCOL_FIELDS)
    return ((c.modalities is None or mod in c.modalities)
            and (c.max_intensity is None or inten <= c.max_intensity)
            and (c.max_duration is None or dur <= c.max_duration)
            and (c.max_hyperalgesia is None or p_hyper <= c.max_hyperalgesia))


class RecommendRoute:
    """What the service's /recommend endpoint needs: the model's `Recommender` (rebuilt when the
    served model changes), a micro-batcher of its own and the answer to one request."""

    def __init__(self, slot, max_jobs: int = 16) -> None:
        from serving.batching import MicroBatcher

        self.slot = slot
        self._cache: tuple[object, object] | None = None
        self._batcher = MicroBatcher(self._run, max_rows=max_jobs, name="eih-recommend")

    def recommender(self, scorer):
        """The Recommender of `scorer`'s model, or the PrescriptionRefused that model gets."""
        from serving.recommend import PrescriptionRefused

        cached = self._cache
        if cached is None or cached[0] is not scorer:
            try:
                made: object = Recommender(scorer.predictor, scorer.model_info)
            except PrescriptionRefused as exc:
                made = exc
            self._cache = cached = (scorer, made)
        return cached[1]

    @staticmethod
    def _run(items: list[tuple[Recommender, RecommendJob]]) -> list[bytes]:
        """Score a batch of (recommender, job): one call per model in the batch (one, as a rule)."""
        out: list[bytes] = [b""] * len(items)
        groups: dict[int, tuple[Recommender, list[int]]] = {}
        for k, (r, _job) in enumerate(items):
            groups.setdefault(id(r), (r, []))[1].append(k)
        for r, ks in groups.values():
            for k, body in zip(ks, r.run([items[k][1] for k in ks]), strict=True):
                out[k] = body
        return out

    async def answer(self, ctx, record, constraints, top) -> Response:
        """The response of one request (503 while no usable model; 4xx from the gate)."""
        from serving.middleware import STATE_KEY
        from serving.recommend import PrescriptionRefused

        scorer = self.slot.scorer
        if scorer is None:
            return _json(ctx, 503, {"error": f"not ready: {self.slot.reason}"})
        job = ctx.request.scope.get("state", {}).get(STATE_KEY)
        if not isinstance(job, RecommendJob):  # reached without the gate: the same checks on the parsed body
            try:
                job = job_of({"record": record.model_dump(), "top": top,
                              "constraints": constraints.model_dump() if constraints is not None else None})
            except GateError as exc:
                return _json(ctx, exc.status, exc.body())
        rec = self.recommender(scorer)
        if isinstance(rec, PrescriptionRefused):
            return _json(ctx, 503, {"error": f"the served model cannot recommend a protocol: {rec}"})
        try:
            body = await self._batcher.submit((rec, job), 1)
        except Exception as exc:  # noqa: BLE001 - answer 500 without a traceback or a value
            logging.getLogger("eih.serving").error("recommendation failed: %s (details withheld)", type(exc).__name__)
            return _json(ctx, 500, {"error": "internal error while recommending; see the server log"})
        ctx.response.status_code = 200
        return Response(body, media_type="application/json")

    def close(self) -> None:
        """Stop the batcher's thread."""
        self._batcher.close()


def _json(ctx, status: int, payload: dict) -> Response:
    ctx.response.status_code = status
    return JSONResponse(payload, status_code=status)

