"""The TRIPOD+AI sections of the model card (Collins et al. 2024, BMJ 385:e078378): sample
size, outcome measurement, timing of the predictors, calibration plot, uncertainty and
clinical utility, update plan and the validation statement, plus the checklist that maps
each item to its section. `training.model_card` assembles them with the other sections.
"""

from __future__ import annotations

import math

from data_contracts.fields import BY_NAME
from training.sample_size import minimum_sample_size

SEM_RANGE_PCT = (10.0, 21.0)  # test-retest measurement error of the PPT change (Aron et al. 2024)

CHECKLIST = [
    ("Title and intended use (1, 3)", "Intended use"),
    ("Data source, participants, synthetic origin (5, 6)", "Data"),
    ("Outcome definition, measurement and timing (6)", "Outcome"),
    ("Predictors and when each is measured (7)", "Predictors; Timing of the predictors"),
    ("Sample size (8)", "Sample size"),
    ("Missing data (9)", "Missing data"),
    ("Model type, building and tuning (10, 12)", "Model"),
    ("Performance with intervals: discrimination, calibration (12, 23)", "Performance; Calibration plot"),
    ("Subgroups and fairness (14, 23)", "Subgroups; Subgroup calibration"),
    ("Uncertainty of individual predictions", "Uncertainty and clinical utility"),
    ("Clinical utility (decision curves) and risk cut-offs (12)", "Uncertainty and clinical utility"),
    ("Model updating (19)", "Update plan"),
    ("Limitations and validation still needed (26, 27)", "Limitations; Before clinical use"),
]


def checklist() -> list[str]:
    """The TRIPOD+AI item -> card section table."""
    lines = ["## TRIPOD+AI checklist", "| TRIPOD+AI item | where in this card |", "|---|---|"]
    return lines + [f"| {item} | {where} |" for item, where in CHECKLIST]


def sample_size(features: tuple[str, ...], n_train: int) -> list[str]:
    """The Riley et al. 2020 minimum sample size and how the training split compares."""
    ss = minimum_sample_size(tuple(features))
    return ["## Sample size", ss.text(n_train) + ".",
            "The criteria count a smooth additive model's parameters; gradient-boosted trees spend more, so the figure is"
            " a floor. Below it, the internal estimates of this card are optimistic and the model's effects unstable."]


def smallest_detectable_change(sem_pct: float) -> float:
    """1.96 x sqrt(2) x SEM: the smallest change one re-test can tell from measurement error."""
    return 1.96 * math.sqrt(2.0) * sem_pct


def outcome_measurement(threshold_pct: float) -> list[str]:
    """How the outcome is measured, and what the measurement error means for the label."""
    lo, hi = (smallest_detectable_change(s) for s in SEM_RANGE_PCT)
    return [
        "Measurement: the pressure pain threshold (PPT, kPa) by algometry at the same body site, before the bout and"
        " right after it (sites differ in the minutes between bout and re-test, and EIH fades over them). Whether the"
        " assessor was blinded to the protocol is not recorded in the data contract; a site should record it.",
        f"Measurement error: one PPT re-test has an SEM of {SEM_RANGE_PCT[0]:g}-{SEM_RANGE_PCT[1]:g} % of PPT, so the"
        f" smallest detectable change of one person is 1.96 x sqrt(2) x SEM = {lo:.0f}-{hi:.0f} %. The"
        f" {threshold_pct:g} % label threshold lies below it: one person's label cannot be told from measurement"
        " error, and the probabilities describe what happens to people like this one, not a verdict on one bout."
        " `eih train --label-threshold-pct` sets another threshold (e.g. 30 for changes beyond measurement error).",
    ]


def predictor_timing(features: tuple[str, ...]) -> list[str]:
    """When each contract field the model reads is measured (before or after the bout)."""
    rows = [(f, getattr(BY_NAME[f], "measured", "before")) for f in features if f in BY_NAME]
    after = [f for f, when in rows if when == "after"]
    lines = ["## Timing of the predictors",
             "Every predictor is measured before the bout" + (", except: " + ", ".join(after) + " (measured after it: the"
             " model cannot be used to choose a protocol)." if after else ", so the model can be used before exercise"
             " is prescribed.")]
    return lines


def calibration_plot() -> list[str]:
    """The calibration plot, embedded (the image is beside the card in the run's report/)."""
    return ["## Calibration plot", "![Calibration of the three probabilities on the held-out test split, with the"
            " logistic-regression baseline and (simulated data) the truth](calibration_curves.png)"]


def uncertainty_and_utility(meta, metrics: dict) -> list[str]:
    """Prediction intervals with their coverage, the risk cut-offs with their reason, and the decision curves."""
    lines = ["## Uncertainty and clinical utility"]
    for level in ("80", "90"):
        key = f"test_interval{level}_coverage"
        if key in metrics:
            lines.append(f"- {level} % prediction intervals of the measured change (conformal, by pain condition):"
                         f" coverage {metrics[key]:.3f} on the test split, median width"
                         f" {metrics[f'test_interval{level}_median_width']:.0f} %-points.")
    cut = meta.risk_cutoffs
    lines.append(f"- Hyperalgesia risk: moderate from P = {cut['moderate']:.2f}, high from {cut['high']:.2f}."
                 f" How they were chosen: {meta.risk_cutoffs_reason or 'configured'}.")
    if "test_pain_free_moderate_or_high" in metrics:
        lines.append(f"- Pain-free people rated moderate or high on the test split:"
                     f" {metrics['test_pain_free_moderate_or_high']:.1%}"
                     f" (all people: {metrics['test_share_moderate_or_high']:.1%}).")
    lines.append("![Decision curves: net benefit of adapting the protocol and of expecting benefit, against acting for"
                 " everyone and for no one](decision_curves.png)")
    return lines


def update_plan() -> list[str]:
    """How a site adapts the model, and when it must be revalidated."""
    return ["## Update plan",
            "A new site evaluates the champion on its own outcomes first (`eih evaluate FILE`), then updates it with its"
            " cases (`eih update --data FILE`: recalibration in the large, of the margin and spread, or a refit; the step"
            " chosen by validation), which registers a new version with its lineage and passes the same gate. Retrain"
            " when the data contract's major version changes, and revalidate after any change of algometer, protocol"
            " timing or population."]


def before_clinical_use() -> list[str]:
    """The plain statement the card ends with."""
    return ["## Before clinical use",
            "**This model must be validated on real patient data before any clinical use.** It was developed on"
            " simulated data (or on the cohort named above) and has had no external validation on patients."]


def internal_validation(metrics: dict) -> list[str]:
    """How performance was estimated, the paired comparisons with their 95 % intervals, and the gate's rule."""
    if "validation_repeats" in metrics:
        r, k = int(metrics["validation_repeats"]), int(metrics["validation_folds"])
        how = (f"Internal validation by {r} x {k}-fold repeated cross-validation (the cohort is below the size at which"
               " one held-out split is precise enough): in every fold the calibration, the spread model and the final"
               " fit of the tuned configuration were refitted and the left-out people predicted; the final model is"
               " fitted on all rows. The hyper-parameter search itself ran once on all rows and is not repeated in"
               " each fold, a small remaining optimism. The 'test' figures of this card are these out-of-fold"
               " estimates (mean over the repeats); 95 % intervals resample people.")
        if metrics.get("size_correction_log_loss", 0.0) < 0:
            how += (f" Each fold's model learnt from {k - 1}/{k} of the people, the final model from all of them: the"
                    f" log-loss and capture are moved along the learning curve to the full cohort (log-loss"
                    f" {metrics['size_correction_log_loss']:+.4f}); the paired comparisons are not.")
    else:
        how = "Internal validation on the held-out test split; 95 % intervals resample its people."
    lines = ["## Internal validation", how, "", "| figure | estimate | 95 % CI |", "|---|---|---|"]
    keys = [("test_log_loss", "log-loss"), ("test_auroc_macro", "macro AUROC"), ("test_ece", "ECE"),
            ("test_calibration_slope_hyperalgesia", "calibration slope (hyperalgesia)"),
            ("oracle_capture", "oracle capture (realized outcomes)"),
            ("oracle_capture_expected", "oracle capture (expected over the truth's outcomes: label noise removed)")]
    keys += [(k, f"paired log-loss difference vs {k[len('paired_log_loss_diff_vs_'):]}")
             for k in sorted(metrics) if k.startswith("paired_log_loss_diff_vs_") and not k.endswith(("_low", "_high"))]
    for k, label in keys:
        if k in metrics and f"{k}_ci_low" in metrics:
            lines.append(f"| {label} | {metrics[k]:.3f} | {metrics[k + '_ci_low']:.3f} to {metrics[k + '_ci_high']:.3f} |")
    lines += ["", "Gate: a version becomes champion only if the upper 95 % bound of its paired log-loss difference"
              " (this model - comparator, on the same people) is below 0 against the best baseline and against the"
              " current champion; otherwise it is registered, not promoted, with the reason in its run's tags."]
    return lines
