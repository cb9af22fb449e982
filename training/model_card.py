"""The model card (markdown), logged with every training run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.fields import BY_NAME, CONTRACT_VERSION, RESPONSES
from features.derived import DERIVED
from features.interactions import PERSON_X_PROTOCOL, READ_TOGETHER
from model_runtime.links import NORMAL_SPREAD, ORDINAL
from training import card_tripod as tripod


def _fmt(metrics: dict, key: str, intervals: dict | None = None, ikey: str | None = None) -> str:
    if key not in metrics:
        return "n/a"
    s = f"{metrics[key]:.3f}"
    if intervals and ikey in intervals:
        lo, hi = intervals[ikey]
        s += f" (95 % CI {lo:.3f}-{hi:.3f})"
    return s


def model_card(*, name, cfg, metrics, intervals, subgroups: pd.DataFrame, meta, split, n_rows, dropped, data_name,
               synthetic: bool, confusion: np.ndarray, calibration_cells: pd.DataFrame | None = None) -> str:
    """The card as markdown: intended use, data, outcome, predictors, missing data, model,
    test-split performance (with bootstrap CIs, baselines and the oracle when known),
    subgroups and limitations. `metrics` are the run's flat metrics (`test_*`, `baseline_*`,
    `oracle_*`); `confusion` is the (3, 3) test-split matrix, rows observed."""
    n_train = n_rows if "validation_repeats" in metrics else int(round(n_rows * (1 - cfg.test_fraction)))
    lines = [
        f"# Model card: {name} (TRIPOD+AI)",
        "",
        *_intended_use(),
        "",
        *_data(data_name, n_rows, dropped, synthetic, split),
        "",
        *_outcome(cfg.label_threshold_pct),
        *tripod.outcome_measurement(cfg.label_threshold_pct),
        "",
        *_predictors(meta),
        "",
        *tripod.predictor_timing(meta.features),
        "",
        *tripod.sample_size(meta.features, n_train),
        "",
        *_missing_data(meta),
        "",
        *_model(cfg, meta),
        "",
        *_performance(metrics, intervals, confusion),
        "",
        *tripod.internal_validation(metrics),
        "",
        *tripod.calibration_plot(),
        "",
        *_subgroups(subgroups),
        "",
        *_subgroup_calibration(calibration_cells),
        "",
        *tripod.uncertainty_and_utility(meta, metrics),
        "",
        *tripod.update_plan(),
        "",
        *_prescription(meta),
        "",
        *_limitations(),
        "",
        *tripod.before_clinical_use(),
        "",
        *tripod.checklist(),
    ]
    return "\n".join(lines) + "\n"


def _contract_fields(meta) -> list[str]:
    return [f for f in meta.features if f in BY_NAME]


def _intended_use() -> list[str]:
    return [
        "## Intended use",
        "Estimates, for one person with (or without) chronic pain and one exercise protocol, the probability that",
        "a single bout produces exercise-induced hypoalgesia, no change, or paradoxical hyperalgesia of pressure",
        "pain sensitivity, with the reasons (exact per-field contributions). Decision support for clinicians",
        "choosing an exercise dose; not a diagnosis, and not validated on patients.",
    ]


def _data(data_name, n_rows, dropped, synthetic: bool, split) -> list[str]:
    return [
        "## Data",
        f"- Training file `{data_name}`: {n_rows} valid rows ({dropped} rows rejected by the contract).",
        "- Origin: " + ("**synthetic** cohort from the project's literature-grounded simulator (`eih simulate`);"
                        " no real patient data exist for this task." if synthetic else "user-supplied cohort file."),
        f"- Split: {split}; tuning used cross-validation on the training part only.",
    ]


def _outcome(thr: float) -> list[str]:
    return [
        "## Outcome",
        "eih_pct = 100 x (PPT after - PPT before) / PPT before. Label: hypoalgesia when eih_pct >= "
        f"+{thr:g} %, hyperalgesia when eih_pct <= -{thr:g} %, no change otherwise (threshold {thr:g} %, the low end"
        " of the published measurement error of EIH).",
    ]


def _predictors(meta) -> list[str]:
    fields = _contract_fields(meta)
    derived = [f for f in meta.features if f in DERIVED]
    return [
        "## Predictors",
        f"Data contract {CONTRACT_VERSION}; one model input per contract field ({len(fields)}): " + ", ".join(fields) + ".",
        "Categorical fields enter whole (XGBoost's native categorical splits, or one value per category in the"
        " spline family), so each explanation is one value per field.",
        *([f"Derived feature{'s' if len(derived) > 1 else ''}, explained under {'their' if len(derived) > 1 else 'its'} own"
           " name beside the fields: " + "; ".join(
               f"{d} ({DERIVED[d].label[:1].lower() + DERIVED[d].label[1:]}, from {', '.join(DERIVED[d].inputs)})"
                                                  for d in derived)
           + ". Their thresholds and shapes are the ones the simulator also encodes, so on simulated data they"
           " carry the simulator's dose and load shapes exactly; expect less from them on real cohorts."] if derived else []),
    ]


def _missing_data(meta) -> list[str]:
    optional = [f for f in _contract_fields(meta) if not BY_NAME[f].required]
    return [
        "## Missing data",
        "Optional fields (" + ", ".join(optional) + ") may be missing; XGBoost routes missing values natively (learned"
        " default directions) and the penalized spline family gives a missing value its own level; every prediction"
        " lists the optional inputs that were missing.",
    ]


SPLINE_KIND = (
    "Penalized spline regression (scikit-learn): the expected change of eih_pct is an intercept plus one smooth"
    " function of each field (cubic B-splines with {knots} knots at quantiles of the training values; one value per"
    " category; a missing value imputed at the median plus its own indicator), with an elastic-net penalty (half lasso,"
    " half ridge: a field without evidence gets a flat function) whose strength is chosen by 5-fold"
    " cross-validation; the spread of the measured change around it is a penalized gamma regression"
    " (log link) of the out-of-fold squared residuals on the same functions. Each person's class probabilities are"
    " those of eih_pct ~ Normal(expected change, that person's spread) beyond the +/- threshold. The model is"
    " additive: every person gets the same shape of response to intensity and duration within a modality, which is"
    " what a small cohort can support. Its explanations are exact: a field's contribution is its function's value"
    " minus that function's average over the training rows.")


def _family(meta) -> str:
    """Which model family and why, from the metadata the training stored."""
    choice = meta.extra.get("family_choice")
    if not choice:
        return ""
    scores = "; ".join(f"{'penalized splines' if k == 'spline' else 'gradient-boosted trees'} {v:.4f}"
                       for k, v in choice["log_loss"].items())
    alone = " (the only family searched)" if len(choice["log_loss"]) < 2 else ""
    return f"Model family chosen by {choice['criterion']}{alone}: {scores} (lower is better)."


INTERACTIONS_TEXT = (
    "every path of a tree combines the protocol (modality, intensity, duration and the features derived from them)"
    " with one person field or one group of fields read together (" + ", ".join("{" + ", ".join(g) + "}" for g in READ_TOGETHER)
    + "), so the protocol may change the effect of each person factor, and person factors add up otherwise")


VARYING_TEXT = (
    "blended, weight {w:.1f} on these trees and the rest on trees distilled from a varying-coefficient"
    " regression (each modality's dose and load effects linear in the person fields through {rank}, chosen by"
    " cross-validation), the weight chosen by out-of-fold log-loss; one booster, so the explanations stay exact")


def _model_kind(meta) -> str:
    shape = meta.model_shape
    if shape.get("family") == "spline":
        return SPLINE_KIND.format(knots=shape.get("n_knots"))
    head = f"depth {shape['max_depth']}, {shape['n_rounds']} rounds"
    if int(shape.get("average_of", 1)) > 1:
        head += (f", the average of {shape['average_of']} fits that differ only in their random seed, merged into one"
                 " booster")
    if shape.get("interactions") == PERSON_X_PROTOCOL:
        head += ("; " + INTERACTIONS_TEXT)
    if "varying_weight_on_trees" in shape:
        rank = int(shape.get("varying_rank", 0))
        head += "; " + VARYING_TEXT.format(w=shape["varying_weight_on_trees"], rank=(
            "a full coefficient matrix" if rank == 0 else f"{rank} person {'index' if rank == 1 else 'indices'}"))
    if meta.link == NORMAL_SPREAD:
        return (f"XGBoost regression of the measured eih_pct ({head}) and a second XGBoost model of the spread of the"
                f" measured change around it (gamma regression of out-of-fold squared residuals, depth"
                f" {shape.get('spread_max_depth')}, {shape.get('spread_n_rounds')} rounds): each person's class"
                " probabilities are those of eih_pct ~ Normal(expected change, that person's spread) beyond the"
                " +/- threshold. Explanations are in %-points of the expected change (positive = toward hypoalgesia)"
                " and in log-units of the spread (positive = more uncertain).")
    if meta.link == ORDINAL:
        return (f"XGBoost regression of the measured eih_pct (ordinal model), {head}; the class probabilities are those"
                " of eih_pct ~ Normal(prediction, sigma) beyond the +/- threshold, with one residual spread sigma ="
                f" {meta.sigma if meta.sigma is not None else float('nan'):.1f} %-points for everyone, fitted out of"
                " fold. Explanations are in %-points of the expected change (positive = toward hypoalgesia).")
    return f"XGBoost multi:softprob, {head} x 3 classes."


def _model(cfg, meta) -> list[str]:
    shape = meta.model_shape
    choice = ("Chosen by cross-validated log-loss; explanation cost is reported, not traded against accuracy. "
              + _family(meta)
              if cfg.cost_tolerance == 0 else _family(meta) + " " +
              f"Chosen as the cheapest to explain among search candidates within {cfg.cost_tolerance:.0%} of the best CV"
              " log-loss.")
    temps = ", ".join(f"{t:.3f}" for t in np.atleast_1d(meta.calibration.temperature))
    return [
        "## Model",
        f"{_model_kind(meta)} {choice} Exact {'additive' if meta.model_shape.get('family') == 'spline' else 'TreeSHAP'}"
        " explanations at about"
        f" {shape.get('explain_rows_per_s_measured', float('nan')):.0f} rows/s (measured at training).",
        "Calibration: " + (f"temperature {temps} and bias applied to the margins"
                           if meta.calibration.applied else "checked out-of-fold; no further correction needed") + ".",
        f"Hyperalgesia risk: low below {cfg.risk_moderate:.0%}, moderate {cfg.risk_moderate:.0%}-{cfg.risk_high:.0%},"
        f" high at or above {cfg.risk_high:.0%} predicted probability.",
    ]


def _performance(metrics: dict, intervals: dict, confusion: np.ndarray) -> list[str]:
    where = "out of fold (repeated cross-validation)" if "validation_repeats" in metrics else "on the test split"
    lines = [
        f"## Performance {where}",
        "| metric | model | 95 % bootstrap CI |",
        "|---|---|---|",
    ]
    for key in ("log_loss", "auroc_macro", "brier", "ece", "balanced_accuracy"):
        lo, hi = intervals.get(key, (float("nan"), float("nan")))
        lines.append(f"| {key} | {metrics.get('test_' + key, float('nan')):.3f} | {lo:.3f}-{hi:.3f} |")
    lines += ["", *_comparisons(metrics)]
    lines += ["", "Per class:"]
    for c in RESPONSES:
        lines.append(f"- {c}: AUROC {metrics[f'test_auroc_{c}']:.3f},"
                     f" calibration slope {metrics[f'test_calibration_slope_{c}']:.2f},"
                     f" intercept {metrics[f'test_calibration_intercept_{c}']:.2f}")
    lines += ["", "Confusion matrix (rows observed, columns predicted): " + "; ".join(
        f"{RESPONSES[i]}: " + ", ".join(str(v) for v in confusion[i]) for i in range(len(RESPONSES)))]
    return lines


def _comparisons(metrics: dict) -> list[str]:
    """The model beside the class prior, the baselines and (simulated data) the oracle."""
    lines = ["| comparison | log-loss | macro AUROC |", "|---|---|---|"]
    lines.append(f"| class prior (null) | {metrics['null_test_log_loss']:.3f} | 0.500 |")
    for b in ("logreg", "cpm_rule", "psychosocial_rule"):
        ll, auc = metrics[f"baseline_{b}_test_log_loss"], metrics[f"baseline_{b}_test_auroc_macro"]
        lines.append(f"| baseline {b} | {ll:.3f} | {auc:.3f} |")
    lines.append(f"| **this model** | {metrics['test_log_loss']:.3f} | {metrics['test_auroc_macro']:.3f} |")
    if "oracle_test_log_loss" in metrics:
        ll, auc = metrics["oracle_test_log_loss"], metrics["oracle_test_auroc_macro"]
        lines.append(f"| oracle (the simulator's truth) | {ll:.3f} | {auc:.3f} |")
        lines.append("")
        lines.append(f"Oracle capture (share of the truth's improvement over the class prior): {metrics['oracle_capture']:.3f}.")
        if "best_cv_candidate_oracle_capture" in metrics:
            lines.append(f"The best search candidate by CV log-loss (costlier to explain, not chosen) reaches a test log-loss of "
                         f"{metrics['best_cv_candidate_test_log_loss']:.3f} and an oracle capture of "
                         f"{metrics['best_cv_candidate_oracle_capture']:.3f}: the price of the cheaper explanations.")
    return lines


def _subgroups(subgroups: pd.DataFrame) -> list[str]:
    lines = ["## Subgroups (test split)",
             "Sex, age band, pain condition, exercise modality and (several sites) site; log-loss with its 95 % bootstrap"
             " interval. Groups under 30 people show their count only.",
             "| group | level | n | log-loss (95 % CI) | macro AUROC | ECE | observed / predicted hyperalgesia |",
             "|---|---|---|---|---|---|---|"]
    for r in subgroups.to_dict("records"):
        if pd.isna(r.get("log_loss", np.nan)):
            lines.append(f"| {r['group']} | {r['level']} | {r['n']} | too few | | | |")
        else:
            lines.append(f"| {r['group']} | {r['level']} | {r['n']} | {r['log_loss']:.3f} ({r['log_loss_ci_low']:.3f}-"
                         f"{r['log_loss_ci_high']:.3f}) | {r['auroc_macro']:.3f} | {r['ece']:.3f} |"
                         f" {r['observed_hyperalgesia']:.2f} / {r['predicted_hyperalgesia']:.2f} |")
    return lines


def _subgroup_calibration(cells: pd.DataFrame | None) -> list[str]:
    if cells is None or not len(cells):
        return []
    oracle = "oracle_hyperalgesia" in cells.columns
    lines = ["## Subgroup calibration (test split)",
             "Predicted vs observed hyperalgesia per pain condition x modality x intensity band (95 % bootstrap"
             " interval of observed - predicted; slope of the hyperalgesia probability, 1 = right spread). The"
             " fibromyalgia high-load group comes first: it is where a flare matters most. Cells under 20 people show"
             " their count only.",
             "| condition | modality | intensity | n | predicted | observed | observed - predicted (95 % CI) | slope |"
             + (" oracle |" if oracle else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if oracle else "")]
    for r in cells.to_dict("records"):
        head = f"| {r['pain_condition']} | {r['exercise_modality']} | {r['intensity_band']} | {r['n']} |"
        if pd.isna(r.get("predicted_hyperalgesia", np.nan)):
            lines.append(head + " too few | | | |" + (" |" if oracle else ""))
            continue
        gap = r["observed_hyperalgesia"] - r["predicted_hyperalgesia"]
        line = (f"{head} {r['predicted_hyperalgesia']:.2f} | {r['observed_hyperalgesia']:.2f} | {gap:+.2f}"
                f" ({r['gap_hyperalgesia_ci_low']:+.2f} to {r['gap_hyperalgesia_ci_high']:+.2f}) |"
                f" {r['slope_hyperalgesia']:.2f} |")
        lines.append(line + (f" {r.get('oracle_hyperalgesia', float('nan')):.2f} |" if oracle else ""))
    return lines


def _prescription(meta) -> list[str]:
    """Whether the model may choose a protocol, and whether its protocol ranking is causal."""
    after = [f for f in _contract_fields(meta) if BY_NAME[f].measured == "after"]
    protocols = meta.extra.get("protocols", "unknown")
    lines = ["## Choosing a protocol (eih recommend, POST /recommend)"]
    if after:
        lines.append(f"This model reads {', '.join(after)}, measured after the bout, unknown when a protocol is "
                     "prescribed: it is a research model, and prescription refuses it.")
        return lines
    lines.append("The model reads only fields known before the bout, so it can score a grid of protocols for one "
                 "person and rank them by P(hypoalgesia) - P(hyperalgesia).")
    pooling = meta.extra.get("pooling")
    if pooling:
        lines.append(f"The ranking pools each person toward their pain condition's profile over the grid: the personal "
                     f"part of the model's protocol differences is shrunk by {pooling['shrinkage']:.2f}, the share two "
                     f"models fitted on the two halves of the training split agree on (corrected to the full sample; "
                     f"{pooling['reference_people']} training people over the grid). The rest is estimation noise, "
                     "which the best of 312 protocols would otherwise select.")
    if protocols == "randomized":
        lines.append("Protocols in the training data were assigned independently of the person (randomized, as in "
                     "the simulator), so differences between protocols estimate what the protocol causes, within the "
                     "protocols and people the data covered.")
    else:
        lines.append(f"Protocols in the training data: {protocols} (not assigned independently of the person), so a "
                     "protocol ranking is not causal: differences between protocols may reflect who received which "
                     "protocol. Retrain on randomized or crossover data (`eih train --protocols randomized`).")
    return lines


def _limitations() -> list[str]:
    return [
        "## Limitations",
        "- EIH is weakly predictable and noisily measured (test-retest ICC 0-0.61; measurement error 10-21 % of PPT):"
        " even the truth reaches only a modest AUROC, and individual predictions are uncertain.",
        "- Trained on synthetic data: performance on real patients is unknown until external validation.",
        "- HIIT and mind-body exercise have almost no acute EIH data; the simulator used wide priors for them.",
        "- Biomarkers (BDNF, lactate, IL-6) are weak correlates, not drivers; the model should not lean on them.",
        f"- Contract version {CONTRACT_VERSION}: the service refuses input from another major version.",
    ]
