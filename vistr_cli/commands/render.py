"""`vistr render`: colored overlays of results (or ground truth) on their video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from vistr_cli.console import stdout_console
from vistr_cli.errors import reports_errors
from vistr_cli.options import ForceOpt
from vistr_cli.progress import RichProgress
from vistr_core.config import LOW_SCORE
from vistr_core.errors import ConfigError

if TYPE_CHECKING:
    from vistr_core.render import RenderSummary

_KIND = {"video": "video", "gif": "GIF", "frames": "PNG frames"}


@reports_errors
def render(
    results: Annotated[
        Path | None,
        typer.Argument(
            metavar="RESULTS",
            help="results.json from `vistr segment` (or its output folder, or any YouTube-VIS results list).",
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="overlay.mp4 (H.264), overlay.gif, or a folder (PNG frames NNNNN.png)."
        ),
    ] = ...,  # type: ignore[assignment]
    video: Annotated[
        Path | None,
        typer.Option(
            "--video", help="Source video file or frame folder (default: the source named in meta.json)."
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Mask opacity, 0-1.")] = 0.5,
    contours: Annotated[bool, typer.Option("--contours/--no-contours", help="Outline each mask.")] = True,
    boxes: Annotated[bool, typer.Option("--boxes/--no-boxes", help="Draw bounding boxes.")] = False,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Label each instance: class, score, #track.")
    ] = True,
    score_thr: Annotated[
        float,
        typer.Option(
            "--score-thr",
            min=0.0,
            max=1.0,
            help="Hide tracks scoring below this (default: the low-score line, as in vistr segment's summary).",
        ),
    ] = LOW_SCORE,
    legend: Annotated[
        bool,
        typer.Option(
            "--legend/--no-legend", help="Add a panel listing every track (colour, id, class, score)."
        ),
    ] = False,
    gt: Annotated[
        Path | None,
        typer.Option(
            "--gt",
            help="YouTube-VIS annotation JSON: draw its ground truth (left of RESULTS if given).",
            dir_okay=False,
        ),
    ] = None,
    video_id: Annotated[
        int | None, typer.Option("--video-id", help="Which video of a multi-video --gt or results file.")
    ] = None,
    frames_root: Annotated[
        Path | None,
        typer.Option(
            "--frames-root", help="Folder holding --gt's file_names (default: guessed beside --gt)."
        ),
    ] = None,
    start: Annotated[int | None, typer.Option("--start", min=0, help="First source frame to draw.")] = None,
    end: Annotated[int | None, typer.Option("--end", min=1, help="Stop before this source frame.")] = None,
    fps: Annotated[
        float | None,
        typer.Option("--fps", min=0.01, help="Output frame rate (default: the source's; 6 for --gt frames)."),
    ] = None,
    review: Annotated[
        Path | None,
        typer.Option(
            "--review",
            help="review.json from `vistr review`: flagged tracks get '! reason' in their label (shown at any score).",
            dir_okay=False,
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Draw colored masks, contours, labels and track ids over a video, one stable colour per track.

    [bold]Examples[/]

      vistr render out/clip/results.json -o clip_overlay.mp4
      vistr render results.json --video clip.mp4 -o frames/ --boxes --legend
      vistr render --gt valid.json --video-id 3 --frames-root valid/JPEGImages -o gt.mp4
      vistr render results.json --gt valid.json --video-id 3 -o side_by_side.mp4
      vistr render out/clip/ --review out/clip/review.json -o review.mp4
    """
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--end {end} must be greater than --start {start}")
    from vistr_core.render import OverlayStyle, RenderRequest, run_render

    style = OverlayStyle(
        alpha=alpha, contours=contours, boxes=boxes, labels=labels, legend=legend, score_thr=score_thr
    )
    request = RenderRequest(
        output=output,
        results=results,
        video=video,
        gt=gt,
        video_id=video_id,
        frames_root=frames_root,
        style=style,
        start=start,
        end=end,
        fps=fps,
        force=force,
        review=review,
    )
    with RichProgress(transient=True) as progress:
        summary = run_render(request, progress=progress)
    _report(summary)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _report(summary: RenderSummary) -> None:
    console = stdout_console()
    what = _KIND[summary.kind] + (f", {summary.codec}" if summary.kind == "video" else "")
    hidden = f" ({summary.hidden} below --score-thr hidden)" if summary.hidden else ""
    console.print(
        f"[green]wrote[/] {escape(str(summary.output))} ({what}): {summary.frames} frames, "
        f"{summary.width}x{summary.height} @ {summary.fps:.3g} fps, {_plural(summary.tracks, 'track')}{hidden}, "
        f"{summary.seconds:.1f} s ({summary.frames / max(summary.seconds, 1e-9):.0f} frames/s)"
    )
