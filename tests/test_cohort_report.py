"""The cohort report of `eih score` with the distributional model (expected change and
its spread): a section per site, mean probabilities as the headline, small groups
flagged with intervals, categories coloured in the beeswarm, clinical words only, the
model's own quality box, and counts that add up. Aggregates only: no subject_id.

The model is a small distributional one fitted here in seconds (two boosters: the
expected change and the log of each person's spread) and passed to `score_file` as an
already loaded model.
"""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from data_contracts.fields import BY_NAME, RESPONSES
from data_contracts.validate import validate_frame
from serving import batch

METRICS = {"test_log_loss": 0.987654, "test_log_loss_ci_low": 0.95, "test_log_loss_ci_high": 1.02,
           "null_test_log_loss": 1.0862, "test_auroc_macro": 0.661, "test_ece": 0.031,
           "oracle_test_log_loss": 0.9652, "oracle_test_auroc_macro": 0.683, "oracle_capture": 0.7}
JARGON = ("margin of", "margin", "eih_pct", "eih pct", "log_sd", "log sd", "max over outputs",
          "attributions (max", "centered log-odds")


def _fit_distributional(cohort: pd.DataFrame):
    """A normal_spread model: booster 1 the measured change, booster 2 half the log of the
    squared residual (the log of the spread)."""
    import xgboost as xgb

    from data_contracts.labels import eih_pct
    from features.pipeline import ContractFeatures
    from features.reference import build_reference, numeric_reference
    from model_runtime.loading import LoadedModel
    from model_runtime.metadata import ModelMeta
    from model_runtime.predictor import EIHPredictor

    valid = validate_frame(cohort).valid
    y = eih_pct(valid).to_numpy()
    X = ContractFeatures().fit(None).transform(valid)
    params = {"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3, "nthread": 2, "seed": 1}
    dm = xgb.DMatrix(X, label=y, enable_categorical=True)
    change = xgb.train(params, dm, num_boost_round=25)
    resid = y - change.predict(dm)
    spread = xgb.train(dict(params, max_depth=2), xgb.DMatrix(X, label=0.5 * np.log(resid ** 2 + 1.0),
                                                              enable_categorical=True), num_boost_round=10)
    meta = {"contract_version": "1.0", "label_threshold_pct": 10.0, "features": list(X.columns),
            "outputs": ["eih_pct", "log_sd"], "link": "normal_spread",
            "calibration": {"temperature": [1.0, 1.0], "bias": [0.0, 0.0], "applied": False},
            "risk_cutoffs": {"moderate": 0.3, "high": 0.45}, "reference": build_reference(X),
            "training_metrics": METRICS}
    pred = EIHPredictor([change, spread], ModelMeta.from_dict(meta))
    ex = pred.explain(valid.iloc[:1500])
    pred.meta.attribution_reference = {f"{o}__{f}": numeric_reference(ex.contributions[:, k, j])
                                       for k, o in enumerate(pred.outputs) for j, f in enumerate(pred.fields)}
    return LoadedModel(pred, "runs:/test/distributional", "eih-test", "1", None)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> SimpleNamespace:
    """A 3-site cohort with measured outcomes (one site of 13 people), a 1-site cohort and the model."""
    from simulation import simulate

    d = tmp_path_factory.mktemp("cohort_report")
    train, _ = simulate(2000, seed=5, n_sites=2)
    lm = _fit_distributional(train)
    cohort, _ = simulate(1200, seed=6, n_sites=3)
    cohort["site"] = np.where(np.arange(len(cohort)) < 13, "site_C", np.where(np.arange(len(cohort)) % 2, "site_A",
                                                                                 "site_B"))
    one, _ = simulate(600, seed=7, n_sites=1)
    runs = {}
    for name, frame in (("three", cohort), ("one", one)):
        src = d / f"{name}.parquet"
        frame.to_parquet(src, index=False)
        res = batch.score_file(src, d / f"{name}.scores.parquet", batch.ScoreOptions(log_mlflow=False, chunk_rows=500),
                               loaded=lm)
        runs[name] = SimpleNamespace(res=res, html=res.report.read_text(), scores=pd.read_parquet(res.out),
                                     valid=validate_frame(frame).valid)
    return SimpleNamespace(lm=lm, cohort=cohort, **runs)


def _section(html: str, start: str, end: str = "<h2>") -> str:
    """The page from `start` to the next `end`."""
    i = html.index(start)
    j = html.find(end, i + len(start))
    return html[i:] if j < 0 else html[i:j]


def _row(html: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell`."""
    m = re.search(r"<tr[^>]*><td class=\"l\">" + re.escape(first_cell) + r"</td>(.*?)</tr>", html)
    assert m, first_cell
    return [first_cell] + re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


def test_site_section_with_counts_for_three_sites_and_none_for_one(env):
    sites = _section(env.three.html, "<h2>By site</h2>")
    counts = env.three.valid["site"].value_counts()
    assert len(counts) == 3
    for site, n in counts.items():
        cells = _row(sites, site)
        assert cells[1] == f"{n:,}"
    assert f"3 site rows, {env.three.res.rows_scored:,} people in all" in sites
    assert counts.sum() == env.three.res.rows_scored
    assert "Predictions against measured outcomes by site" in sites  # the file has the outcome
    assert "inputs against the training data" in sites
    assert "By site" not in env.one.html and "site_01" not in env.one.html


def test_headline_is_the_mean_probabilities_of_the_scores_file(env):
    head = _section(env.three.html, "id='headline'", "<p>")
    n = len(env.three.scores)
    for r in RESPONSES:
        m = env.three.scores[f"p_{r}"].mean()
        assert f"mean probability {m:.3f}" in head
        assert f"{100 * m:.1f} %" in head
    change = env.lm.predictor.margins(env.three.valid)[:, 0].mean()
    assert f"{change:+.1f} %-points" in head
    assert "Secondary: most likely response, person by person" in env.three.html
    assert n == env.three.res.rows_scored


def test_a_group_under_30_is_flagged_with_its_interval(env):
    from scipy.stats import t

    sites = _section(env.three.html, "<h2>By site</h2>")
    cells = _row(sites, "site_C")
    assert cells[1] == "13" and cells[-1] == "small group: 95 % intervals"
    ids = env.three.valid.loc[env.three.valid["site"] == "site_C", "subject_id"]
    p = env.three.scores.set_index("subject_id").loc[ids.to_numpy(), "p_hyperalgesia"].to_numpy()
    half = t.ppf(0.975, 12) * p.std(ddof=1) / math.sqrt(13)
    lo, hi = max(0.0, p.mean() - half), min(1.0, p.mean() + half)
    assert f"{100 * p.mean():.1f} % ({100 * lo:.1f}–{100 * hi:.1f})" in cells
    assert "site_A" in sites and _row(sites, "site_A")[-1] == ""  # a large group: no flag, no interval
    assert "(n=13, small group)" in sites


def test_wilson_and_mean_intervals():
    from serving.report_tables import mean_interval, wilson

    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    x = np.array([0.1, 0.2, 0.4, 0.3])
    lo, hi = mean_interval(x.sum(), (x ** 2).sum(), 4)
    assert (lo + hi) / 2 == pytest.approx(0.25)
    assert all(math.isnan(v) for v in mean_interval(0.3, 0.09, 1))


def test_beeswarm_legend_names_the_categories(env):
    legend = re.findall(r"<div class='legend swarm-legend'>(.*?)</div></div>", env.three.html)
    assert legend, "no beeswarm legend"
    entries = dict(re.findall(r"<div><b>([^<]+)</b>:(.*?)(?=</div>)", legend[0] + "</div>"))
    by_label = {f.label: f for f in BY_NAME.values() if f.kind == "category"}
    shown = [name for name in entries if name in by_label]
    assert shown, entries.keys()
    for name in shown:
        for category in by_label[name].categories:
            assert category.replace("_", " ") in entries[name]
    assert "not measured" in legend[0]


def visible_text(html: str) -> str:
    """What a reader sees: the page without its style sheet and tags (figures are images)."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S))


def test_clinical_words_only(env):
    for html in (env.three.html, env.one.html):
        low = visible_text(html).lower()
        for word in JARGON:
            assert word not in low, word
    assert "What moves the expected change" in env.three.html
    assert "What makes the change more uncertain" in env.three.html
    assert "uncertainty of the change" in env.three.html


def test_model_box_shows_the_models_own_metrics_and_limits(env):
    box = _section(env.three.html, "id='model-quality'", "</div>")
    assert "How good is this model, and its limits" in box
    assert f"<b>{METRICS['test_log_loss']:.3f}</b>" in box and "1.086" in box and "0.661" in box
    assert "70 %" in box  # oracle capture
    assert "synthetic data" in box and "must be validated on real data" in box and "weakly predictable" in box


def test_counts_add_up_and_no_subject_id(env):
    html, res = env.three.html, env.three.res
    assert f"{res.rows_read:,} read = {res.rows_scored:,} scored + {res.rows_rejected:,} rejected" in html
    agg_text = _section(html, "<h3>By pain condition</h3>", "<h3>")
    people = [int(c[1].replace(",", "")) for c in
              (_row(agg_text, lvl.replace("_", " ")) for lvl in env.three.valid["pain_condition"].unique())]
    assert sum(people) == res.rows_scored
    likely = env.three.scores["predicted_response"].value_counts()
    for r in RESPONSES:
        assert f"({int(likely.get(r, 0)):,} people)" in html
    outcome = _section(html, "Predictions against measured outcomes", "<h2>")
    assert _row(outcome, "whole cohort")[1] == f"{int(env.three.valid['ppt_post_kpa'].notna().sum()):,}"
    for sid in env.three.valid["subject_id"].astype(str).head(300):
        assert sid not in html


def test_site_bins_add_up_to_the_cohorts_drift_counts(env):
    from features.reference import bin_counts
    from serving.batch.aggregates import Aggregates, add_input_drift, add_outcomes_and_sites, add_predictions

    pred = env.lm.predictor
    valid = env.three.valid
    X = pred.transform(valid)
    P = pred.proba(pred.margins_of(X))
    agg = Aggregates(pred.fields, pred.outputs)
    add_predictions(agg, P, np.zeros(len(P), dtype="int64"), valid)
    bins = add_input_drift(agg, pred, X)
    add_outcomes_and_sites(agg, pred, valid, bins, P, None)
    assert set(agg.sites) == {"site_A", "site_B", "site_C"}
    for name, ref in pred.reference.items():
        values = X[name].to_numpy(dtype="float64") if ref["kind"] == "number" else X[name]
        np.testing.assert_array_equal(agg.input_counts[name], bin_counts(ref, values))
        np.testing.assert_array_equal(sum(s.input_counts[name] for s in agg.sites.values()), agg.input_counts[name])
    assert sum(s.n for s in agg.sites.values()) == len(valid) == agg.outcome.n
