"""`vistr render` as one call: find the video and frame mapping for a results file, then render.

A results file written by ``vistr segment`` has a ``meta.json`` beside it naming its ``source``,
``fps`` and the true source index of every results frame (``frame_indices``; ``--start`` and
``--stride`` subsample). :func:`run_render` uses it unless ``--video`` says otherwise, or renders
ground truth (``--gt``), alone or beside the results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ResultsError, VideoError
from ..progress import ProgressCallback, no_progress
from .draw import OverlayStyle
from .overlay import RenderSummary, render_ground_truth, render_overlay


@dataclass(frozen=True)
class RenderRequest:
    """Everything ``vistr render`` was asked for (see the CLI help for each field)."""

    output: Path
    results: Path | None = None  # a results JSON, or a `vistr segment` output folder holding one
    video: Path | None = None
    gt: Path | None = None
    video_id: int | None = None
    frames_root: Path | None = None
    style: OverlayStyle = field(default_factory=OverlayStyle)
    start: int | None = None
    end: int | None = None
    fps: float | None = None
    force: bool = False
    review: Path | None = None  # a review.json: flagged tracks get a marker and their reason


def read_meta(results: Path) -> dict[str, Any] | None:
    """The ``meta.json`` beside ``results``, or None if there is none."""
    path = results.with_name("meta.json")
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ResultsError(f"{path} is not valid JSON; pass --video SRC to render without it") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{path} is not a vistr meta.json object; pass --video SRC to render without it")
    return meta


def _source(request: RenderRequest, meta: dict[str, Any] | None) -> Path:
    if request.video is not None:
        if not request.video.exists():
            raise VideoError(f"--video {request.video} does not exist; check the path")
        return request.video
    if meta is None or not meta.get("source"):
        raise ResultsError(
            f"no meta.json beside {request.results} to name its video; pass --video SRC "
            "(the video file or frame folder the results were made from)"
        )
    source = Path(meta["source"])
    if not source.exists():
        raise VideoError(
            f"{source} (the source named in meta.json) does not exist; pass --video SRC where it is now"
        )
    return source


def _output_fps(request: RenderRequest, meta: dict[str, Any] | None) -> float | None:
    if request.fps is not None or meta is None or not meta.get("fps"):
        return request.fps
    indices = meta.get("frame_indices") or []
    steps = {b - a for a, b in zip(indices, indices[1:], strict=False)}
    stride = steps.pop() if len(steps) == 1 else 1
    return float(meta["fps"]) / stride


def run_render(request: RenderRequest, progress: ProgressCallback = no_progress) -> RenderSummary:
    """Render what ``request`` asks for; raises a :class:`~vistr_core.errors.VistrError` on any problem
    before anything is written."""
    if request.gt is not None:
        if request.review is not None:
            raise ConfigError("--review marks predicted tracks; it is not used with --gt")
        if request.video is not None:
            raise ConfigError("--video is not used with --gt: ground-truth frames come from --frames-root")
        return render_ground_truth(
            request.gt,
            request.output,
            video_id=request.video_id,
            frames_root=request.frames_root,
            results=request.results,
            style=request.style,
            progress=progress,
            force=request.force,
            start=request.start,
            end=request.end,
            fps=request.fps,
        )
    if request.results is None:
        raise ConfigError("nothing to render; pass a RESULTS file, or --gt GT.json for ground truth")
    if request.results.is_dir():  # a `vistr segment` output folder
        request = replace(request, results=request.results / "results.json")
    if not request.results.is_file():
        raise ResultsError(
            f"results file {request.results} does not exist; pass the results.json written by vistr segment"
        )
    meta = read_meta(request.results)
    return render_overlay(
        request.results,
        _source(request, meta),
        request.output,
        style=request.style,
        categories=(meta or {}).get("categories"),
        progress=progress,
        force=request.force,
        video_id=request.video_id,
        frame_indices=(meta or {}).get("frame_indices"),
        start=request.start,
        end=request.end,
        fps=_output_fps(request, meta),
        review=_review_marks(request.review),
    )


def _review_marks(path: Path | None) -> dict[int, str] | None:
    """Track id → its two most severe review reasons (``fragment+low_score``)."""
    if path is None:
        return None
    from ..review import load_review

    items = load_review(path)
    return {tid: "+".join(dict.fromkeys(i["reason"] for i in rows[:2])) for tid, rows in items.items()}
