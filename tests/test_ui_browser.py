"""The MLflow UI as a data scientist sees it, in headless Chromium (Debian's chromium +
chromium-driver, driven by Selenium; no browser download at test time).

Starts `eih ui` on 127.0.0.1 against the session's trained-model store, finds the
eih-responder experiment, opens the latest training run, sees its test_log_loss metric
and the model card artifact with its TRIPOD+AI headings, and checks the champion alias on the model page.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from eih.ui_session import chromium, running_ui

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui_server(trained_model, tmp_path_factory):
    from mlflow import MlflowClient

    uri = trained_model.store.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for k in range(6):  # a store a team has used: more experiments than the home page's five newest
        if client.get_experiment_by_name(f"other-work-{k}") is None:
            client.create_experiment(f"other-work-{k}")
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    with running_ui(tmp_path_factory.mktemp("ui") / "ui.log", env) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    driver.implicitly_wait(2)
    yield driver
    driver.quit()


SHOTS = Path(os.environ.get("EIH_UI_SHOTS", "")) if os.environ.get("EIH_UI_SHOTS") else None


def _wait_for(driver, predicate, timeout=30.0, what="element"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - the SPA re-renders while we look
            last = exc
        time.sleep(0.5)
    if SHOTS is not None:  # for debugging a changed UI: what the browser showed when it gave up
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "timeout.png"))
    raise AssertionError(f"timed out waiting for {what} ({last})")


def _click(driver, el):
    """A real pointer click (the UI's tabs react to pointer events, not to a synthetic click());
    a scripted click only when a popover covers the element."""
    from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    try:
        el.click()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        driver.execute_script("arguments[0].click()", el)


def test_data_scientist_finds_run_metric_model_card_and_champion(ui_server, browser, trained_model):
    from selenium.webdriver.common.by import By

    run_id = trained_model.result.run_id
    browser.get(ui_server + "/")
    toggle = _wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[normalize-space(text())='Model training']"),
                       what="the Model training switch")
    _click(browser, toggle[0])
    # the home page lists only the five experiments updated last: the experiments page lists them all
    browser.get(ui_server + "/#/experiments")
    exp_link = _wait_for(browser, lambda: browser.find_elements(By.LINK_TEXT, "eih-responder"), what="the experiment")
    _click(browser, exp_link[0])

    # the runs table: the latest training run comes first (sorted by start time, newest first)
    runs = _wait_for(browser, lambda: browser.find_elements(By.PARTIAL_LINK_TEXT, "train-"), what="training runs")
    hrefs = [r.get_attribute("href") for r in runs]
    assert any(h.endswith(run_id) for h in hrefs), hrefs
    latest = next(r for r in runs if r.get_attribute("href").endswith(run_id))
    _click(browser, latest)
    _wait_for(browser, lambda: run_id in browser.current_url, what="the run page")

    # its metrics (Model metrics tab lists every metric by name)
    tab = _wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[normalize-space(text())='Model metrics']"),
                    what="the metrics tab")
    _click(browser, tab[0])
    _wait_for(browser, lambda: "test_log_loss" in browser.find_element(By.TAG_NAME, "body").text, what="test_log_loss")

    # the model card artifact
    tab = _wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[normalize-space(text())='Artifacts']"),
                    what="the artifacts tab")
    _click(browser, tab[0])
    folder = _wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[normalize-space(text())='report']"),
                       what="the report folder")
    _click(browser, folder[0])
    # the file tree re-renders while it loads: a click can land on a stale node, so click again if needed
    for attempt in range(4):
        card = _wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[normalize-space(text())='model_card.md']"),
                         what="model_card.md")
        _click(browser, card[0])
        try:
            _wait_for(browser, lambda: "Intended use" in browser.find_element(By.TAG_NAME, "body").text,
                      timeout=15 if attempt < 3 else 30, what="the model card's text")
            break
        except AssertionError:
            if attempt == 3:
                raise
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "TRIPOD+AI checklist" in body and "(TRIPOD+AI)" in body  # the card renders its TRIPOD+AI headings
    browser.save_screenshot(str(Path(trained_model.store.dir) / "ui_run.png"))

    # the registered model page shows the champion alias on the promoted version
    browser.get(ui_server + "/#/models/eih-responder")
    _wait_for(browser, lambda: "champion" in browser.find_element(By.TAG_NAME, "body").text, what="the champion alias")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"Version {trained_model.result.model_version}" in body or f"v{trained_model.result.model_version}" in body
