"""Contract frames of a simulated draw: the cohort, and the retest day of the same people."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, FIELDS
from simulation import model as M

if TYPE_CHECKING:  # pragma: no cover
    from simulation.cohort import Draw, Site


def _str_column(values) -> pd.Series:
    import pyarrow as pa

    dt = pd.StringDtype("pyarrow", na_value=np.nan)
    return pa.chunked_array([values]).to_pandas(types_mapper=lambda t: dt if t == pa.string() else None)


def subject_ids(n: int) -> pd.Series:
    """P0000001, P0000002, ... (zero-padded to at least 7 digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    width = max(7, len(str(n)))
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()), width, "0")
    return _str_column(pc.binary_join_element_wise(pa.scalar("P"), digits, ""))


def _frame(cols: dict[str, np.ndarray], n: int, sites: list[Site]) -> pd.DataFrame:
    import pyarrow as pa

    def cat(name: str, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes.astype(np.int8), categories=list(BY_NAME[name].categories))

    data = {}
    for f in FIELDS:
        if f.name == "subject_id":
            data[f.name] = subject_ids(n)
        elif f.name == "site":
            names = pa.array([s.name for s in sites], pa.string())
            data[f.name] = _str_column(names.take(pa.array(cols["site"])))
        elif f.kind == "category":
            data[f.name] = cat(f.name, cols[f.name])
        elif f.name in cols:
            data[f.name] = cols[f.name]
        else:  # pragma: no cover - contract drift guard
            raise RuntimeError(f"simulator does not produce {f.name}")
    return pd.DataFrame(data, copy=False)  # no consolidation copy of 1e6-row columns


_X_FIELDS = {
    "age_years": "age", "pain_intensity_nrs": "nrs", "ppt_baseline_kpa": "ppt", "cpm_pct": "cpm",
    "pcs_total": "pcs", "tsk17_total": "tsk", "pseq_total": "pseq", "exercise_intensity_pct": "inten",
    "exercise_duration_min": "dur", "sex": "sex", "pain_condition": "cond", "exercise_modality": "mod",
}


def _columns_of(d: Draw) -> dict[str, np.ndarray]:
    cols = {name: getattr(d.x, attr) for name, attr in _X_FIELDS.items()}
    cols["site"] = d.site
    cols["pain_duration_months"] = d.duration_months
    cols["pain_mechanism"] = np.where(d.mech_seen, d.mech, -1)
    cols["bdnf_matrix"] = np.where(d.seen[:, M.I_BDNF], d.matrix, -1)
    vals = np.where(d.seen, d.values, np.nan)
    for name, k in M.IDX.items():
        cols[name] = vals[:, k]
    f = BY_NAME["ppt_post_kpa"]
    cols["ppt_post_kpa"] = np.clip(d.x.ppt * (1.0 + d.eih / 100.0), f.min, f.max)
    return cols


def cohort_frame(d: Draw, sites: list[Site]) -> pd.DataFrame:
    """The contract frame of a draw: subject_id, site, every predictor, ppt_post_kpa."""
    return _frame(_columns_of(d), len(d.eih), sites)


def retest_columns(cols: dict[str, np.ndarray], d: Draw) -> dict[str, np.ndarray]:
    """The cohort's columns with the second day's baseline PPT, lactate and outcome: same
    people, protocol, site and questionnaires (a re-test within days, as in Aron 2024)."""
    r = d.retest
    out = dict(cols)
    out["ppt_baseline_kpa"] = r.ppt
    out["lactate_mmol_l"] = np.where(d.seen[:, M.I_LAC], r.lactate, np.nan)
    f = BY_NAME["ppt_post_kpa"]
    out["ppt_post_kpa"] = np.clip(r.ppt * (1.0 + r.eih / 100.0), f.min, f.max)
    return out
