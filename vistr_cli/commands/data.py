"""`vistr data ...` (being built)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Datasets: synthesize, check, split, convert.", no_args_is_help=True)
