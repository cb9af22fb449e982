"""`eih ui` without MLflow's "MLflow collects usage data" banner (issue 20).

MLflow 3.17 shows the banner until the browser's localStorage holds
`mlflow.telemetry.info.alert.dismissed_v1` (no server setting hides it; see
eih/mlflow_ui.py). The tests check that the installed MLflow still decides it that way
(its UI bundle), that eih.mlflow_ui's layer adds the script that sets the key to the HTML
page and nothing else, and, on a real `eih ui`, that the page loads the script before
MLflow's bundle while the server reports telemetry off.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from newcomer_registry import isolated_store

from eih import mlflow_ui


@pytest.fixture
def use_store(monkeypatch):
    yield from isolated_store(monkeypatch)


def _mlflow_build() -> Path:
    import mlflow.server

    return Path(mlflow.server.__file__).parent / "js" / "build"


def test_the_installed_mlflow_hides_the_banner_by_this_key_only():
    build = _mlflow_build()
    bundles = "".join(p.read_text(errors="replace") for p in (build / "static" / "js").glob("*.js"))
    key, version = mlflow_ui.DISMISSED_KEY.rsplit("_v", 1)
    # the constant, its version, and how the UI's local-storage hook names the stored key
    assert re.search(rf'"{re.escape(key)}",\w+=1\b', bundles) and version == "1"
    assert "`${e}_v${t}`" in bundles
    assert "mlflow.home.telemetry-alert" in bundles and "MLflow collects usage data" in bundles
    pref, pref_version = mlflow_ui.TELEMETRY_PREF_KEY.rsplit("_v", 1)
    assert f'"{pref}"' in bundles and pref_version == "1"
    assert b"<head>" in (build / "index.html").read_bytes()


def _app(pages: dict):
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    def html_page(_):
        return HTMLResponse(pages["html"])

    def json_page(_):
        return JSONResponse({"ok": True})

    return mlflow_ui.BannerOff(Starlette(routes=[Route("/", html_page), Route("/api", json_page, methods=["GET", "POST"])]))


def test_the_layer_adds_the_script_to_html_pages_only():
    from starlette.testclient import TestClient

    page = "<!doctype html><html><head><script defer src='bundle.js'></script></head><body>é</body></html>"
    with TestClient(_app({"html": page})) as c:
        r = c.get("/")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
        assert r.text == page.replace("<head>", '<head><script src="eih-ui-defaults.js"></script>')
        assert r.text.index("eih-ui-defaults.js") < r.text.index("bundle.js")  # before MLflow's deferred bundle
        assert c.get("/api").json() == {"ok": True} and c.post("/api").json() == {"ok": True}
        js = c.get("/eih-ui-defaults.js")
        assert js.status_code == 200 and js.headers["content-type"] == "application/javascript"
        assert f"setItem('{mlflow_ui.DISMISSED_KEY}', 'true')" in js.text
        assert f"setItem('{mlflow_ui.TELEMETRY_PREF_KEY}', 'false')" in js.text
        assert "http" not in js.text  # no request anywhere


def test_eih_ui_runs_mlflow_server_through_the_layer(tmp_path, use_store):
    from eih.ops_cli import ui_command

    use_store(SimpleNamespace(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    cmd = ui_command("127.0.0.1", 5999)
    assert cmd[1:3] == ["-m", "eih.mlflow_ui"] and cmd[cmd.index("--backend-store-uri") + 1].endswith("mlflow.db")


@pytest.mark.slow
def test_a_real_eih_ui_page_marks_the_notice_read_and_reports_telemetry_off(tmp_path):
    from eih.ui_session import running_ui

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI" and not k.startswith("EIH_")}
    env["EIH_HOME"] = str(tmp_path / "home")
    with running_ui(tmp_path / "ui.log", env) as url:
        page = httpx.get(url + "/", timeout=30).text
        assert '<script src="eih-ui-defaults.js"></script>' in page
        assert page.index("eih-ui-defaults.js") < page.index("static-files/static/js/main.")
        js = httpx.get(url + "/eih-ui-defaults.js", timeout=30)
        assert js.status_code == 200 and mlflow_ui.DISMISSED_KEY in js.text
        telemetry = httpx.get(url + "/ajax-api/3.0/mlflow/ui-telemetry", timeout=30).json()
        assert telemetry["disable_ui_telemetry"] is True
        assert httpx.get(url + "/health", timeout=30).status_code == 200  # the API itself untouched
