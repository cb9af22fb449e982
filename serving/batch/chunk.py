"""One chunk, the unit of work of both engines: validate it by the contract, predict and
explain its valid rows with one feature transform, build its rows of the scores file and
its share of the aggregates. Runs in this process or on a Dask worker."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.validate import validate_frame
from model_runtime.interpret import risk_code
from serving.batch.aggregates import (
    Aggregates,
    add_attributions,
    add_input_drift,
    add_outcomes_and_sites,
    add_predictions,
    add_problems,
    add_sample,
    expected_change,
)
from serving.batch.options import HYPER, ChunkOptions
from serving.batch.writers import build_table, change_arrays


@dataclass
class ChunkResult:
    """One chunk's rows of the scores file, its rejects, counts and aggregates."""

    index: int
    table: pa.Table
    problems: pd.DataFrame
    n_read: int
    n_scored: int
    n_rejected: int
    unknown_columns: list[str]
    agg: Aggregates


def _chunk_hook(index: int) -> None:
    """A seam for tests: called with each chunk's index before the chunk is validated
    (tests replace it to fail a given chunk); does nothing otherwise."""


def _sample_mask(frame: pd.DataFrame, valid: pd.DataFrame, opts: ChunkOptions, index: int) -> np.ndarray:
    """The valid rows drawn for the beeswarm sample, in order. Seeded by the chunk's
    index (not by where it runs), so both engines draw the same rows."""
    rng = np.random.default_rng([opts.seed, index])
    u = rng.random(len(frame))
    return (u < opts.sample_rate)[frame.index.isin(valid.index)]


def _predict(predictor, X: pd.DataFrame, sampled: np.ndarray, explain: str):
    """(probabilities, Explanation or None, contributions for the aggregates,
    contributions of the sampled rows, calibrated margins). With explain "none" only the sampled rows are
    explained, for the attribution drift and the report's drivers."""
    if explain == "none":
        margins = predictor.margins_of(X)
        contrib = predictor.explain_features(X.iloc[np.flatnonzero(sampled)]).contributions if sampled.any() else None
        return predictor.proba(margins), None, contrib, contrib, margins
    ex = predictor.explain_features(X)
    P = predictor.proba(ex.margins)
    return P, ex, ex.contributions, ex.contributions[sampled], ex.margins


def score_chunk(predictor, frame: pd.DataFrame, index: int, row_offset: int, duplicate_ids,
                opts: ChunkOptions, schema: pa.Schema, validate_lock=None) -> ChunkResult:
    """Validate and score one chunk; the unit of work of both engines.

    `row_offset` is the number of data rows before this chunk (for the rejects' row
    numbers), `duplicate_ids` the subject_ids repeated anywhere in the file, and
    `validate_lock` serializes validation between the local engine's threads.
    """
    _chunk_hook(index)
    with validate_lock or nullcontext():
        report = validate_frame(frame, row_offset=row_offset, duplicate_ids=duplicate_ids)
    valid = report.valid
    agg = Aggregates(predictor.fields, predictor.outputs)
    add_problems(agg, report.problems)
    sampled = _sample_mask(frame, valid, opts, index)
    if len(valid):
        X = predictor.transform(valid)  # once: scoring, explanations, drift and the beeswarm sample
        P, ex, contrib, sample_contrib, margins = _predict(predictor, X, sampled, opts.explain)
        risk = risk_code(P[:, HYPER], predictor.meta.risk_cutoffs)
        change = change_arrays(predictor, margins, valid["pain_condition"].astype(object).to_numpy())
        table = build_table(valid["subject_id"], P, risk, ex, opts.explain, opts.top_k, schema, change)
        expected = expected_change(predictor, margins)
        add_predictions(agg, P, risk, valid, expected)
        bins = add_input_drift(agg, predictor, X)
        add_outcomes_and_sites(agg, predictor, valid, bins, P, expected)
        add_attributions(agg, predictor, contrib)
        add_sample(agg, predictor, X, sampled, sample_contrib)
    else:
        table = schema.empty_table()
    return ChunkResult(index, table, report.problems, report.n_rows, len(valid), report.n_rejected,
                       report.unknown_columns, agg)
