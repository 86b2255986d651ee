"""A segment output as CVAT for video 1.1, ``needs_review`` set on the tracks review flags.

One writer for ``vistr segment --cvat`` and ``vistr review --cvat`` (the format itself is
:mod:`vistr_core.data.formats.cvat_video`, shared with ``vistr data convert --to cvat``).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..atomic import refuse_overwrite
from ..data.formats import cvat_video
from ..errors import ResultsError
from .report import ReviewReport, load_segment_output


def write_results_cvat(
    results: list[dict[str, Any]], meta: dict[str, Any], path: Path, *, name: str, flagged: Collection[int]
) -> int:
    """Every track of one video's ``results`` (+ its ``meta``) to ``path``; the number of tracks."""
    return cvat_video.write_video(
        path,
        name=name,
        size=(int(meta["height"]), int(meta["width"])),
        length=int(meta["frame_count"]),
        categories=[{"id": int(k), "name": v} for k, v in meta["categories"].items()],
        tracks=[
            cvat_video.CvatTrack(
                track_id=int(r["track_id"]),
                category_id=int(r["category_id"]),
                segmentations=r["segmentations"],
                score=float(r["score"]),
                needs_review=int(r["track_id"]) in flagged,
            )
            for r in results
        ],
    )


def write_review_cvat(output: str | Path, report: ReviewReport, path: Path, *, force: bool = False) -> int:
    """The segment output at ``output`` (reviewed as ``report``) as CVAT XML at ``path``."""
    refuse_overwrite(path, force=force, what="CVAT file")
    results, meta, results_path = load_segment_output(output)
    if meta is None:
        raise ResultsError(f"no meta.json beside {results_path}: CVAT needs the video's size and labels")
    return write_results_cvat(results, meta, path, name=results_path.parent.name, flagged=report.flagged)
