"""Option declarations shared by several commands, declared once with their help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vistr_core.errors import ConfigError

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.", show_default=True
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="auto (bf16 on CUDA and on CPUs with native bf16: AMX or AVX512-BF16; else fp32), fp32, bf16 "
        "or fp16 (CUDA only). Default auto.",
        show_default=False,
    ),
]
AmpOpt = Annotated[
    bool | None,
    typer.Option(
        "--amp/--no-amp", help="Aliases of --precision auto / --precision fp32.", show_default=False
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


def precision_choice(precision: str | None, amp: bool | None) -> str:
    """``--precision`` with its ``--amp``/``--no-amp`` aliases folded in (default auto)."""
    alias = None if amp is None else ("auto" if amp else "fp32")
    if precision is not None and alias is not None and precision != alias:
        flag = "--amp" if amp else "--no-amp"
        raise ConfigError(
            f"{flag} means --precision {alias}, which contradicts --precision {precision}; give one"
        )
    return precision or alias or "auto"


ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for the model (default: the cores other processes leave free, re-checked "
        "while running; env VISTR_THREADS). A fixed count also makes runs bit-reproducible.",
        show_default=False,
    ),
]

LinkIouOpt = Annotated[
    float, typer.Option("--link-iou", help="Smallest mask IoU over shared frames that links windows.")
]
SlotBonusOpt = Annotated[
    float,
    typer.Option(
        "--slot-bonus",
        help="Linking prefers the same query slot of consecutive windows by this much mask IoU "
        "(0 = masks and classes only).",
    ),
]
DedupOpt = Annotated[
    float | None,
    typer.Option(
        "--dedup-iou",
        help="Within a window, drop an instance whose masks overlap a higher-scoring one's by more than "
        "this IoU (default: off, as the official inference; for briefly trained models, e.g. 0.5).",
        show_default=False,
    ),
]
MergeOpt = Annotated[
    float | None,
    typer.Option(
        "--merge-iou",
        help="Within a window, merge instances of one class whose masks overlap by more than this IoU into "
        "the best-scoring one (default: off, as the official inference; for models that split objects over "
        "several slots, e.g. 0.1; it lowers AP on short clips).",
        show_default=False,
    ),
]
MergeColourOpt = Annotated[
    float,
    typer.Option(
        "--merge-colour",
        help="--merge-iou merges only instances whose colours (median RGB under the masks, 0-255) differ by "
        "at most this: copies of one object share its colour, look-alikes side by side rarely do "
        "(inf = any colour).",
    ),
]
ColourWeightOpt = Annotated[
    float,
    typer.Option(
        "--colour-weight",
        help="Linking across windows and gaps subtracts up to this much affinity where a track's colour "
        "(median RGB under its masks) and an instance's differ (0 = masks, classes and slots only).",
    ),
]
RelinkColourOpt = Annotated[
    float | None,
    typer.Option(
        "--relink-colour",
        help="Once a video is done, cut tracks where their colour (median RGB under the masks) changes "
        "by this much for good and rejoin the pieces that continue each other in colour, class and place: "
        "undoes identity switches between look-alikes (0 = off).",
    ),
]
CoveragePowerOpt = Annotated[
    float,
    typer.Option(
        "--coverage-power",
        help="A track's score is its mean frame score x (share of the video's frames it covers) ^ this; "
        "0 = the plain mean, as the official inference.",
    ),
]
