"""The `hotline` console script.

Area packages add their own command groups: a module listed in
``COMMAND_MODULES`` exposes ``register(app: typer.Typer)`` and keeps heavy
imports inside command bodies.
"""
from __future__ import annotations

import importlib

import typer

from eval.cli import eval_app
from telephony import cli as telephony_cli

app = typer.Typer(help="12345 政务服务便民热线 语音智能平台", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(eval_app, name="eval")

COMMAND_MODULES: list[str] = [
    "serving.cli_core",
    "knowledge.cli",
    "copilot.cli",
    "serving.cli_tickets",
    "qa.cli",
    "ops.cli",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _start_live(settings):
    from serving.pipeline import start_live

    return start_live(settings)


telephony_cli.register(app, live=_start_live)  # the telephony commands get the live path's wiring from here


def main() -> None:
    """Entry point: domain errors become a clear one-line message and exit code 2."""
    from domain.errors import AppError

    try:
        app()
    except AppError as exc:
        typer.secho(f"错误：{exc.message}（{exc.code}）", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None
