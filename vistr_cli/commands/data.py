"""`vistr data ...`: synthesize, check, split and convert YouTube-VIS-format datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from vistr_cli.errors import reports_errors, stderr
from vistr_cli.options import ForceOpt, SeedOpt
from vistr_cli.progress import RichProgress
from vistr_core.errors import ConfigError

app = typer.Typer(help="Datasets: synthesize, check, split, convert.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

SplitOpt = Annotated[
    str,
    typer.Option("--split", "-s", help="Split name: train, valid, or a held-out split such as split_valid."),
]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r} must look like HxW, e.g. 128x160") from None
    return height, width


@app.command("synth")
@reports_errors
def synth(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to create (refused if it exists and is not empty).")
    ],
    videos: Annotated[int, typer.Option("--videos", help="Training videos.")] = 60,
    valid_videos: Annotated[
        int, typer.Option("--valid-videos", help="Validation videos (with ground truth).")
    ] = 20,
    frames: Annotated[int, typer.Option("--frames", help="Frames per video.")] = 24,
    size: Annotated[str, typer.Option("--size", help="Frame size HxW.")] = "128x160",
    seed: SeedOpt = 0,
    difficulty: Annotated[
        str,
        typer.Option(
            "--difficulty",
            help="single (one object per video), easy (1-2), multi (1-3 crossing), medium or hard.",
        ),
    ] = "easy",
    force: ForceOpt = False,
) -> None:
    """Write a synthetic YouTube-VIS dataset of moving shapes (2021 layout: train/ and valid/)."""
    from vistr_core.data.synthetic import generate_synthetic

    with RichProgress(transient=True) as progress:
        summary = generate_synthetic(
            out,
            videos=videos,
            valid_videos=valid_videos,
            frames=frames,
            size=_parse_size(size),
            seed=seed,
            difficulty=difficulty,
            force=force,
            progress=progress,
        )
    parts = ", ".join(f"{name}: {v} videos, {n} instances" for name, (v, n) in summary.splits.items())
    console.print(f"wrote {escape(str(summary.out))} ({parts}; categories {', '.join(summary.categories)})")


@app.command("check")
@reports_errors
def check(
    data: Annotated[Path | None, typer.Argument(help="Dataset folder (or an annotation JSON file).")] = None,
    split: SplitOpt = "train",
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="An annotation file instead of DATA/--split.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="The frames' root folder (JPEGImages).")
    ] = None,
    files: Annotated[
        bool, typer.Option("--files/--no-files", help="Check that every frame file exists.")
    ] = True,
    decode: Annotated[
        bool,
        typer.Option(
            "--decode/--no-decode", help="Decode every frame (what training reads) and check its size."
        ),
    ] = True,
) -> None:
    """Validate a dataset split: prints every problem (video and frame named) or OK with counts."""
    from vistr_core.data.check import check_dataset

    report = check_dataset(
        data, split, annotation_file=annotations, image_root=images, check_files=files, decode=decode
    )
    if report.ok:
        gt = "" if report.has_annotations else " (no annotations: a valid/test file)"
        console.print(
            f"OK: {report.num_videos} videos, {report.num_instances} instances, "
            f"{report.num_categories} categories{gt} ({escape(str(report.annotation_file))})"
        )
        return
    for problem in report.problems:
        console.print(escape(problem.message))
    stderr.print(
        f"[bold red]error:[/] {len(report.problems)} problem(s) in {escape(str(report.annotation_file))}"
    )
    raise typer.Exit(1)


@app.command("split")
@reports_errors
def split(
    data: Annotated[Path, typer.Argument(help="Dataset folder.")],
    valid_fraction: Annotated[
        float, typer.Option("--valid-fraction", help="Fraction of videos held out.")
    ] = 0.1,
    seed: SeedOpt = 0,
    source: Annotated[str, typer.Option("--source", help="Split to carve from.")] = "train",
    name: Annotated[
        str, typer.Option("--out-name", "--name", help="Prefix of the new split names.")
    ] = "split",
    force: ForceOpt = False,
) -> None:
    """Carve a held-out validation split from train: DATA/annotations/{name}_train.json and
    {name}_valid.json, used as `--data DATA --split {name}_valid`."""
    from vistr_core.data.split import split_dataset

    summary = split_dataset(
        data, valid_fraction=valid_fraction, seed=seed, source_split=source, name=name, force=force
    )
    console.print(
        f"wrote {escape(str(summary.train_file))} ({summary.train_videos} videos) and "
        f"{escape(str(summary.valid_file))} ({summary.valid_videos} videos); "
        f"use --split {name}_train / --split {name}_valid"
    )


@app.command("convert")
@reports_errors
def convert(
    src: Annotated[Path, typer.Argument(help="Source dataset folder (or YouTube-VIS annotation file).")],
    dst: Annotated[Path, typer.Argument(help="Folder to create.")],
    to: Annotated[str, typer.Option("--to", help="ytvis, mots, davis or cvat.")],
    source_format: Annotated[
        str | None, typer.Option("--from", help="ytvis, mots, davis or cvat (default: detected).")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            "-s",
            help="YouTube-VIS split to read (default train), or to write (default: the split the source "
            "was converted from, else train).",
        ),
    ] = None,
    mots: Annotated[
        str, typer.Option("--mots", help="MOTS variants to write: txt, png or txt,png.")
    ] = "txt,png",
    cvat_shapes: Annotated[
        str,
        typer.Option(
            "--cvat-shapes", help="CVAT shapes: auto (polygons where exact, else masks), polygon or mask."
        ),
    ] = "auto",
    force: ForceOpt = False,
) -> None:
    """Convert mask tracks between YouTube-VIS JSON, MOTS (txt/png), DAVIS PNG folders and CVAT for
    video 1.1 XML."""
    from vistr_core.data.convert import convert_dataset

    with RichProgress(transient=True) as progress:
        summary = convert_dataset(
            src,
            dst,
            to=to,
            source_format=source_format,
            split=split,
            mots_formats=tuple(p.strip() for p in mots.split(",") if p.strip()),
            cvat_shapes=cvat_shapes,
            force=force,
            progress=progress,
        )
    note = (
        f"; {summary.overlap_pixels} overlapping pixel(s) given to the first-listed track"
        if summary.overlap_pixels
        else ""
    )
    console.print(
        f"wrote {escape(str(summary.out))} ({summary.to}: {summary.videos} videos, {summary.tracks} tracks, "
        f"{summary.frames_copied} frames copied{note})"
    )
