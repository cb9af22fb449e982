"""The report artifacts of a training run: SHAP summaries, calibration curves, the
confusion matrix, subgroup metrics, the search trials and the model card, written to
one folder (logged as the run's `report/`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model_runtime.links import ORDINAL_OUTPUT
from training import plots
from training.config import TrainConfig
from training.model_card import model_card
from training.steps import Trained


def _shap_title(output: str) -> str:
    if output == ORDINAL_OUTPUT:
        return ("Contributions to the expected change of the pain threshold (%-points; right = toward "
                "hypoalgesia), exact TreeSHAP")
    return f"Contributions to the {output} margin (log-odds), exact TreeSHAP"


def write_report(folder: Path, trained: Trained, cfg: TrainConfig, *, name: str, data_name: str, dropped: int) -> Path:
    """Write every report artifact of `trained` into `folder` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    prep, ev, predictor = trained.prep, trained.evaluation, trained.predictor
    yte = prep.y[prep.te]
    n_plot = min(len(prep.te), 2000)
    X_plot = prep.X.iloc[prep.te[:n_plot]]
    ex = ev.explanation
    for k, output in enumerate(predictor.outputs):
        if output != "no_change":
            plots.shap_summary(ex.contributions[:n_plot], ex.base[:n_plot], X_plot, k, _shap_title(output),
                               str(folder / f"shap_summary_{output}.png"))
    extra = {"logistic regression": ev.baselines["logreg"]}
    if ev.oracle_P is not None:
        extra["oracle (truth)"] = ev.oracle_P
    plots.calibration_curves(yte, ev.P, str(folder / "calibration_curves.png"), extra=extra)
    cm = plots.confusion(yte, ev.P, str(folder / "confusion_matrix.png"))
    plots.decision_curves(ev.decision_curves, predictor.meta.risk_cutoffs, str(folder / "decision_curves.png"))
    ev.decision_curves.to_csv(folder / "decision_curves.csv", index=False)
    curve = ev.extra.get("learning_curve")
    if curve is not None and len(curve):
        plots.learning_curve(curve, str(folder / "learning_curve.png"))
        curve.to_csv(folder / "learning_curve.csv", index=False)
    ev.subgroups.to_csv(folder / "subgroup_metrics.csv", index=False)
    ev.calibration_cells.to_csv(folder / "subgroup_calibration.csv", index=False)
    trials = pd.DataFrame([t.__dict__ | t.params for t in trained.search.trials]).drop(columns=["params"])
    trials.to_csv(folder / "search_trials.csv", index=False)
    card = model_card(name=name, cfg=cfg, metrics=ev.metrics, intervals=ev.intervals, subgroups=ev.subgroups,
                      calibration_cells=ev.calibration_cells,
                      meta=predictor.meta, split=prep.split.description, n_rows=len(prep.df), dropped=dropped,
                      data_name=data_name, synthetic=ev.oracle_P is not None, confusion=cm)
    (folder / "model_card.md").write_text(card)
    return folder
