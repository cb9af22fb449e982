"""The clinician page (GET /clinic, serving/clinic.py) as a clinician meets it.

Fast tests: the form is generated from the contract (every field of a record in exactly one
group, every control labelled, the rule shown), the page and its files hold nothing about
the served model and allow nothing but this origin.

The browser test (slow): a real `eih serve` with EIH_API_TOKEN set on the session's trained
model, Debian's headless Chromium driven by Selenium (as tests/test_ui_browser.py). The page
is served without the token but shows nothing until the token works; then the example
record is typed in, submitted from the keyboard, and the probabilities and the top reason
read back and compared with POST /predict; the recommended protocols and the typed one are
shown; a value out of range gets the service's rule next to its field; axe-core finds no
serious or critical violation; screenshots at phone and desktop width (into
EIH_CLINIC_SHOTS when set, e.g. docs/img for the README; a temporary folder otherwise).
Nothing typed reaches the server's log or the page's URL.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from data_contracts.examples import EXAMPLE_RECORD
from data_contracts.fields import BY_NAME
from data_contracts.record import ContractRecord
from serving import clinic
from serving.clinic_form import FORM_FIELDS, GROUPS, form_html

TOKEN = "clinic-token-5e2b7d"
MARKER = "clinic-93bd1x"
BIN = Path(sys.executable).parent


# ---- the page, without a server ------------------------------------------------------------------
def test_every_record_field_is_in_exactly_one_group():
    grouped = [name for _, _, names in GROUPS for name in names]
    assert sorted(grouped) == sorted(FORM_FIELDS) == sorted(ContractRecord.model_fields)
    assert len(grouped) == len(set(grouped))


def test_every_control_is_labelled_and_shows_its_rule():
    form = form_html()
    for name in FORM_FIELDS:
        f = BY_NAME[name]
        assert f'<label for="f-{name}">' in form and f'id="f-{name}"' in form
        assert f'aria-describedby="h-{name} e-{name}"' in form and f'id="e-{name}"' in form
        if f.kind == "number":
            assert f"{f.min:g} to {f.max:g}" in form
        for c in f.categories:
            assert f'<option value="{c}">' in form
    assert form.count(" required") >= sum(BY_NAME[n].required for n in FORM_FIELDS)
    assert 'type="number"' not in form and 'autocomplete="off"' in form


def test_the_page_is_local_and_holds_nothing_about_the_model():
    page = clinic.page()
    assert "eih-responder" not in page and "version" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no CDN, no other origin
    assert "form-action 'none'" in clinic.CSP and "connect-src 'self'" in clinic.CSP
    assert clinic.PUBLIC_PATHS == {"/clinic", "/clinic/clinic.css", "/clinic/clinic.js"}
    assert clinic.asset("../service.py") is None and clinic.asset("clinic.js")[1].startswith("application/javascript")
    js = clinic.asset("clinic.js")[0]
    assert "console." not in js and "localStorage" not in js and "location.search" not in js


# ---- the served page in Chromium -----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(trained_model, tmp_path_factory):
    from server_process import free_port, running

    d = tmp_path_factory.mktemp("clinic-serve")
    port = free_port()
    env = dict(os.environ, EIH_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1", BENTOML_HOME=str(d / "bentoml"),
               BENTOML_DO_NOT_TRACK="true")
    base = f"http://127.0.0.1:{port}"
    log = d / "server.log"
    with running([str(BIN / "eih"), "serve", "--port", str(port), "--model", trained_model.uri], log, env,
                 base + "/readyz"):
        yield base, log
    assert MARKER not in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from eih.ui_session import chromium

    try:
        driver = chromium(tmp_path_factory.mktemp("clinic-profile"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield driver
    driver.quit()


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = predicate()
            if got:
                return got
        except Exception as exc:  # noqa: BLE001 - the page re-renders while we look
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def _shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ["EIH_CLINIC_SHOTS"]) if os.environ.get("EIH_CLINIC_SHOTS") else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


def _fill(driver, record: dict) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in record.items():
        if value is None:
            continue
        control = driver.find_element(By.ID, f"f-{name}")
        if control.tag_name == "select":
            Select(control).select_by_value(str(value))
        else:
            control.clear()
            control.send_keys(str(value))


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _axe_serious(driver) -> list[str]:
    from axe_selenium_python import Axe

    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in results["violations"]
            if v.get("impact") in ("serious", "critical")]


def _unlabelled(driver) -> list[str]:
    return driver.execute_script(
        "return Array.prototype.filter.call(document.querySelectorAll('input, select, textarea'),"
        " function (c) { return c.type !== 'hidden' && (!c.labels || c.labels.length === 0); })"
        ".map(function (c) { return c.id || c.name; });")


@pytest.mark.slow
def test_a_clinician_predicts_reads_the_reasons_and_corrects_a_value(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, _ = served
    shots = _shots_dir(tmp_path)
    record = dict(EXAMPLE_RECORD, subject_id=MARKER)

    # the page and its files are served without the token; everything model-specific needs it
    r = httpx.get(base + "/clinic", timeout=10)
    assert r.status_code == 200 and "form-action 'none'" in r.headers["content-security-policy"]
    assert "eih-responder" not in r.text
    for path in ("/clinic/clinic.js", "/clinic/clinic.css"):
        assert httpx.get(base + path, timeout=10).status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(base + "/clinic/other", timeout=10).status_code == 401  # only the page's own files are open
    assert httpx.get(base + "/clinic/other", headers=auth, timeout=10).status_code == 404
    assert httpx.get(base + "/metadata", timeout=10).status_code == 401
    expected = httpx.post(base + "/predict", json={"records": [record]}, headers=auth, timeout=30).json()
    pred = expected["predictions"][0]

    browser.set_window_size(1280, 1000)
    browser.get(base + "/clinic")
    _wait(lambda: browser.find_element(By.ID, "token-box").is_displayed(), "the token prompt")
    assert not browser.find_element(By.ID, "clinic").is_displayed()
    assert "eih-responder" not in browser.find_element(By.TAG_NAME, "body").text
    assert not _unlabelled(browser)
    violations = _axe_serious(browser)
    assert not violations, violations
    box = browser.find_element(By.ID, "token-input")
    box.send_keys("wrong-token", Keys.ENTER)
    _wait(lambda: "not accepted" in _text(browser, "token-error"), "the refused token's message")
    browser.find_element(By.ID, "token-input").send_keys(TOKEN, Keys.ENTER)
    _wait(lambda: browser.find_element(By.ID, "clinic").is_displayed(), "the form after the token")
    _wait(lambda: f"version {expected['model']['version']}" in _text(browser, "model-line"), "the model line")

    # the example record, submitted from the keyboard (Enter in a field)
    _fill(browser, record)
    browser.find_element(By.ID, "f-exercise_duration_min").send_keys(Keys.ENTER)
    _wait(lambda: browser.find_element(By.ID, "result").is_displayed(), "the answer")
    for outcome, p in pred["probabilities"].items():
        cell = browser.find_element(By.CSS_SELECTOR, f'#probs tr[data-outcome="{outcome}"] td.num')
        assert cell.text == f"{100 * p:.1f} %", outcome
    reasons = browser.find_elements(By.CSS_SELECTOR, "#reasons li .wf-text")
    assert reasons[1].text == pred["top_contributions"][0]["statement"]  # after the average person's row
    assert len(reasons) == len(pred["top_contributions"]) + 2
    assert pred["hyperalgesia_risk"] in _text(browser, "risk")
    lo, hi = pred["change_interval_pct"]["80"]
    intervals = _text(browser, "intervals").replace("\u2212", "-")
    assert f"8 in 10 people like this one change between {lo:+.0f} % and {hi:+.0f} %" in intervals.replace(" 0 %", " +0 %")

    # the protocols with the best odds, then the typed one beside them (keyboard: Space on the button)
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#recommend-rows tr")) == 5, "the recommendations")
    compare = browser.find_element(By.ID, "compare")
    browser.execute_script("arguments[0].focus()", compare)
    compare.send_keys(Keys.SPACE)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#recommend-rows tr.current-row"), "the typed protocol")
    assert "more benefit" in _text(browser, "current-note")
    assert not _unlabelled(browser)
    violations = _axe_serious(browser)
    assert not violations, violations
    browser.set_window_size(1280, 1500)
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    browser.save_screenshot(str(shots / "clinic_desktop.png"))

    # a value out of range: the service's rule next to the field, and a summary that links to it
    age = browser.find_element(By.ID, "f-age_years")
    age.clear()
    age.send_keys("150", Keys.ENTER)
    _wait(lambda: browser.find_element(By.ID, "e-age_years").is_displayed(), "the field's error")
    assert "rule: age_years is a number from 18 to 100 years" in _text(browser, "e-age_years")
    assert age.get_attribute("aria-invalid") == "true"
    assert "Age" in _text(browser, "summary") and not browser.find_element(By.ID, "result").is_displayed()
    violations = _axe_serious(browser)
    assert not violations, violations

    # phone width: the corrected form's answer, where a clinician scrolls to it
    age.clear()
    age.send_keys(str(record["age_years"]), Keys.ENTER)
    _wait(lambda: browser.find_element(By.ID, "result").is_displayed(), "the answer again")
    assert not browser.find_element(By.ID, "e-age_years").is_displayed()
    browser.set_window_size(390, 844)
    browser.execute_script("document.getElementById('answer').scrollIntoView()")
    time.sleep(0.3)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 392, f"the page scrolls sideways at phone width ({width} px)"
    browser.save_screenshot(str(shots / "clinic_phone.png"))
    assert browser.current_url.split("#")[0] == base + "/clinic"  # nothing typed in the URL
    for name in ("clinic_desktop.png", "clinic_phone.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
