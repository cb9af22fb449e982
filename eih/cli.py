"""`eih`: one command in front of every job.

Each package registers its own subcommands (`<package>/cli.py: register(app)`); heavy
imports happen inside the commands, so `eih --help` stays fast.
"""

from __future__ import annotations

import logging

import typer

from model_runtime.settings import apply_privacy_env

apply_privacy_env()
# MLflow announces a new local store in two INFO lines; a command's own output says what matters
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

app = typer.Typer(
    name="eih",
    help=(
        "Predict exercise-induced hypoalgesia, no change or hyperalgesia for one person and "
        "one exercise protocol, and say why. Every job (validate, simulate, train, score, "
        "serve, ui) starts here; `eih COMMAND --help` explains each."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: paragraphs rewrapped to the terminal, defaults and long values never cut
    rich_markup_mode=None,
)


@app.callback()
def main() -> None:
    """Exercise-induced hypoalgesia responder service."""


def _register_all() -> None:
    import importlib

    for module in (
        "data_contracts.cli",
        "simulation.cli",
        "training.cli",
        "training.evaluate_cli",
        "training.update",
        "serving.cli",
        "serving.batch_cli",
        "serving.recommend_cli",
        "serving.build_cli",
        "eih.ops_cli",
        "eih.info_cli",
        "eih.models_cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a package not yet built
            if exc.name != module:
                raise
            continue
        mod.register(app)


_register_all()

if __name__ == "__main__":  # pragma: no cover
    app()
