"""Consoles for command output that stays whole outside a terminal (a log file, a pipe, CI).

Rich wraps everything to the console width, 80 columns when it cannot ask a terminal, and wraps a
table's title to the table's own width, folding long paths mid-word. So titles are printed as
lines of their own, and output that is not a terminal gets room for whole lines.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

LOG_WIDTH = 240  # wide enough for any table row; nothing is padded to it


def stdout_console() -> Console:
    """A Console on stdout: the terminal's width, or :data:`LOG_WIDTH` when not a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = LOG_WIDTH
    return console


def print_table(console: Console, title: str, table: Table) -> None:
    """``title`` (plain text) on a line of its own, never wrapped, then ``table``."""
    console.print(f"[italic]{escape(title)}[/]", soft_wrap=True)
    console.print(table)
