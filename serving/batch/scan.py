"""The first pass over the input: the row count (for the progress bar) and the
subject_ids that occur more than once anywhere in the file, reading the subject_id
column only. The contract rejects every copy of a duplicated id, so each chunk is later
validated knowing them, however far apart the copies are."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.io import iter_table
from data_contracts.validate import subject_ids


def _iter_id_column(path: Path, chunk_rows: int) -> Iterator[pd.Series]:
    """The subject_id column in chunks, read as every other pass reads the file (CSV dialect,
    forgiven header case); a parser failure is a one-line ContractFileError."""
    for frame in iter_table(path, chunk_rows, columns=["subject_id"], notify=None):
        yield frame["subject_id"]


def _id_hashes(ids: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The chunk's present ids (as the contract reads them) and their 64-bit hashes."""
    ids = subject_ids(ids)
    ids = ids[ids.notna()]
    return ids, pd.util.hash_pandas_object(ids, index=False).to_numpy()


def scan_ids(path: str | os.PathLike, chunk_rows: int = 200_000) -> tuple[int, pd.Index]:
    """(number of data rows, subject_ids occurring more than once), reading only the
    subject_id column. Holds 8 bytes of hash per row; a second id-only pass (only when
    some hash repeats) confirms the duplicates exactly."""
    p = Path(path)
    n = 0
    parts: list[np.ndarray] = []
    for col in _iter_id_column(p, chunk_rows):
        n += len(col)
        parts.append(_id_hashes(col)[1])
    h = np.concatenate(parts) if parts else np.zeros(0, dtype="uint64")
    del parts
    h.sort()
    repeated = np.unique(h[1:][h[1:] == h[:-1]])
    del h
    if not len(repeated):
        return n, pd.Index([], dtype=object)
    cands = []
    for col in _iter_id_column(p, chunk_rows):
        ids, hh = _id_hashes(col)
        cands.append(ids[np.isin(hh, repeated)])
    c = pd.concat(cands, ignore_index=True)
    return n, pd.Index(c[c.duplicated(keep=False)].unique(), dtype=object)
