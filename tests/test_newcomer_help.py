"""`eih COMMAND --help` on an 80-column terminal (issue 20): paragraphs are filled to the
width (no line broken mid-phrase), no line is longer than the terminal, nothing is cut
off with an ellipsis, and every default is shown whole."""

from __future__ import annotations

import re

import click
import pytest
import typer.main
from typer.testing import CliRunner

from eih.cli import app

WIDTH = 80


def _commands() -> list[tuple[str, ...]]:
    group = typer.main.get_command(app)
    out = [()]
    for name, cmd in group.commands.items():
        out.append((name,))
        if isinstance(cmd, click.Group):
            out += [(name, sub) for sub in cmd.commands]
    return out


def _param(path: tuple[str, ...]) -> click.Command:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.fixture(scope="module")
def narrow():
    return CliRunner(env={"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"})


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "eih")
def test_help_fits_80_columns_and_keeps_its_phrases_and_defaults(narrow, path):
    res = narrow.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert all(len(line) <= WIDTH for line in lines), [line for line in lines if len(line) > WIDTH]
    assert "…" not in res.output
    # the description: every line is filled, i.e. the next line's first word would not have fitted
    head = res.output.split("\n\nArguments:")[0].split("\n\nOptions:")[0].split("\n\nCommands:")[0]
    body = head.split("\n\n", 1)[1] if "\n\n" in head else ""
    for paragraph in body.split("\n\n"):
        rows = [r for r in paragraph.splitlines() if r.strip()]
        for row, nxt in zip(rows, rows[1:], strict=False):
            first = nxt.split()[0]
            assert len(row.rstrip()) + 1 + len(first) > WIDTH - 2, f"broken mid-phrase: {row!r} / {nxt!r}"
    flat = " ".join(re.sub(r"-\n\s+", "-", res.output).split())  # a value wrapped at its hyphen is still whole
    for param in _param(path).params:
        default = param.default
        if param.show_default and default not in (None, "") and not isinstance(default, bool) and not callable(default):
            shown = default.value if hasattr(default, "value") else default
            assert re.search(rf"\[default: {re.escape(str(shown))}[;\]]", flat), (param.name, shown)
