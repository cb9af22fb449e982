"""The cohort report's box "How good is this model, and its limits", from the test
metrics the model carries in its metadata (`training_metrics`: log-loss, AUROC,
calibration error, the simulator's truth when it was trained on simulated data) and the
plain limits a trial committee must read before the numbers."""

from __future__ import annotations

import math

from serving.report_html import esc


def _num(m: dict, key: str) -> float | None:
    """A metric as a float (None when missing or not a number)."""
    v = m.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _ci(m: dict, key: str) -> str:
    """" (95 % interval a–b)" of a test metric, when its bootstrap interval is stored."""
    lo, hi = _num(m, f"{key}_ci_low"), _num(m, f"{key}_ci_high")
    return f" (95 % interval {lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else ""


def _performance(m: dict) -> list[str]:
    """The measured performance on the held-out test people, one sentence each."""
    out = []
    ll, null = _num(m, "test_log_loss"), _num(m, "null_test_log_loss")
    if ll is not None:
        s = f"Test log-loss <b>{ll:.3f}</b>{_ci(m, 'test_log_loss')}; lower is better"
        if null is not None:
            s += f". Knowing only how common each response is gives {null:.3f}"
        out.append(s + ".")
    oracle, capture = _num(m, "oracle_test_log_loss"), _num(m, "oracle_capture")
    if oracle is not None and capture is not None:
        out.append(f"The simulator's own truth reaches {oracle:.3f}: the model captures <b>{100 * capture:.0f} %</b> "
                   "of the improvement over that baseline that is possible at all.")
    auc = _num(m, "test_auroc_macro")
    if auc is not None:
        out.append(f"Discrimination (AUROC, mean over the three responses) <b>{auc:.3f}</b>{_ci(m, 'test_auroc_macro')}: "
                   "0.5 is chance, 1 is perfect.")
    ece = _num(m, "test_ece")
    if ece is not None:
        out.append(f"Calibration error (ECE) <b>{ece:.3f}</b>: the predicted probabilities are off by about "
                   f"{100 * ece:.0f} %-points on average.")
    cover, width = _num(m, "test_interval80_coverage"), _num(m, "test_interval80_median_width")
    if cover is not None and width is not None:
        out.append(f"The 80 % range of one person's change held {100 * cover:.0f} % of the measured changes; its median "
                   f"width is {width:.0f} %-points.")
    return out


def _limits(m: dict) -> list[str]:
    """The plain limits of the model, one sentence each."""
    auc = _num(m, "test_auroc_macro")
    truth = _num(m, "oracle_test_auroc_macro")
    weak = ("The response to one exercise bout is weakly predictable"
            + (f": with an AUROC of {auc:.2f} the model ranks people only modestly better than chance" if auc else "")
            + (f", and even the process that generated the training data reaches only {truth:.2f}" if truth else "")
            + ". Read the predictions as expected shares of groups, not as a forecast for one person.")
    if _num(m, "oracle_test_log_loss") is not None:
        data = "It was trained and tested on <b>synthetic data</b> (the project's simulator), not on patients."
    else:
        data = "Its metadata does not say whether it was trained on real or simulated data: see its model card."
    return [weak, data,
            "It <b>must be validated on real data</b> (an external cohort with measured outcomes) before any clinical "
            "use; until then its outputs are research estimates, not diagnoses.",
            "Predictions are less reliable for fields flagged for drift below (values unlike the training data)."]


def model_box(metrics: dict) -> str:
    """The HTML box: performance on held-out test people, then the limits."""
    perf = _performance(metrics or {})
    head = ("<p>Measured on people held out of training:</p><ul>" + "".join(f"<li>{s}</li>" for s in perf) + "</ul>"
            if perf else "<p class='flag'>The model's metadata holds no test metrics: its performance is unknown.</p>")
    limits = "".join(f"<li>{s}</li>" for s in _limits(metrics or {}))
    return (f"<div class='model' id='model-quality'><h2>{esc('How good is this model, and its limits')}</h2>{head}"
            f"<p><b>Limits</b></p><ul>{limits}</ul></div>")
