"""Option declarations shared by several commands, declared once with their help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.", show_default=True
    ),
]
AmpOpt = Annotated[
    bool,
    typer.Option(
        "--amp/--no-amp", help="Mixed precision on CUDA (bf16 where supported, else fp16). Ignored on CPU."
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", "-f", help="Overwrite existing outputs instead of refusing or skipping.")
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="A `vistr train` checkpoint, or the official vistr_r50.pth / vistr_r101.pth.",
        dir_okay=False,
    ),
]
PresetOpt = Annotated[
    str, typer.Option("--preset", "-p", help="Named configuration: vistr_r50, vistr_r101 or tiny.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Data loading worker processes.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for the model (default: the cores other processes leave free, re-checked "
        "while running; env VISTR_THREADS). A fixed count also makes runs bit-reproducible.",
        show_default=False,
    ),
]
