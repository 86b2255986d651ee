"""`vistr review`: rank a segment output's tracks for human checking; review.json, review.csv, a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vistr_cli.errors import reports_errors
from vistr_cli.options import ForceOpt
from vistr_core.review.config import ReviewConfig

if TYPE_CHECKING:
    from vistr_core.review import ReviewReport

_DEFAULTS = ReviewConfig()


def _opt(flag: str, help_text: str) -> typer.models.OptionInfo:
    return typer.Option(flag, help=help_text, rich_help_panel="Thresholds")


@reports_errors
def review(
    output: Annotated[
        Path, typer.Argument(metavar="OUT", help="A `vistr segment` output folder (or its results.json).")
    ],
    top: Annotated[
        int, typer.Option("--top", min=0, help="Rows of the table (the files list every item).")
    ] = 15,
    cvat: Annotated[
        bool,
        typer.Option("--cvat", help="Also write annotations.xml (CVAT for video 1.1) with needs_review set."),
    ] = False,
    low_score: Annotated[
        float, _opt("--low-score", "Flag tracks whose mean score is below this.")
    ] = _DEFAULTS.low_score,
    score_drop: Annotated[
        float, _opt("--score-drop", "Flag a fall of the per-frame score this large.")
    ] = _DEFAULTS.score_drop,
    short_track: Annotated[
        int, _opt("--short-track", "Flag tracks with a mask in fewer frames.")
    ] = _DEFAULTS.short_track,
    min_gap: Annotated[
        int, _opt("--min-gap", "Flag absences inside a track at least this long.")
    ] = _DEFAULTS.min_gap,
    flicker_iou: Annotated[
        float, _opt("--flicker-iou", "Flag consecutive masks (centroids aligned) with IoU below this.")
    ] = _DEFAULTS.flicker_iou,
    area_jitter: Annotated[
        float, _opt("--area-jitter", "Flag relative area changes between frames above this.")
    ] = _DEFAULTS.area_jitter,
    link_affinity: Annotated[
        float, _opt("--link-affinity", "Flag window links decided on an affinity below this.")
    ] = _DEFAULTS.link_affinity,
    class_share: Annotated[
        float, _opt("--class-share", "Flag class changes once this share of frames votes for another class.")
    ] = _DEFAULTS.class_share,
    duplicate_iou: Annotated[
        float, _opt("--duplicate-iou", "Flag tracks overlapping a better one above this video IoU.")
    ] = _DEFAULTS.duplicate_iou,
    fragment_iou: Annotated[
        float, _opt("--fragment-iou", "Flag a track starting where another ended, masks above this IoU.")
    ] = _DEFAULTS.fragment_iou,
    fragment_gap: Annotated[
        int, _opt("--fragment-gap", "... at most this many frames later.")
    ] = _DEFAULTS.fragment_gap,
    tiny_area: Annotated[
        float, _opt("--tiny-area", "Flag masks smaller than this fraction of the frame.")
    ] = _DEFAULTS.tiny_area,
    border_share: Annotated[
        float, _opt("--border-share", "Flag tracks touching the border in more than this share of frames.")
    ] = _DEFAULTS.border_share,
    needs_review: Annotated[
        float, _opt("--needs-review", "Tracks at least this severe count as flagged.")
    ] = _DEFAULTS.needs_review,
    force: ForceOpt = False,
) -> None:
    """Rank what a person should check in a segment output: false tracks, broken tracks, identity
    switches, flicker, class changes, duplicates. Writes review.json and review.csv beside results.json.

    [bold]Examples[/]

      vistr review out/clip/
      vistr review out/clip/ --cvat --low-score 0.5 --top 30
    """
    from vistr_core.review import review_output
    from vistr_core.review.cvat import write_review_cvat

    config = ReviewConfig(
        low_score=low_score,
        score_drop=score_drop,
        short_track=short_track,
        min_gap=min_gap,
        flicker_iou=flicker_iou,
        area_jitter=area_jitter,
        link_affinity=link_affinity,
        class_share=class_share,
        duplicate_iou=duplicate_iou,
        fragment_iou=fragment_iou,
        fragment_gap=fragment_gap,
        tiny_area=tiny_area,
        border_share=border_share,
        needs_review=needs_review,
    )
    report, folder = review_output(output, config=config, force=force)
    written = ["review.json", "review.csv"]
    if cvat:
        write_review_cvat(output, report, folder / "annotations.xml", force=force)
        written.append("annotations.xml")
    _print(report, top)
    Console(highlight=False).print(
        f"wrote {', '.join(escape(str(folder / n)) for n in written)}: "
        f"{len(report.flagged)} of {report.num_tracks} tracks flagged, {len(report.items)} items"
    )


def _print(report: ReviewReport, top: int) -> None:
    if not report.items or top == 0:
        return
    table = Table(title=f"review: {escape(report.video)} (most severe first)", title_justify="left")
    for name, justify in (("#", "right"), ("track", "right"), ("reason", "left"), ("severity", "right")):
        table.add_column(name, justify=justify)
    table.add_column("frames")
    table.add_column("detail")
    rows = report.to_json()["items"][:top]
    for rank, item in enumerate(rows, start=1):
        frames = f"{item['first_frame']}-{item['last_frame']}" if item["frames"] else ""
        table.add_row(
            str(rank),
            str(item["track_id"]),
            item["reason"],
            f"{item['severity']:.2f}",
            frames,
            escape(item["detail"]),
        )
    Console(highlight=False).print(table)
