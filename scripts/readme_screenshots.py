"""Screenshots of the MLflow UI for the README, from the project's own store.

    .venv/bin/python scripts/readme_screenshots.py [--out docs/img]

Needs a trained champion (`./run.sh --no-serve`) and Debian's chromium + chromium-driver.
Starts `eih ui` on a free 127.0.0.1 port, opens the latest training run of the
eih-responder experiment and saves `mlflow_run.png`, then stops the UI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import mlflow
    from selenium.webdriver.common.by import By

    from eih.ui_session import chromium, running_ui
    from model_runtime.settings import configure_mlflow

    configure_mlflow()
    runs = mlflow.search_runs(experiment_names=["eih-responder"], filter_string="tags.mlflow.runName LIKE 'train-%'",
                              order_by=["start_time DESC"], max_results=1)
    if runs.empty:
        sys.exit("no training run in the project store: run ./run.sh --no-serve first")
    run_id, exp_id = runs.iloc[0]["run_id"], runs.iloc[0]["experiment_id"]
    with tempfile.TemporaryDirectory() as tmp, running_ui(Path(tmp) / "ui.log") as url:
        driver = chromium(Path(tmp) / "profile")
        try:
            driver.get(f"{url}/#/experiments/{exp_id}/runs/{run_id}")
            for _ in range(60):
                if "gate_decision" in driver.find_element(By.TAG_NAME, "body").text:
                    break
                time.sleep(0.5)
            time.sleep(1.5)
            # close the assistant side panel if the UI opened it
            for b in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
                if b.is_displayed():
                    b.click()
            time.sleep(0.5)
            args.out.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out / "mlflow_run.png"))
            print(f"wrote {args.out / 'mlflow_run.png'}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
