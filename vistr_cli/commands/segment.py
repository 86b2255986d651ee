"""`vistr segment`: videos, frame folders, folders of videos or globs → one output folder per video."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vistr_cli.console import print_table, stdout_console
from vistr_cli.errors import fail, reports_errors, stderr
from vistr_cli.options import (
    AmpOpt,
    CheckpointOpt,
    ColourWeightOpt,
    CoveragePowerOpt,
    DedupOpt,
    DeviceOpt,
    ForceOpt,
    LinkIouOpt,
    MergeColourOpt,
    MergeOpt,
    PrecisionOpt,
    RelinkColourOpt,
    SlotBonusOpt,
    ThreadsOpt,
    precision_choice,
)
from vistr_cli.progress import RichProgress
from vistr_core.config import LOW_SCORE, InferConfig
from vistr_core.errors import CHECKPOINT_HINT, ConfigError
from vistr_core.progress import no_progress

if TYPE_CHECKING:
    from vistr_core.inference.segment import SegmentSummary, VideoStatus

EXIT_USAGE = 2


@reports_errors
def segment(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Video files, frame folders, folders to search (recursively) or quoted globs."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; each video gets OUT/<name>/.")],
    checkpoint: CheckpointOpt = None,
    num_frames: Annotated[
        int | None,
        typer.Option(help="T for an official checkpoint, a divisor of its queries (default 36)."),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    amp: AmpOpt = None,
    threads: ThreadsOpt = None,
    overlap: Annotated[
        int | None,
        typer.Option(help="Frames shared by consecutive windows (default T // 4: 9 for the paper's T = 36)."),
    ] = None,
    score_thr: Annotated[
        float,
        typer.Option(
            help=f"Leave out tracks whose mean score is lower (default 0: keep all, as scoring needs; "
            f"tracks below {LOW_SCORE} are counted as low-score and `vistr render` hides them)."
        ),
    ] = 0.0,
    mask_thr: Annotated[float, typer.Option(help="Mask probability threshold.")] = 0.5,
    max_tracks: Annotated[
        int | None, typer.Option(help="Keep at most this many tracks (best scores).")
    ] = None,
    min_track_len: Annotated[int, typer.Option(help="Drop tracks with fewer frames with a mask.")] = 1,
    link_iou: LinkIouOpt = InferConfig.link_iou,
    slot_bonus: SlotBonusOpt = InferConfig.slot_bonus,
    max_gap: Annotated[
        int | None,
        typer.Option(
            help="Resume a track lost at most this many frames ago (default: max(T, 24); 0 = never)."
        ),
    ] = None,
    resume_iou: Annotated[
        float,
        typer.Option(
            help="Smallest generalized box IoU (-1..1; below 0 for boxes apart) between a lost track's last "
            "mask and a new one that resumes it."
        ),
    ] = InferConfig.resume_iou,
    coverage_power: CoveragePowerOpt = InferConfig.coverage_power,
    dedup_iou: DedupOpt = None,
    merge_iou: MergeOpt = None,
    merge_colour: MergeColourOpt = InferConfig.merge_colour,
    colour_weight: ColourWeightOpt = InferConfig.colour_weight,
    relink_colour: RelinkColourOpt = InferConfig.relink_colour,
    window_batch: Annotated[
        int, typer.Option(help="Windows per forward pass (more = faster, more memory).")
    ] = 1,
    start: Annotated[int, typer.Option(help="First frame to process (0-based).")] = 0,
    end: Annotated[int | None, typer.Option(help="Stop before this frame.")] = None,
    stride: Annotated[int, typer.Option(help="Process every N-th frame.")] = 1,
    png: Annotated[
        bool, typer.Option("--png", help="Also write masks/NNNNN.png (indexed, pixel = track id).")
    ] = False,
    mots: Annotated[
        bool, typer.Option("--mots", help="Also write tracks.mots.txt (MOTS text format).")
    ] = False,
    render: Annotated[bool, typer.Option("--render", help="Also write overlay.mp4.")] = False,
    cvat: Annotated[
        bool,
        typer.Option(
            "--cvat",
            help="Also write annotations.xml (CVAT for video 1.1; needs_review from `vistr review`).",
        ),
    ] = False,
    video_id: Annotated[
        int | None,
        typer.Option(
            help="video_id written in results.json (default: a frame folder of a YouTube-VIS dataset "
            "gets its id there, anything else 1)."
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Search sub-folders.")] = True,
    force: ForceOpt = False,
) -> None:
    """Segment and track every object instance in videos.

    Each video gets OUT/<name>/ with results.json (YouTube-VIS results with track ids) and meta.json; finished videos are skipped on a rerun unless --force.

    Shard a batch over processes or GPUs: torchrun --nproc_per_node N -m vistr_cli segment DIR -o OUT
    """
    if checkpoint is None:
        raise fail(f"no --checkpoint given; {CHECKPOINT_HINT}", code=EXIT_USAGE)
    from vistr_core.engine.threads import thread_setting
    from vistr_core.inference.segment import FrameRange, OutputOptions, segment_videos

    try:  # option values are usage errors, reported before any video is opened
        infer = InferConfig(
            overlap=overlap,
            score_thr=score_thr,
            mask_thr=mask_thr,
            max_tracks=max_tracks,
            min_track_len=min_track_len,
            window_batch=window_batch,
            precision=precision_choice(precision, amp),
            link_iou=link_iou,
            slot_bonus=slot_bonus,
            max_gap=max_gap,
            resume_iou=resume_iou,
            coverage_power=coverage_power,
            dedup_iou=dedup_iou,
            merge_iou=merge_iou,
            merge_colour=merge_colour,
            colour_weight=colour_weight,
            relink_colour=relink_colour,
        )
        frames = FrameRange(start, end, stride)
        cpu_threads = thread_setting(threads)
    except ConfigError as err:
        raise fail(str(err), code=EXIT_USAGE) from None
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = _rank_device(device, world_size)
    console = stderr
    tag = f"[rank {rank}] " if world_size > 1 else ""

    def report(status: VideoStatus) -> None:
        if status.status == "failed":
            console.print(f"{tag}[bold red]failed:[/] {escape(status.message)}")
        elif status.changed:
            console.print(f"{tag}[yellow]skipped:[/] {escape(status.message)}")

    display = RichProgress(console) if rank == 0 else contextlib.nullcontext(no_progress)
    with display as progress:
        summary = segment_videos(
            inputs,
            out,
            checkpoint=checkpoint,
            num_frames=num_frames,
            infer=infer,
            device=device,
            outputs=OutputOptions(png=png, mots=mots, render=render, cvat=cvat),
            frames=frames,
            video_id=video_id,
            force=force,
            recursive=recursive,
            rank=rank,
            world_size=world_size,
            progress=progress,
            on_video=report,
            threads=cpu_threads,
        )
    _print_summary(summary, out, tag)
    if not summary.ok:
        raise typer.Exit(1)


def _rank_device(device: str, world_size: int) -> str:
    """Under torchrun each rank takes its own GPU: auto/cuda → cuda:LOCAL_RANK."""
    import torch

    if world_size > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def _print_summary(summary: SegmentSummary, out: Path, tag: str) -> None:
    table = Table()
    for column, justify in (
        ("video", "left"),
        ("frames", "right"),
        ("tracks", "right"),
        (f"< {LOW_SCORE}", "right"),
        ("fps", "right"),
        ("status", "left"),
    ):
        table.add_column(column, justify=justify)
    colors = {"done": "green", "skipped": "yellow", "failed": "red"}
    for v in summary.videos:
        done = v.status == "done"
        fps, frames = (f"{v.fps:.1f}", str(v.frames)) if done else ("-", "-")
        tracks, low = (str(v.tracks), str(v.low_score)) if done else ("-", "-")
        table.add_row(escape(v.name), frames, tracks, low, fps, f"[{colors[v.status]}]{v.status}[/]")
    print_table(stdout_console(), f"{tag}vistr segment → {out}", table)
    _print_notes(summary, tag)


def _print_notes(summary: SegmentSummary, tag: str) -> None:
    if summary.precision is not None:
        stderr.print(
            f"{tag}precision {summary.precision.name} ({escape(summary.precision.reason)})", soft_wrap=True
        )
    low = sum(v.low_score for v in summary.videos)
    if low:
        stderr.print(
            f"{tag}kept {low} low-score track(s) (mean score < {LOW_SCORE}) in results.json, as scoring needs; "
            f"vistr render hides them, --score-thr {LOW_SCORE} leaves them out"
        )
    skipped = sum(v.status == "skipped" for v in summary.videos)
    if skipped:
        stderr.print(f"{tag}skipped {skipped} finished video(s); --force redoes them")
    if summary.failed:
        stderr.print(f"{tag}[bold red]{len(summary.failed)} of {len(summary.videos)} video(s) failed[/]")
