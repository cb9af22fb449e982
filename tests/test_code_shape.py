"""The code keeps the shape the project asks of it: short functions, files of one job,
docstrings on the public functions of the runtime, training and serving, and comments
that explain rather than narrate history."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERED = ("model_runtime", "training", "serving")
ALL = ("data_contracts", "features", "model_runtime", "training", "serving", "simulation", "eih")
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400
DATA_TABLES: set[str] = set()  # files that are data tables, allowed to be longer
HISTORY = re.compile(r"\b(today|yesterday|was|were|used to|previously|no longer|anymore)\b|\b20\d\d-\d\d-\d\d\b",
                     re.IGNORECASE)


def _files(packages) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", _files(LAYERED), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_over_80_lines(path):
    tree = ast.parse(path.read_text())
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in _functions(tree)
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


@pytest.mark.parametrize("path", _files(LAYERED), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_over_400_lines(path):
    rel = str(path.relative_to(ROOT))
    n = len(path.read_text().splitlines())
    assert rel in DATA_TABLES or n <= MAX_FILE_LINES, f"{rel}: {n} lines"


def _public_functions(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    decorators = {getattr(d, "id", getattr(d, "attr", "")) for d in item.decorator_list}
                    if "property" not in decorators:
                        yield f"{node.name}.{item.name}", item


@pytest.mark.parametrize("path", _files(LAYERED), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_functions_have_docstrings(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), "the module says in its first lines what it owns"
    missing = [name for name, fn in _public_functions(tree) if not ast.get_docstring(fn)]
    assert not missing, missing


@pytest.mark.parametrize("path", _files(ALL), ids=lambda p: str(p.relative_to(ROOT)))
def test_comments_explain_rather_than_narrate(path):
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT and HISTORY.search(tok.string) and "noqa" not in tok.string:
            bad.append(f"line {tok.start[0]}: {tok.string.strip()}")
    assert not bad, bad


def test_the_shape_checks_catch_what_they_forbid(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    tree = ast.parse(f"def f():\n{body}\n")
    assert any(f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES for f in _functions(tree))
    assert [n for n, _ in _public_functions(ast.parse("def g():\n    pass\n"))] == ["g"]
    assert HISTORY.search("# the cache was slower before") and not HISTORY.search("# keeps the order stable")
