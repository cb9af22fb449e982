"""Reading and writing cohort files (CSV or Parquet), whole or in chunks.

Every failure to read a file at all becomes a one-line `ContractFileError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from data_contracts.validate import ContractFileError, missing_required

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_STRING_COLUMNS = {"subject_id": "str", "site": "str"}


def file_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ContractFileError(f"{Path(path).name}: not a CSV or Parquet file (expected .csv or .parquet)")
    return SUFFIXES[suffix]


def _check_columns(columns: list[str], path: Path) -> None:
    if not columns:
        raise ContractFileError(f"{path.name}: the file has no columns")
    missing = missing_required(columns)
    if missing:
        raise ContractFileError(f"{path.name}: missing required column(s): " + ", ".join(missing))


def read_columns(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise ContractFileError(f"{p.name}: no such file")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(p).schema_arrow.names)
        return list(pd.read_csv(p, nrows=0).columns)
    except ContractFileError:
        raise
    except pd.errors.EmptyDataError:
        raise ContractFileError(f"{p.name}: the file is empty") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a one-line reason
        raise ContractFileError(f"{p.name}: cannot be read as {fmt} ({type(exc).__name__})") from None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a whole cohort file. Raises ContractFileError when it cannot be read at all."""
    frames = list(iter_table(path, chunk_rows=None))
    return frames[0]


def iter_table(path: str | os.PathLike, chunk_rows: int | None = 200_000) -> Iterator[pd.DataFrame]:
    """Yield the file in chunks of at most `chunk_rows` rows (None: the whole file at once).

    Chunks keep a RangeIndex continuing across chunks, so index = 0-based data row.
    """
    p = Path(path)
    fmt = file_format(p)
    columns = read_columns(p)
    _check_columns(columns, p)
    dtype = {c: t for c, t in _STRING_COLUMNS.items() if c in columns}
    empty = True
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # pre_buffer=False: with pre-buffering, iter_batches keeps what it read until the
            # file is closed, so memory grew with the file size (~40 MB per million rows)
            pf = pq.ParquetFile(p, pre_buffer=False)
            start = 0
            if chunk_rows is None:
                frames = [pf.read().to_pandas()]
            else:
                frames = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows))
            for frame in frames:
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                if len(frame):
                    empty = False
                    yield frame
        else:
            reader = pd.read_csv(p, dtype=dtype, chunksize=chunk_rows, keep_default_na=True)
            for frame in [reader] if chunk_rows is None else reader:
                if len(frame):
                    empty = False
                    yield frame
    except ContractFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ContractFileError(f"{p.name}: cannot be read as {fmt} ({type(exc).__name__})") from None
    if empty:
        raise ContractFileError(f"{p.name}: the file has no data rows")


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write CSV or Parquet by suffix."""
    p = Path(path)
    fmt = file_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(p, index=False)
    else:
        df.to_csv(p, index=False)
