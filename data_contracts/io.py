"""Reading and writing cohort files (CSV or Parquet), whole or in chunks.

Every door that reads a cohort file (validate, score, train) comes through here, so the
forgiving parts of reading live here too, working on the header and never on values:

- the CSV delimiter (comma, semicolon or tab) is taken from the header line of the first
  few KB; a semicolon file whose numbers use a decimal comma (common in clinic exports)
  is read with `decimal=","`;
- a header that differs from a contract name only by case or surrounding whitespace
  (`AGE_YEARS`, ` sex `) is renamed to the contract's name, with a one-line notice;
- a missing required column is reported with the near-miss headers that look like it
  (`age` looks like `age_years`), matched by name only (`column_hints`).

Every failure to read a file at all becomes a one-line `ContractFileError`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_contracts.fields import BY_NAME, KNOWN_COLUMNS
from data_contracts.validate import ContractFileError, missing_required

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_STRING_COLUMNS = ("subject_id", "site")
SNIFF_BYTES = 16_384
"""How much of a CSV file is looked at to choose its delimiter and decimal mark."""
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}

log = logging.getLogger(__name__)
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Header:
    """How a cohort file is read: its format, CSV dialect and columns.

    `columns` are the names the reader yields (contract names where a header was
    forgiven); `renamed` maps each forgiven header, as written in the file, to its
    contract name."""

    name: str
    fmt: str
    file_columns: tuple[str, ...]
    renamed: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    decimal: str = "."

    @property
    def columns(self) -> list[str]:
        return [self.renamed.get(c, c) for c in self.file_columns]

    @property
    def notices(self) -> list[str]:
        """One line per way in which the file was read other than as written in the
        contract (column names only, never a value)."""
        out = []
        if self.fmt == "csv" and (self.delimiter != "," or self.decimal != "."):
            mark = " with decimal commas" if self.decimal == "," else ""
            out.append(f"{self.name}: read as a {DELIMITERS[self.delimiter]}-separated file{mark}")
        if self.renamed:
            pairs = [f"'{src}' as {dst}" for src, dst in self.renamed.items()]
            more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
            out.append(
                f"{self.name}: {len(pairs)} column name(s) differ from the contract only in case or surrounding "
                f"spaces and are read under the contract's names: " + ", ".join(pairs[:5]) + more
            )
        return out


def file_format(path: str | os.PathLike) -> str:
    """'csv' or 'parquet' by the file's suffix; ContractFileError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ContractFileError(f"{Path(path).name}: not a CSV or Parquet file (expected .csv or .parquet)")
    return SUFFIXES[suffix]


_QUOTED = re.compile(r'"[^"]*"')
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+$")


def sniff_csv(path: str | os.PathLike) -> tuple[str, str]:
    """(delimiter, decimal mark) of a CSV file, from its first `SNIFF_BYTES` bytes.

    The delimiter is whichever of comma, semicolon and tab the header line holds most
    of (outside quotes; comma on a tie or when none is found). The decimal mark is ','
    only in a semicolon file whose sampled data fields hold more numbers written with a
    decimal comma than with a decimal point."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    lines = head.decode("utf-8-sig", errors="replace").splitlines()
    if len(head) == SNIFF_BYTES and len(lines) > 2:
        lines = lines[:-1]  # the last line may be cut short
    header = _QUOTED.sub("", lines[0]) if lines else ""
    delimiter = max(DELIMITERS, key=header.count)
    if not header.count(delimiter):
        delimiter = ","
    decimal = "."
    if delimiter == ";":
        fields = [f.strip().strip('"').strip() for line in lines[1:] for f in line.split(";")]
        commas = sum(1 for f in fields if _DECIMAL_COMMA.match(f))
        points = sum(1 for f in fields if _DECIMAL_POINT.match(f))
        decimal = "," if commas > points else "."
    return delimiter, decimal


def forgiven_names(columns: Sequence[str]) -> dict[str, str]:
    """{header: contract name} for headers that differ from a contract name only by case
    or surrounding whitespace, where that name is not in the file already and no other
    header claims it (then both stay as written and are reported as unknown)."""
    present = set(columns)
    claims: dict[str, list[str]] = {}
    for col in columns:
        key = str(col).strip().lower()
        if col not in BY_NAME and key in BY_NAME and key not in present:
            claims.setdefault(key, []).append(col)
    return {cols[0]: key for key, cols in claims.items() if len(cols) == 1}


# names clinics commonly use that neither prefix nor spelling similarity would find
ALIASES = {
    "id": "subject_id", "subject": "subject_id", "participant_id": "subject_id", "patient_id": "subject_id",
    "pseudonym": "subject_id", "gender": "sex", "bmi": "bmi_kg_m2", "condition": "pain_condition",
    "diagnosis": "pain_condition", "mechanism": "pain_mechanism", "nrs": "pain_intensity_nrs",
    "pain_nrs": "pain_intensity_nrs", "ppt": "ppt_baseline_kpa", "ppt_pre": "ppt_baseline_kpa",
    "ppt_pre_kpa": "ppt_baseline_kpa", "cpm": "cpm_pct", "tsk": "tsk17_total", "tsk_17": "tsk17_total",
    "tsk_total": "tsk17_total", "hads_a": "hads_anxiety", "hads_d": "hads_depression", "bdnf": "bdnf_ng_ml",
    "il_6": "il6_pg_ml", "modality": "exercise_modality",
}
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _norm(name: str) -> str:
    return _NOT_WORD.sub("_", str(name).lower()).strip("_")


def column_hints(columns: Sequence[str], candidates: Sequence[str] | None = None) -> dict[str, list[str]]:
    """{header not in the contract: contract names it looks like}, by name only.

    `candidates` are the contract names a header may be taken for (default: those not
    among `columns`). Tried in order, the first that finds any wins: the same name once
    case and punctuation are ignored (`Age (years)`), a common alias (`gender`), a
    prefix either way (`age` -> `age_years`; at most three), spelling (difflib)."""
    import difflib

    present = set(columns)
    if candidates is None:
        candidates = [c for c in KNOWN_COLUMNS if c not in present]
    hints: dict[str, list[str]] = {}
    for col in columns:
        key = _norm(col)
        if col in BY_NAME or not key or _looks_like_value(col):
            continue
        found = [c for c in candidates if c == key] or [c for c in candidates if ALIASES.get(key) == c]
        if not found:
            found = [c for c in candidates if c.startswith(key + "_") or key.startswith(c + "_")]
            found = found if len(found) <= 3 else []
        found = found or difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
        if found:
            hints[col] = found
    return hints


def missing_columns_message(columns: Sequence[str]) -> str | None:
    """None when every required column is there; else one line naming the missing ones
    and the headers that look like them (names only)."""
    missing = missing_required(list(columns))
    if not missing:
        return None
    text = "missing required column(s): " + ", ".join(missing)
    if len(columns) > 1 and 2 * sum(map(_looks_like_value, columns)) >= len(columns):
        # a first line of values: not one of them is repeated
        return text + "; the first line looks like data, not a header (`eih template` writes the contract's header)"
    if len(columns) == 1:
        return (text + "; the header was read as one column: is the file separated by something other than comma,"
                " semicolon or tab?")
    hints = column_hints(columns, missing)
    if hints:
        text += "; " + "; ".join(f"`{col}` looks like " + " or ".join(f"`{c}`" for c in found)
                                 for col, found in hints.items())
    return text


def _looks_like_value(name: str) -> bool:
    """A header that is a number is a record value (a file without a header line): it is
    never repeated in a message."""
    try:
        float(str(name).strip().replace(",", "."))
    except ValueError:
        return False
    return True


def read_header(path: str | os.PathLike) -> Header:
    """Read only the header of a cohort file (and, for a CSV, sniff its dialect).

    Raises ContractFileError when the file cannot be read at all."""
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise ContractFileError(f"{p.name}: no such file")
    delimiter, decimal = ",", "."
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            columns = list(pq.ParquetFile(p).schema_arrow.names)
        else:
            delimiter, decimal = sniff_csv(p)
            columns = list(pd.read_csv(p, nrows=0, sep=delimiter).columns)
    except pd.errors.EmptyDataError:
        raise ContractFileError(f"{p.name}: the file is empty") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a one-line reason
        raise ContractFileError(f"{p.name}: cannot be read as {fmt} ({type(exc).__name__})") from None
    columns = [str(c) for c in columns]
    return Header(p.name, fmt, tuple(columns), forgiven_names(columns), delimiter, decimal)


def read_columns(path: str | os.PathLike) -> list[str]:
    """The file's column names as the readers yield them (case-forgiven contract names)."""
    return read_header(path).columns


def require_columns(path: str | os.PathLike) -> Header:
    """`read_header`, raising ContractFileError when a required column is missing (the
    message names near-miss headers that look like the missing columns)."""
    header = read_header(path)
    if not header.file_columns:
        raise ContractFileError(f"{header.name}: the file has no columns")
    message = missing_columns_message(header.columns)
    if message:
        raise ContractFileError(f"{header.name}: {message}")
    return header


def _log_notice(text: str) -> None:
    log.warning("%s", text)


def read_table(path: str | os.PathLike, *, notify: Notify | None = _log_notice) -> pd.DataFrame:
    """Read a whole cohort file. Raises ContractFileError when it cannot be read at all.

    `notify` receives each line of `Header.notices` (default: a warning on this module's
    logger; None: silent)."""
    frames = list(iter_table(path, chunk_rows=None, notify=notify))
    return frames[0]


def iter_table(
    path: str | os.PathLike,
    chunk_rows: int | None = 200_000,
    *,
    columns: Sequence[str] | None = None,
    notify: Notify | None = _log_notice,
) -> Iterator[pd.DataFrame]:
    """Yield the file in chunks of at most `chunk_rows` rows (None: the whole file at once).

    Chunks keep a RangeIndex continuing across chunks, so index = 0-based data row.
    Columns carry the contract's names where a header was forgiven (see `read_header`);
    `columns` (contract names) reads only those columns, e.g. `["subject_id"]` for a
    first pass over the ids. `notify` as in `read_table`, called before the first chunk.
    """
    header = require_columns(path) if columns is None else read_header(path)  # a subset needs only itself
    p = Path(path)
    for line in header.notices if notify is not None else ():
        notify(line)
    source = {header.renamed.get(c, c): c for c in header.file_columns}
    if columns is not None:
        unknown = [c for c in columns if c not in source]
        if unknown:
            raise ContractFileError(f"{p.name}: no column(s) " + ", ".join(unknown))
        wanted = [source[c] for c in columns]
    else:
        wanted = None
    empty = True
    try:
        if header.fmt == "parquet":
            frames = _parquet_frames(p, chunk_rows, wanted)
        else:
            frames = _csv_frames(p, header, chunk_rows, wanted)
        for frame in frames:
            if header.renamed:
                frame = frame.rename(columns=header.renamed)
            if len(frame):
                empty = False
                yield frame
    except ContractFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ContractFileError(f"{p.name}: cannot be read as {header.fmt} ({type(exc).__name__})") from None
    if empty:
        raise ContractFileError(f"{p.name}: the file has no data rows")


def _parquet_frames(p: Path, chunk_rows: int | None, wanted: list[str] | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    # pre_buffer=False: with pre-buffering, iter_batches keeps what it read until the
    # file is closed, so memory grew with the file size (~40 MB per million rows)
    pf = pq.ParquetFile(p, pre_buffer=False)
    if chunk_rows is None:
        batches = [pf.read(columns=wanted)]
    else:
        batches = pf.iter_batches(batch_size=chunk_rows, columns=wanted)
    start = 0
    for batch in batches:
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


def _csv_frames(p: Path, header: Header, chunk_rows: int | None, wanted: list[str] | None) -> Iterator[pd.DataFrame]:
    contract = {header.renamed.get(c, c): c for c in header.file_columns}
    dtype = {contract[c]: "str" for c in _STRING_COLUMNS if c in contract}
    if wanted is not None:
        dtype = {c: t for c, t in dtype.items() if c in wanted}
    reader = pd.read_csv(
        p, sep=header.delimiter, decimal=header.decimal, dtype=dtype, usecols=wanted,
        chunksize=chunk_rows, keep_default_na=True,
    )
    if chunk_rows is None:
        yield reader
    else:
        yield from reader


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write CSV or Parquet by suffix."""
    p = Path(path)
    fmt = file_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(p, index=False)
    else:
        df.to_csv(p, index=False)


def read_side_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table keyed by subject_id that is not a cohort (an oracle or retest file):
    CSV (delimiter and decimal mark sniffed) or Parquet, no contract columns required."""
    p = Path(path)
    fmt = file_format(p)
    try:
        if fmt == "parquet":
            return pd.read_parquet(p)
        delimiter, decimal = sniff_csv(p)
        return pd.read_csv(p, sep=delimiter, decimal=decimal, dtype={"subject_id": "str"})
    except Exception as exc:  # noqa: BLE001
        raise ContractFileError(f"{p.name}: cannot be read as {fmt} ({type(exc).__name__})") from None
