"""Turning library errors into one line on stderr and a non-zero exit status."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vistr_core.errors import VistrError, VistrWarning

P = ParamSpec("P")
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: a :class:`VistrError` becomes one red line and exit status 1, Ctrl-C
    becomes a short notice and status 130; other exceptions are bugs and keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except VistrError as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            stderr.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def show_warnings_as_lines() -> None:
    """Print library warnings (:class:`VistrWarning`) as one ``warning:`` line on stderr instead of
    Python's two-line form with a source location; other warnings keep the default display."""
    default = warnings.showwarning
    if getattr(default, "vistr", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - stdlib hook
        if issubclass(category, VistrWarning):
            stderr.print(f"[yellow]warning:[/] {escape(str(message))}")
        else:
            default(message, category, filename, lineno, file, line)

    show.vistr = True  # type: ignore[attr-defined]
    warnings.showwarning = show
