"""The `vistr` command: registration only. Each command lives in its own module.

Start-up is kept light: the command modules import only typer, rich and vistr_core's pure-Python
modules at import time, and each command imports torch, OpenCV, PyAV and the rest when it runs, so
`--help`, `--version` and usage errors answer at once (tests/test_cli_startup.py holds this).
"""

from __future__ import annotations

from typing import Annotated

import typer

import vistr_core
from vistr_cli.commands import data, eval, render, review, segment, train
from vistr_cli.errors import show_warnings_as_lines

app = typer.Typer(
    name="vistr",
    help="Video instance segmentation with VisTR: segment videos, train on YouTube-VIS data, score, render.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vistr {vistr_core.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Video instance segmentation with VisTR."""
    show_warnings_as_lines()


app.command("segment")(segment.segment)
app.command("train")(train.train)
app.command("eval")(eval.evaluate)
app.command("render")(render.render)
app.command("review")(review.review)
app.add_typer(data.app, name="data")


def main() -> None:
    app()
