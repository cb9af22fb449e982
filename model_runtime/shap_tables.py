"""Exact TreeSHAP for shallow trees by table lookup: XGBoost's own per-tree `pred_contribs`
numbers, added up in float64, about 12 times faster on large batches.

Why it is exact. Path-dependent TreeSHAP (what `pred_contribs=True` computes) walks a
tree and, at every split, either follows the row's own decision (left, right, or the
default direction when the value is missing) or averages both children by their cover.
So one tree's contributions depend on a row only through the row's decision at each of
that tree's splits: all rows on the same side of every split of the tree (one "cell")
get the same contributions from it. A tree of depth 3 has at most 7 splits and, in
practice, about a hundred cells.

How. When the model is loaded, each tree's cells are enumerated from its split
thresholds and category sets, one representative row per cell is built, and XGBoost
itself computes that one tree's contributions for those rows (`pred_contribs` with the
booster sliced to the tree's iteration): the tables hold XGBoost's numbers, not a re-implementation
of TreeSHAP. At scoring time each row's class on each feature (which interval between
thresholds, which category, missing) is found once with `searchsorted`, each tree's cell
index is a sum of small lookups, and the contributions are gathered from the tables and
added up in float64 (XGBoost adds its float32 values in float32: the two differ by
float32 rounding, ~3e-6 for 35 trees, ~1e-5 for 300). Up to `SMALL_BATCH` rows (one HTTP
record, a recommendation's protocols) each value is classed in plain Python and every tree
of every row is read in a few array gathers over all (tree, column) pairs (`model_runtime.shap_rows`),
with the same additions in the same order. Values are compared in float32, as
XGBoost compares them; infinite values and values beyond float32 are refused, as XGBoost
refuses them.

When the trees are deep enough to have many cells (more than `MAX_CELLS` in a tree), or
the booster is anything but one single-output tree per class per round (DART, forests,
vector leaves, linear), `build` returns None and the caller keeps XGBoost's
`pred_contribs`. `build` also compares its tables with `pred_contribs` on 512 probe rows
that take every class of every feature (values at and just below every threshold, every
category, missing) in random combinations, and that the row loop classes every probe
value as the vectorized path does, and returns None if they differ (by more than
`CHECK_TOL` for contributions). The input is a matrix of
category codes: the caller must code categories in the order the model was trained with
(`model_runtime.matrix.ModelMatrix.from_frame` re-codes a frame by category name, as XGBoost does).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from model_runtime.shap_rows import FlatTrees

MAX_CELLS = 4096  # per tree; depth-3 trees have at most 2**7 decision patterns
MAX_TOTAL_CELLS = 250_000  # all trees: bounds the tables' memory (~20 MB) and build time (~2 s)
SMALL_BATCH = 64  # up to this many rows the pair gathers (`shap_rows`) beat the per-tree numpy calls
_FLOAT32_MAX = float(np.finfo(np.float32).max)
CHECK_TOL = 1e-4  # absolute, in margin units (float32 sums of up to hundreds of trees)


@dataclass
class _Feature:
    column: int
    categorical: bool
    thresholds: np.ndarray  # numeric: sorted unique float32 split values (all trees)
    n_categories: int  # categorical: codes 0 .. n-1

    @property
    def n_classes(self) -> int:
        # numeric: intervals below, between and above the thresholds, then missing;
        # categorical: one class per code, then missing
        return (len(self.thresholds) + 2) if not self.categorical else (self.n_categories + 1)

    def class_of(self, v: float) -> int:
        """`classes` for one value (the same comparisons, in float32)."""
        if math.isnan(v):  # missing
            return self.n_classes - 1
        v = float(np.float32(v))
        if self.categorical:
            if v < 0 or v >= self.n_categories or v != int(v):
                raise ValueError("category code outside the model's categories")
            return int(v)
        return bisect.bisect_right(self._threshold_list, v)

    def __post_init__(self) -> None:
        self._threshold_list = [float(t) for t in self.thresholds]  # for `class_of`

    def classes(self, x: np.ndarray) -> np.ndarray:
        """Class index of each value (int32); missing is the last class."""
        x32 = np.asarray(x, dtype=np.float32)
        miss = np.isnan(x32)
        if self.categorical:
            with np.errstate(invalid="ignore"):
                bad = ~miss & ((x32 < 0) | (x32 >= self.n_categories) | (x32 != np.floor(x32)))
            if bad.any():
                raise ValueError("category code outside the model's categories")
            return np.where(miss, self.n_categories, x32).astype(np.int32)
        g = np.searchsorted(self.thresholds, x32, side="right").astype(np.int32)
        g[miss] = len(self.thresholds) + 1
        return g

    def representative(self, g: int) -> float:
        """A value in class g (XGBoost sends x < threshold one way, x >= threshold the other)."""
        if g == self.n_classes - 1:
            return float("nan")
        if self.categorical:
            return float(g)
        if g == 0:
            return float(np.nextafter(self.thresholds[0], np.float32(-np.inf)))
        return float(self.thresholds[g - 1])


@dataclass
class _Tree:
    output: int
    columns: np.ndarray  # model columns the tree splits on
    lookups: list[np.ndarray]  # per column: global class -> local class x stride (int32)
    table: np.ndarray  # (len(columns), n_cells) float64 contributions of this tree


class ShapTables:
    """Exact contributions of a booster by table lookup; build with `ShapTables.build`."""

    def __init__(self, features: dict[int, _Feature], trees: list[_Tree], bias: np.ndarray, n_columns: int):
        self.features = features
        self.trees = trees
        self.bias = bias  # (K,) the model's expected value per output, as pred_contribs gives it
        self.n_columns = n_columns
        self._flat = FlatTrees.of(trees, n_columns, len(bias))

    @property
    def n_outputs(self) -> int:
        return len(self.bias)

    @classmethod
    def build(cls, booster: xgb.Booster, feature_types: list[str], n_categories: dict[int, int]) -> ShapTables | None:
        """Tables for `booster`, or None when they would be too large or do not check out.

        `feature_types`: 'c' for a categorical column, anything else numeric;
        `n_categories`: column -> number of category codes of each categorical column."""
        try:
            return cls._build(booster, feature_types, n_categories)
        except (ValueError, KeyError, xgb.core.XGBoostError):  # a model shape the tables do not know
            return None

    @classmethod
    def _build(cls, booster: xgb.Booster, feature_types: list[str], n_categories: dict[int, int]) -> ShapTables | None:
        parsed = _parse_trees(booster)
        if parsed is None:
            return None
        splits, n_out = parsed
        features = _features_of(splits, feature_types, n_categories)
        if features is None:
            return None
        specs = _cell_specs(splits, features, n_out, len(feature_types))
        if specs is None:
            return None
        trees = _tables_from_xgboost(booster, specs, feature_types, n_out)
        return _checked(cls, booster, features, trees, feature_types, n_out)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, F) model matrix (categories as codes, missing as NaN) -> (n, K, F + 1) float64,
        laid out like XGBoost's `pred_contribs` (the last column is the bias)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_columns:
            raise ValueError("feature matrix does not have one column per model field")
        n = len(X)
        with np.errstate(invalid="ignore"):
            if np.any(np.abs(X) > _FLOAT32_MAX):
                raise ValueError("feature matrix holds an infinite value or one beyond float32")
        if n <= SMALL_BATCH:
            return self._contributions_loop(X)
        classes = {col: f.classes(X[:, col]) for col, f in self.features.items()}
        out = np.zeros((self.n_outputs, self.n_columns + 1, n))  # rows last: contiguous adds
        cell = np.empty(n, dtype=np.int32)
        buf = np.empty(n)
        for tree in self.trees:
            np.take(tree.lookups[0], classes[tree.columns[0]], out=cell)
            for col, lookup in zip(tree.columns[1:], tree.lookups[1:]):
                cell += lookup.take(classes[col])
            acc = out[tree.output]
            for j, col in enumerate(tree.columns):
                np.take(tree.table[j], cell, out=buf)
                acc[col] += buf
        out[:, -1, :] = self.bias[:, None]
        return out.transpose(2, 0, 1)

    def classes_matrix(self, X: np.ndarray) -> np.ndarray:
        """(n, F) class of every value of a model matrix (0 in columns no tree splits on)."""
        cls = np.zeros(X.shape, dtype=np.intp)
        for col, f in self.features.items():
            cls[:, col] = f.classes(X[:, col])
        return cls

    def pairs_of(self, columns) -> np.ndarray:
        """The (tree, column) pairs of the model columns `columns`, for `partial_cells`."""
        return self._flat.pairs_of(columns)

    def partial_cells(self, X: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """(n, T) the part of every tree's cell index that the columns of `pairs` (`pairs_of`)
        of the rows `X` set (the `cell_offsets` of disjoint parts add up, for `margins_at`)."""
        return self._flat.partial_cells(self.classes_matrix(np.asarray(X)), pairs)

    def cell_offsets(self, cells: np.ndarray) -> np.ndarray:
        """(..., T) every tree's cell (or a part of it) -> its offset in the flat tables, for
        `margins_at`; offsets of disjoint parts add up like cells (one side must be a part)."""
        return self._flat.cell_offsets(cells)

    def margins_at(self, offsets: np.ndarray) -> np.ndarray:
        """(..., T) `cell_offsets` -> (..., K) the booster's margins (XGBoost's, up to float32
        rounding: ~1e-4 for thousands of trees)."""
        return self._flat.margins_at(offsets, self.bias)

    def _contributions_loop(self, X: np.ndarray) -> np.ndarray:
        """`contributions` for a few rows: each value classed in plain Python, then every tree
        of every row in a handful of numpy calls over all (tree, column) pairs (`shap_rows`) (one HTTP record:
        no per-tree Python work). The same float64 additions in the same order, so the same bits
        as the vectorized path."""
        features = list(self.features.items())
        cls = np.zeros((len(X), self.n_columns), dtype=np.intp)
        for i, row in enumerate(X.tolist()):
            for col, f in features:
                cls[i, col] = f.class_of(row[col])
        out = np.empty((len(X), self.n_outputs, self.n_columns + 1))
        out[:, :, :-1] = self._flat.add_up(cls)
        out[:, :, -1] = self.bias
        return out


def _parse_trees(booster: xgb.Booster) -> tuple[list[list], int] | None:
    """Each tree's reachable splits and the number of outputs, or None for a model shape
    the tables do not know (DART, forests, vector leaves, linear, no trees)."""
    model = json.loads(booster.save_raw("json"))
    gb = model["learner"]["gradient_booster"]
    if gb.get("name") != "gbtree":
        return None
    m = gb["model"]
    if int(m["gbtree_model_param"].get("num_parallel_tree", 1)) != 1:
        return None
    trees_json, tree_info = m["trees"], [int(t) for t in m["tree_info"]]
    if not trees_json or any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 for t in trees_json):
        return None
    n_out = max(tree_info) + 1
    if len(trees_json) != booster.num_boosted_rounds() * n_out or tree_info != [t % n_out for t in range(len(tree_info))]:
        return None
    return [_splits(t) for t in trees_json], n_out


def _features_of(splits: list[list], feature_types: list[str], n_categories: dict[int, int]) -> dict[int, _Feature] | None:
    """The global classes of every feature any tree splits on (None if a split's kind
    disagrees with the column's type)."""
    thresholds: dict[int, list[float]] = {}
    for tree in splits:
        for col, is_cat, cond, _dl, _cats in tree:
            if is_cat != (feature_types[col] == "c"):
                return None
            values = thresholds.setdefault(col, [])
            if not is_cat:
                values.append(cond)
    features = {}
    for col, values in thresholds.items():
        if feature_types[col] == "c":
            features[col] = _Feature(col, True, np.zeros(0, np.float32), int(n_categories[col]))
        else:
            features[col] = _Feature(col, False, np.unique(np.asarray(values, dtype=np.float32)), 0)
    return features


def _cell_specs(splits: list[list], features: dict[int, _Feature], n_out: int, n_cols: int) -> list[tuple] | None:
    """Per tree with splits: (iteration, output, columns, lookups, one representative row
    per cell); None when a tree or all trees together have too many cells."""
    specs, total_cells = [], 0
    for t, tree in enumerate(splits):
        it, out = divmod(t, n_out)
        if not tree:  # a single leaf: contributes to the bias only
            continue
        cols = sorted({s[0] for s in tree})
        locals_, reps = [], []
        for col in cols:
            f = features[col]
            nodes = [s for s in tree if s[0] == col]
            sig = np.array([[_decision(f, g, s) for s in nodes] for g in range(f.n_classes)], dtype=np.int8)
            _, first, local = np.unique(sig, axis=0, return_index=True, return_inverse=True)
            locals_.append(local.reshape(-1).astype(np.int32))
            reps.append([f.representative(int(g)) for g in first])
        sizes = [len(r) for r in reps]
        n_cells = int(np.prod(sizes))
        total_cells += n_cells
        if n_cells > MAX_CELLS or total_cells > MAX_TOTAL_CELLS:
            return None
        strides = np.cumprod([1] + sizes[::-1])[:-1][::-1]  # C order over cols
        R = np.full((n_cells, n_cols), np.nan)
        for c, combo in enumerate(itertools.product(*[range(s) for s in sizes])):
            for col, r, k in zip(cols, reps, combo):
                R[c, col] = r[k]
        specs.append((it, out, cols, [(loc * int(s)).astype(np.int32) for loc, s in zip(locals_, strides)], R))
    return specs


def _tables_from_xgboost(booster: xgb.Booster, specs: list[tuple], feature_types: list[str], n_out: int) -> list[_Tree]:
    """XGBoost's contributions of each tree for its cells: one sliced booster and one call
    per boosting round (all outputs' trees of the round together)."""
    n_cols = len(feature_types)
    trees = []
    for it, group in itertools.groupby(specs, key=lambda s: s[0]):
        group = list(group)
        R = np.concatenate([g[4] for g in group])
        dm = xgb.DMatrix(R, feature_names=booster.feature_names, feature_types=feature_types,
                         enable_categorical=True, nthread=1)
        contrib = booster[it:it + 1].predict(dm, pred_contribs=True, validate_features=False)
        contrib = contrib.reshape(len(R), n_out, n_cols + 1)
        start = 0
        for _it, out, cols, lookups, Rt in group:
            part = contrib[start:start + len(Rt), out, cols]
            start += len(Rt)
            trees.append(_Tree(out, np.asarray(cols, dtype=np.intp), lookups, np.ascontiguousarray(part.T, dtype="float64")))
    return trees


def _checked(cls, booster: xgb.Booster, features: dict[int, _Feature], trees: list[_Tree], feature_types: list[str],
             n_out: int) -> ShapTables | None:
    """The tables, if they agree with `pred_contribs` on the probe rows and the row loop
    classes every probe value as the vectorized path does; else None."""
    n_cols = len(feature_types)
    probe = _probe_rows(features, n_cols)
    dm = xgb.DMatrix(probe, feature_names=booster.feature_names, feature_types=feature_types,
                     enable_categorical=True, nthread=1)
    want = booster.predict(dm, pred_contribs=True, validate_features=False).reshape(len(probe), n_out, n_cols + 1)
    tables = cls(features, trees, want[0, :, -1].astype("float64"), n_cols)
    if not np.allclose(tables.contributions(probe), want, rtol=0.0, atol=CHECK_TOL, equal_nan=False):
        return None
    # the row loop adds the same table values in the same order as the vectorized path;
    # what could differ is how it classes a value: check that on every probe value
    for col, f in features.items():
        values = np.unique(probe[:, col])  # NaN once (numpy >= 1.21)
        if [f.class_of(float(v)) for v in values] != f.classes(values).tolist():
            return None
    return tables


def _splits(tree: dict) -> list[tuple[int, bool, float, bool, frozenset]]:
    """Reachable split nodes of one tree: (column, categorical, threshold, default_left, category set)."""
    left, right = tree["left_children"], tree["right_children"]
    cat_sets = {}
    nodes, segs, sizes, cats = (tree.get("categories_nodes", []), tree.get("categories_segments", []),
                                tree.get("categories_sizes", []), tree.get("categories", []))
    for node, seg, size in zip(nodes, segs, sizes):
        cat_sets[int(node)] = frozenset(int(c) for c in cats[int(seg):int(seg) + int(size)])
    split_type = tree.get("split_type", [0] * len(left))
    out, stack = [], [0]
    while stack:
        i = stack.pop()
        if left[i] == -1:
            continue
        is_cat = int(split_type[i]) == 1
        out.append((int(tree["split_indices"][i]), is_cat, float(np.float32(tree["split_conditions"][i])),
                    bool(tree["default_left"][i]), cat_sets.get(i, frozenset())))
        stack += [left[i], right[i]]
    return out


def _decision(f: _Feature, g: int, split) -> int:
    """1 if a value of class g goes left at `split`, else 0. XGBoost sends a number below
    the threshold left and the categories in a split's set right; missing values take
    the split's default direction."""
    _col, is_cat, cond, default_left, cat_set = split
    if g == f.n_classes - 1:  # missing
        return int(default_left)
    if is_cat:
        return int(g not in cat_set)
    return int(f.representative(g) < cond)


def _probe_rows(features: dict[int, _Feature], n_cols: int, n: int = 512) -> np.ndarray:
    """Rows for the build check: every class of every feature (and, for numbers, the value
    just below each threshold) at least once, combined at random across features."""
    rng = np.random.default_rng(0)
    values = {}
    for col, f in features.items():
        v = [f.representative(g) for g in range(f.n_classes)]
        if not f.categorical:  # the edge from the other side
            v += [float(np.nextafter(t, np.float32(-np.inf))) for t in f.thresholds]
        values[col] = np.asarray(v)
    n = max([n] + [len(v) for v in values.values()])
    X = np.full((n, n_cols), np.nan)
    for col, v in values.items():
        X[:, col] = v[np.concatenate([np.arange(len(v)), rng.integers(0, len(v), n - len(v))])]
    return X
