"""Shared pytest fixtures (generic; test-specific helpers live next to their tests)."""

from __future__ import annotations

import pytest

from model_runtime.settings import apply_privacy_env

apply_privacy_env()


@pytest.fixture
def cli_runner():
    """A typer CliRunner with a wide, colourless terminal so rich never wraps or styles
    the output the tests read."""
    from typer.testing import CliRunner

    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


pytest_plugins = ["model_fixtures"]
