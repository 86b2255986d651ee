"""Scoring ``vistr segment`` outputs: results matched to their ground-truth video by their frames.

``vistr segment`` writes ``OUT/<name>/results.json`` with a ``meta.json`` beside it that names the
source and its frames. A frame folder of a YouTube-VIS dataset holds exactly the frames that the
ground truth lists for one of its videos (``file_names``, relative to the image root), so a
segment output's frames say which video its results are for, whatever ``video_id`` they carry:

- frames that are the ground truth's video v, results saying v: scored as they are;
- results carrying ``vistr segment``'s default id (``meta.json`` ``video_id_from`` ``"default"``,
  or outputs written before it was recorded): scored as video v, with a note;
- results whose id was chosen (``--video-id``, or a dataset's own id) but is not v: refused, since
  scoring them against another video silently gives AP 0.

Outputs whose frames match no ground-truth video (a video file, frames copied elsewhere) keep
their ``video_id``. Accepted inputs: a ``results.json`` with its ``meta.json`` beside it, one
video's output folder, or a batch's output folder (every ``<name>/results.json`` in it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from vistr_core.errors import ResultsError

from .loading import GroundTruth, Video

DEFAULT_ID = "default"


@dataclass(frozen=True)
class SegmentOutput:
    """One video's ``results.json`` (the loaded list) and its ``meta.json`` (the loaded dict)."""

    path: Path
    results: list[Any]
    meta: Mapping[str, Any]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path}: cannot read it ({err}); check the file") from None
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"{path}:{err.lineno}:{err.colno}: malformed JSON ({err.msg}); re-run vistr segment with --force"
        ) from None


def _output(results_path: Path) -> SegmentOutput:
    meta = _read(results_path.parent / "meta.json")
    if not isinstance(meta, Mapping):
        raise ResultsError(
            f"{results_path.parent / 'meta.json'}: expected a JSON object; re-run vistr segment"
        )
    results = _read(results_path)
    if not isinstance(results, list):
        raise ResultsError(
            f"{results_path}: expected a JSON list of predictions [{{video_id, category_id, score, segmentations}}]"
        )
    return SegmentOutput(results_path, results, meta)


def find_segment_outputs(path: str | os.PathLike[str]) -> list[SegmentOutput] | None:
    """The segment outputs ``path`` names, or None when it is a plain results file (no meta.json)."""
    p = Path(path)
    if p.is_dir():
        if (p / "results.json").is_file():
            return [_output(p / "results.json")]
        folders = sorted(
            q for q in p.iterdir() if (q / "results.json").is_file() and (q / "meta.json").is_file()
        )
        if not folders:
            raise ResultsError(
                f"{p} is a folder without results.json or vistr segment outputs in it; "
                "pass a results file, a vistr segment output folder or its parent"
            )
        return [_output(q / "results.json") for q in folders]
    if p.is_file() and p.suffix.lower() == ".json" and (p.parent / "meta.json").is_file():
        return [_output(p)]
    return None


def _frame_paths(meta: Mapping[str, Any]) -> list[PurePath] | None:
    """The absolute paths of a frame-folder output's frames (None for a video file's output)."""
    source, names = meta.get("source"), meta.get("frame_names")
    if meta.get("kind") != "frames" or not isinstance(source, str) or not isinstance(names, list):
        return None
    return [PurePath(source, str(n)) for n in names]


def _fits(frames: Sequence[PurePath], video: Video) -> bool:
    """Whether every frame path ends with the ground truth's file name of that frame."""
    if len(frames) != len(video.file_names):
        return False
    for frame, name in zip(frames, video.file_names, strict=True):
        parts = PurePath(name).parts
        if frame.parts[-len(parts) :] != parts:
            return False
    return True


def video_of_frames(frames: Sequence[PurePath], gt: GroundTruth) -> Video | None:
    """The ground-truth video whose ``file_names`` are these frames, if any."""
    if not frames:
        return None
    first = frames[0].parts
    for video in gt.videos.values():
        if video.file_names:
            parts = PurePath(video.file_names[0]).parts
            if first[-len(parts) :] == parts and _fits(frames, video):
                return video
    return None


def _assign(output: SegmentOutput, gt: GroundTruth) -> tuple[list[Any], str | None]:
    """The output's results with the video id its frames say; and a note when it was changed."""
    frames = _frame_paths(output.meta)
    video = video_of_frames(frames, gt) if frames is not None else None
    if video is None:
        return output.results, None
    ids = {e.get("video_id") for e in output.results if isinstance(e, Mapping)}
    wrong = sorted(i for i in ids if i != video.id and isinstance(i, int))
    if not wrong:
        return output.results, None
    chosen = output.meta.get("video_id_from", DEFAULT_ID)
    if chosen != DEFAULT_ID:
        raise ResultsError(
            f"{output.path} says video_id {wrong[0]} but its frames ({output.meta.get('source')}) are video "
            f"{video.id} ({video.name}) of {gt.source}; re-run vistr segment with --video-id {video.id}, "
            "or score against the annotation file it was made from"
        )
    fixed = [{**e, "video_id": video.id} if isinstance(e, Mapping) else e for e in output.results]
    note = (
        f"{output.path}: scored as video {video.id} ({video.name}), whose frames it holds "
        f"(its video_id {wrong[0]} is vistr segment's default)"
    )
    return fixed, note


def segment_results(path: str | os.PathLike[str], gt: GroundTruth) -> tuple[list[Any], list[str]] | None:
    """The results of the segment output(s) at ``path``, each with the video id of its frames, and
    notes on the ids that were changed; None when ``path`` is a plain results file."""
    outputs = find_segment_outputs(path)
    if outputs is None:
        return None
    results: list[Any] = []
    notes: list[str] = []
    for output in outputs:
        entries, note = _assign(output, gt)
        results.extend(entries)
        if note is not None:
            notes.append(note)
    return results, notes
