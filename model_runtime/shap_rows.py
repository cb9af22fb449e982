"""Exact tree contributions for a few rows at a time (`model_runtime.shap_tables` dispatches
up to its SMALL_BATCH rows here): every tree's lookups and table laid out as flat arrays over
its (tree, column) pairs, so one HTTP record, or a recommendation's few protocols, are read in
a handful of array gathers instead of a Python loop over thousands of trees.

The additions are the vectorized path's, in its order: `np.bincount` adds each row's values
to their (output, column) bins in pair order, which is tree by tree, so both paths give the
same bits (tests/test_shap_tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FlatTrees:
    """Every tree's lookups and table as flat arrays over its (tree, column) pairs, tree by
    tree, so that a few rows are explained by array gathers instead of a loop over trees."""

    pair_col: np.ndarray  # (P,) model column of each pair
    lookup_at: np.ndarray  # (P,) where the pair's lookup starts in `lookups`
    lookups: np.ndarray  # all lookups: global class -> local class x stride
    tree_start: np.ndarray  # (T,) first pair of each tree
    pair_tree: np.ndarray  # (P,) tree of each pair
    table_at: np.ndarray  # (P,) where the pair's row of its tree's table starts in `tables`
    tables: np.ndarray  # all tables' values, float64
    pair_bin: np.ndarray  # (P,) output x n_columns + column: where the pair's value adds up
    n_outputs: int
    n_columns: int
    tree_output: np.ndarray  # (T,) the output each tree adds to
    total_at: np.ndarray  # (T,) where the tree's cells start in `totals`
    totals: np.ndarray  # every tree's contributions summed over its columns, per cell (its leaf value
    # minus the tree's expected value)

    @classmethod
    def of(cls, trees: list, n_columns: int, n_outputs: int) -> FlatTrees:
        """From `shap_tables`' trees (each: output, columns, per-column lookups, table (columns, cells))."""
        sizes = np.array([len(t.columns) for t in trees], dtype=np.intp)
        cells = np.array([t.table.shape[1] for t in trees], dtype=np.intp)
        lookups = [lk for t in trees for lk in t.lookups]
        pair_cells = np.repeat(cells, sizes)

        def starts(lengths: np.ndarray) -> np.ndarray:  # where each of consecutive blocks begins
            return (np.cumsum(lengths) - lengths).astype(np.intp)

        def joined(parts: list, dtype) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return cls(
            pair_col=joined([t.columns for t in trees], np.intp),
            lookup_at=starts(np.array([len(lk) for lk in lookups], dtype=np.intp)),
            lookups=joined(lookups, np.intp),
            tree_start=starts(sizes),
            pair_tree=np.repeat(np.arange(len(trees), dtype=np.intp), sizes),
            table_at=starts(pair_cells),
            tables=joined([row for t in trees for row in t.table], "float64"),
            pair_bin=joined([t.output * n_columns + t.columns for t in trees], np.intp),
            n_outputs=n_outputs,
            n_columns=n_columns,
            tree_output=np.array([t.output for t in trees], dtype=np.intp),
            total_at=starts(cells),
            totals=joined([t.table.sum(axis=0) for t in trees], "float64"),
        )

    def add_up(self, cls: np.ndarray) -> np.ndarray:
        """(n, F) class of each value -> (n, K, F) contributions. `np.bincount` adds each row's
        values to their bins in pair order, that is tree by tree, as the vectorized path does."""
        n, n_bins = len(cls), self.n_outputs * self.n_columns
        if not len(self.tree_start):  # every tree a single leaf: all in the bias
            return np.zeros((n, self.n_outputs, self.n_columns))
        local = self.lookups[self.lookup_at + cls[:, self.pair_col]]  # (n, P)
        cell = np.add.reduceat(local, self.tree_start, axis=1)  # (n, T)
        values = self.tables[self.table_at + cell[:, self.pair_tree]]  # (n, P)
        bins = (self.pair_bin + (np.arange(n, dtype=np.intp) * n_bins)[:, None]).ravel()
        acc = np.bincount(bins, weights=values.ravel(), minlength=n * n_bins)
        return acc.reshape(n, self.n_outputs, self.n_columns)

    def pairs_of(self, columns) -> np.ndarray:
        """(P,) whether each (tree, column) pair reads one of the model columns `columns`."""
        return np.isin(self.pair_col, np.asarray(columns, dtype=np.intp))

    def partial_cells(self, cls: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """(n, F) class of each value -> (n, T) each tree's cell index counting only the
        pairs `pairs` (`pairs_of`; a cell index is a sum over the tree's columns, so the parts
        of two disjoint sets of columns add up to the cell)."""
        if not len(self.tree_start):
            return np.zeros((len(cls), 0), dtype=np.intp)
        local = np.where(pairs, self.lookups[self.lookup_at + cls[:, self.pair_col]], 0)
        return np.add.reduceat(local, self.tree_start, axis=1)

    def cell_offsets(self, cells: np.ndarray) -> np.ndarray:
        """(..., T) cell of every tree -> where it lies in `totals` (int32: the grid of a
        recommendation gathers a million of them, and half the bytes is half the time)."""
        return (cells + self.total_at).astype(np.int32)

    def margins_at(self, offsets: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """(..., T) `cell_offsets` of every tree -> (..., K) margins: the bias plus every tree's
        leaf value less its expected value, summed per output in float64."""
        values = self.totals[offsets]
        if self.n_outputs == 1:
            return bias[0] + values.sum(axis=-1, keepdims=True)
        out = np.empty((*offsets.shape[:-1], self.n_outputs))
        for k in range(self.n_outputs):
            out[..., k] = bias[k] + values[..., self.tree_output == k].sum(axis=-1)
        return out
