"""The derived outcome: eih_pct and the response label with a configurable threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts import DEFAULT_THRESHOLD_PCT, RESPONSES, eih_pct, response_codes, response_labels


def _ppt(base, post) -> pd.DataFrame:
    return pd.DataFrame({"ppt_baseline_kpa": base, "ppt_post_kpa": post})


def test_default_threshold_and_class_order():
    assert DEFAULT_THRESHOLD_PCT == 10.0
    assert RESPONSES == ("hypoalgesia", "no_change", "hyperalgesia")


def test_eih_pct_formula():
    df = _ppt([200.0, 400.0, 300.0, 250.0], [260.0, 300.0, 300.0, 500.0])
    out = eih_pct(df)
    assert out.name == "eih_pct"
    np.testing.assert_allclose(out.to_numpy(), [30.0, -25.0, 0.0, 100.0])
    # = 100 * (post - base) / base, row by row
    np.testing.assert_allclose(out, 100 * (df.ppt_post_kpa - df.ppt_baseline_kpa) / df.ppt_baseline_kpa)


def test_eih_pct_accepts_integer_columns_and_keeps_the_index():
    df = _ppt([100, 200], [110, 150])
    df.index = [7, 9]
    out = eih_pct(df)
    assert out.dtype == "float64" and list(out.index) == [7, 9]
    np.testing.assert_allclose(out, [10.0, -25.0])


@pytest.mark.parametrize(
    ("base", "post", "label"),
    [
        (100.0, 110.0, "hypoalgesia"),  # exactly +10 %: hypoalgesia
        (100.0, 90.0, "hyperalgesia"),  # exactly -10 %: hyperalgesia
        (100.0, 109.99, "no_change"),
        (100.0, 90.01, "no_change"),
        (100.0, 100.0, "no_change"),
        (100.0, 250.0, "hypoalgesia"),
        (400.0, 100.0, "hyperalgesia"),
    ],
)
def test_response_label_default_threshold(base, post, label):
    assert response_labels(_ppt([base], [post])).tolist() == [label]


@pytest.mark.parametrize("threshold", [5.0, 15.0, 20.0, 12.5])
def test_response_label_configurable_threshold_boundaries(threshold):
    base = 200.0  # t % of 200 kPa is 2t kPa: every value below is exact in binary floating point
    post = [base + 2 * threshold, base - 2 * threshold, base + threshold, base - threshold]
    df = _ppt([base] * 4, post)
    e = eih_pct(df)
    assert e.tolist() == [threshold, -threshold, threshold / 2, -threshold / 2]
    labels = response_labels(df, threshold_pct=threshold)
    assert labels.tolist() == ["hypoalgesia", "hyperalgesia", "no_change", "no_change"]


def test_the_threshold_changes_the_label():
    df = _ppt([100.0], [112.0])  # +12 %
    assert response_labels(df, threshold_pct=10).tolist() == ["hypoalgesia"]
    assert response_labels(df, threshold_pct=15).tolist() == ["no_change"]


def test_response_codes_exact_boundaries():
    for t in (10.0, 15.0, 7.5):
        e = np.array([t, -t, np.nextafter(t, 0), -np.nextafter(t, 0), 0.0, 1000.0, -100.0])
        assert response_codes(e, t).tolist() == [0, 2, 1, 1, 1, 0, 2]


def test_response_labels_are_categorical_in_contract_order():
    df = _ppt([100.0, 100.0, 100.0], [150.0, 100.0, 50.0])
    df.index = [3, 1, 2]
    labels = response_labels(df)
    assert labels.name == "response"
    assert list(labels.cat.categories) == list(RESPONSES)
    assert list(labels.index) == [3, 1, 2]
    assert labels.tolist() == list(RESPONSES)
    assert labels.cat.codes.tolist() == [0, 1, 2]


@pytest.mark.parametrize("threshold", [0.0, -10.0, float("nan")])
def test_threshold_must_be_positive(threshold):
    with pytest.raises(ValueError, match="positive"):
        response_codes(np.array([1.0]), threshold)
