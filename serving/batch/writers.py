"""The job's files: default names, the checks made before any work, the columns of the
scores file and one chunk's rows of it, and the writers that keep every output complete
or absent (each is written as `NAME.partial` and renamed only when the job succeeded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.fields import RESPONSES
from data_contracts.io import SUFFIXES, file_format, require_columns
from data_contracts.validate import ContractFileError
from model_runtime.links import CHANGE_LINKS
from serving.batch.options import RISK_LEVELS


# ------------------------------------------------------------------------------------
# names and checks
# ------------------------------------------------------------------------------------
def default_rejects_path(out: Path) -> Path:
    """`<out stem>.rejects.csv` next to the scores file."""
    return out.with_name(f"{out.stem}.rejects.csv")


def default_report_path(out: Path) -> Path:
    """`<out stem>.report.html` next to the scores file."""
    return out.with_name(f"{out.stem}.report.html")


def partial_path(path: Path) -> Path:
    """Where `path` is written until the job has succeeded."""
    return path.with_name(path.name + ".partial")


def check_paths(path: Path, out: Path, rejects: Path, report: Path | None) -> None:
    """One-line ContractFileError for anything wrong with the files, before any work."""
    file_format(path)
    if not path.exists():
        raise ContractFileError(f"{path.name}: no such file")
    if Path(out).suffix.lower() not in SUFFIXES:
        raise ContractFileError(f"{Path(out).name}: the output must be a .csv or .parquet file")
    if Path(rejects).suffix.lower() != ".csv":
        raise ContractFileError(f"{Path(rejects).name}: the rejects file is a .csv file")
    resolved = {Path(path).resolve(), Path(out).resolve(), Path(rejects).resolve()}
    if report is not None:
        resolved.add(Path(report).resolve())
    if len(resolved) != (4 if report is not None else 3):
        raise ContractFileError("the input, output, rejects and report files must be different files")
    require_columns(path)  # one line naming the missing columns and the headers that look like them


# ------------------------------------------------------------------------------------
# the scores table
# ------------------------------------------------------------------------------------
def change_columns(predictor) -> tuple[str, ...]:
    """The columns of the expected change, its spread and the prediction intervals a model
    gives (none for a class-margin model; no intervals without a conformal calibration)."""
    if predictor.link not in CHANGE_LINKS:
        return ()
    levels = predictor.meta.conformal.get("levels", {}) if predictor.meta.conformal else {}
    return ("expected_change_pct", "change_sd_pct") + tuple(
        f"change_{side}{level}_pct" for level in levels for side in ("lo", "hi"))


def change_arrays(predictor, margins: np.ndarray, conditions) -> list[np.ndarray]:
    """The values of `change_columns`, in order."""
    change = predictor.change_of(margins)
    if change is None:
        return []
    out = [change[0], change[1]]
    for iv in (predictor.intervals(margins, conditions) or {}).values():
        out += [iv[:, 0], iv[:, 1]]
    return out


def output_schema(outputs: tuple[str, ...], fields: tuple[str, ...], explain: str, top_k: int,
                  change: tuple[str, ...] = ()) -> pa.Schema:
    """Columns of the scores file, in order (the same for every chunk and engine)."""
    cols = [pa.field("subject_id", pa.string(), nullable=False)]
    cols += [pa.field(f"p_{r}", pa.float64()) for r in RESPONSES]
    cols += [pa.field("predicted_response", pa.string()), pa.field("hyperalgesia_risk", pa.string())]
    cols += [pa.field(name, pa.float64()) for name in change]
    if explain == "top":
        for i in range(1, min(top_k, len(fields)) + 1):
            cols += [pa.field(f"top{i}_field", pa.string()), pa.field(f"top{i}_contribution", pa.float64()),
                     pa.field(f"top{i}_toward", pa.string())]
    elif explain == "full":
        for o in outputs:
            cols += [pa.field(f"margin_{o}", pa.float64()), pa.field(f"base_{o}", pa.float64())]
            cols += [pa.field(f"contrib_{o}__{f}", pa.float64()) for f in fields]
    return pa.schema(cols)


def _labels(codes: np.ndarray, labels: tuple[str, ...] | list[str]) -> pa.Array:
    """Strings from integer codes without a Python loop (dictionary array, then cast)."""
    indices = pa.array(np.asarray(codes, dtype="int32"))
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(labels), pa.string())).cast(pa.string())


def build_table(ids: pd.Series, P: np.ndarray, risk: np.ndarray, ex, explain: str, top_k: int,
                schema: pa.Schema, change: list[np.ndarray] = ()) -> pa.Table:
    """The output rows of one chunk (vectorized; `ex` is the predictor's Explanation,
    `change` the arrays of `change_columns`)."""
    from serving.explain import top_fields

    cols: list[pa.Array] = [pa.array(ids.astype("str").to_numpy(dtype=object), pa.string())]
    cols += [pa.array(np.ascontiguousarray(P[:, k], dtype="float64")) for k in range(len(RESPONSES))]
    cols.append(_labels(P.argmax(axis=1), RESPONSES))
    cols.append(_labels(risk, RISK_LEVELS))
    cols += [pa.array(np.ascontiguousarray(v, dtype="float64")) for v in change]
    if explain == "top":
        idx, val, tow = top_fields(ex.reasons(), top_k)
        for j in range(idx.shape[1]):
            cols += [_labels(idx[:, j], ex.fields), pa.array(np.ascontiguousarray(val[:, j], dtype="float64")),
                     _labels(tow[:, j], RESPONSES)]
    elif explain == "full":
        for k in range(len(ex.outputs)):
            cols += [pa.array(np.ascontiguousarray(ex.margins[:, k], dtype="float64")),
                     pa.array(np.ascontiguousarray(ex.base[:, k], dtype="float64"))]
            cols += [pa.array(np.ascontiguousarray(ex.contributions[:, k, j], dtype="float64"))
                     for j in range(len(ex.fields))]
    return pa.Table.from_arrays(cols, schema=schema)


# ------------------------------------------------------------------------------------
# writers: complete or absent
# ------------------------------------------------------------------------------------
class TableWriter:
    """Writes the scores to `<out>.partial`; `commit` renames it to `<out>`."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.tmp = partial_path(path)
        self.fmt = file_format(path)
        self.schema = schema
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._w = pq.ParquetWriter(self.tmp, schema)
        else:
            import pyarrow.csv as pacsv

            self._w = pacsv.CSVWriter(self.tmp, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))

    def write(self, table: pa.Table) -> None:
        """Append one chunk's rows."""
        if table.num_rows:
            self._w.write_table(table)

    def close(self) -> None:
        """Finish the partial file (a Parquet footer is written here)."""
        if self._w is not None:
            self._w.close()
            self._w = None

    def commit(self) -> None:
        """Close and move the partial file to its final name."""
        self.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Delete the partial file; never raises over the failure being handled."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - cleaning up after a failure
            pass
        self.tmp.unlink(missing_ok=True)


class RejectsWriter:
    """Writes the rejected rows (`eih validate --rejects` format) to `<rejects>.partial`;
    the header is written at once so that a job without rejects still gives the file."""

    def __init__(self, path: Path):
        from data_contracts.report import write_problems
        from data_contracts.validate import PROBLEM_COLUMNS

        self.path = path
        self.tmp = partial_path(path)
        self._write = write_problems
        write_problems(pd.DataFrame(columns=PROBLEM_COLUMNS), self.tmp)

    def write(self, problems: pd.DataFrame) -> None:
        """Append one chunk's problems."""
        if len(problems):
            self._write(problems, self.tmp, append=True)

    def commit(self) -> None:
        """Move the partial file to its final name."""
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Delete the partial file."""
        self.tmp.unlink(missing_ok=True)


def write_report(path: Path, html: str) -> None:
    """The cohort report, written beside its final name and renamed in one step."""
    tmp = partial_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
