"""The registry from the command line (issue 20): `eih models list`, `eih models promote`,
`eih models rollback` (one step back each time, also after training's gate moved the
alias) and `eih card`, on a small registry built without training
(tests/newcomer_registry.py)."""

from __future__ import annotations

import re

import pytest
from newcomer_registry import NAME, card_text, isolated_store, make_registry

from model_runtime import champion


@pytest.fixture
def use_store(monkeypatch):
    yield from isolated_store(monkeypatch)


def _run(cli_runner, *args: str):
    from eih.cli import app

    return cli_runner.invoke(app, list(args))


def _alias(store) -> str:
    return str(store.client.get_model_version_by_alias(NAME, "champion").version)


def test_list_shows_versions_aliases_metrics_and_gate(tmp_path, use_store, cli_runner):
    store = use_store(make_registry(tmp_path, versions=3, champion="2", gate={"3": "kept_champion"}))
    res = _run(cli_runner, "models", "list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["version", "aliases", "registered", "(UTC)", "test", "log-loss", "gate", "decision"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["2"][1] == "@champion" and rows["1"][1] == rows["3"][1] == "-"
    for v in ("1", "2", "3"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", rows[v][2]) and re.fullmatch(r"\d\d:\d\d", rows[v][3])
        assert rows[v][4] == f"{0.9 + int(v) / 100:.4f}"
    assert rows["1"][5] == rows["2"][5] == "promoted" and rows["3"][5] == "kept_champion"
    assert "@champion is version 2; eih models rollback would return it to version 1" in res.output
    assert _alias(store) == "2"  # listing moves nothing


def test_promote_moves_the_champion_and_says_from_where(tmp_path, use_store, cli_runner):
    store = use_store(make_registry(tmp_path, versions=3, champion="1"))
    res = _run(cli_runner, "models", "promote", "3")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"{NAME} @champion: version 1 -> 3" and _alias(store) == "3"
    res = _run(cli_runner, "models", "promote", "3")
    assert res.exit_code == 0 and "already version 3" in res.output
    res = _run(cli_runner, "models", "promote", "7")
    assert res.exit_code == 2 and "has no version 7 (versions: 1, 2, 3)" in res.output and _alias(store) == "3"


def test_rollback_after_two_promotions_goes_back_one_step_at_a_time(tmp_path, use_store, cli_runner):
    store = use_store(make_registry(tmp_path, versions=3, champion="1", gate={"1": "promoted", "2": "kept_champion",
                                                                         "3": "kept_champion"}))
    for v in ("2", "3"):
        assert _run(cli_runner, "models", "promote", v).exit_code == 0
    res = _run(cli_runner, "models", "rollback")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"{NAME} @champion: version 3 -> 2" and _alias(store) == "2"
    res = _run(cli_runner, "models", "rollback")
    assert res.output.strip() == f"{NAME} @champion: version 2 -> 1" and _alias(store) == "1"
    res = _run(cli_runner, "models", "rollback")  # nothing earlier than the first champion
    assert res.exit_code == 2 and "no earlier @champion" in res.output and _alias(store) == "1"
    assert champion.history(store.client, NAME) == ["1"]


def test_rollback_knows_moves_made_elsewhere(tmp_path, use_store, cli_runner):
    """The gate (or the MLflow UI) moves the alias without the history: rollback still goes one
    step back, to the champion before that move."""
    store = use_store(make_registry(tmp_path, versions=3, champion="1"))
    assert _run(cli_runner, "models", "promote", "2").exit_code == 0
    store.client.set_registered_model_alias(NAME, "champion", "3")  # what training's gate does
    res = _run(cli_runner, "models", "rollback")
    assert res.exit_code == 0 and res.output.strip() == f"{NAME} @champion: version 3 -> 2" and _alias(store) == "2"


def test_rollback_without_history_uses_the_gate_decisions(tmp_path, use_store, cli_runner):
    store = use_store(make_registry(tmp_path, versions=3, champion="3",
                                    gate={"1": "promoted", "2": "kept_champion", "3": "promoted"}))
    res = _run(cli_runner, "models", "rollback")
    assert res.exit_code == 0, res.output
    assert "version 3 -> 1" in res.output and "promoted by training's gate" in res.output and _alias(store) == "1"


def test_card_prints_the_champions_model_card_or_a_versions(tmp_path, use_store, cli_runner):
    store = use_store(make_registry(tmp_path, versions=2, champion="2"))
    res = _run(cli_runner, "card")
    assert res.exit_code == 0, res.output
    assert res.output == card_text(2)
    res = _run(cli_runner, "card", "1")
    assert res.exit_code == 0 and res.output == card_text(1)
    res = _run(cli_runner, "card", "5")
    assert res.exit_code == 2 and "has no version 5" in res.output
    rid = store.client.create_run(store.client.get_experiment_by_name("eih-responder").experiment_id).info.run_id
    v3 = store.client.create_model_version(NAME, f"runs:/{rid}/model", run_id=rid).version
    res = _run(cli_runner, "card", str(v3))
    assert res.exit_code == 2 and f"version {v3} of {NAME} has no model card" in res.output


def test_registry_commands_on_a_store_without_the_model(tmp_path, use_store, cli_runner):
    use_store(make_registry(tmp_path, versions=1, name="another-model"))
    for args in (("models", "list"), ("models", "rollback"), ("card",)):
        res = _run(cli_runner, *args)
        assert res.exit_code == 2, res.output
        assert f"no registered model {NAME} in the store sqlite:///{tmp_path}" in res.output
        assert "eih train --data FILE" in res.output and "Traceback" not in res.output
