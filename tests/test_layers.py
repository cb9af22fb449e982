"""The layers hold: data_contracts <- features <- model_runtime <- {training, serving} <- eih,
simulation imports only the contract and only the command imports it (import-linter, the
contracts in pyproject.toml), and the model runtime loads no service or tracking code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("data_contracts", "features", "model_runtime", "training", "serving", "simulation", "eih")
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


def _copy_tree(dst: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_project_keeps_its_layers():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "3 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("serving/_probe.py", "import training.steps\n", "layers"),
    ("training/_probe.py", "from serving import gate\n", "layers"),
    ("model_runtime/_probe.py", "import serving.scoring\n", "layers"),
    ("features/_probe.py", "import model_runtime.links\n", "layers"),
    ("simulation/_probe.py", "import features.derived\n", "simulation imports only the contract"),
    ("training/_probe.py", "import simulation\n", "only the eih command imports simulation"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    root = _copy_tree(tmp_path)
    (root / module).write_text(line)
    res = _lint(root)
    assert res.returncode == 1
    assert "1 broken" in res.stdout and f"{broken}" in res.stdout and "BROKEN" in res.stdout


def test_the_runtime_imports_no_service_training_or_tracking_code():
    code = ("import sys, model_runtime.predictor, model_runtime.loading, model_runtime.settings, model_runtime.interpret;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mlflow', 'bentoml', 'dask', 'training', 'serving', 'simulation', 'eih', 'optuna', 'matplotlib'));"
            "print(','.join(bad))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == ""
