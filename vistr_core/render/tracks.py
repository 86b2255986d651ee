"""What an overlay draws: tracks read from a YouTube-VIS results list or ground-truth file.

A :class:`Track` is one object through the video: its id (the colour), class, score and one
compressed RLE (or None where absent) per frame. Results entries are ``{"video_id",
"category_id", "score", "segmentations": [RLE | null per frame], "track_id"?}``; without
``track_id`` the entry's position + 1 is used. Ground-truth annotations get ids 1..n in file order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..categories import CategoryMap
from ..errors import ResultsError
from .draw import format_label


@dataclass(frozen=True)
class Track:
    """One object through a video.

    Attributes:
        track_id: stable id >= 1 (picks the colour).
        category_id: the dataset's category id.
        score: confidence, or None for ground truth.
        rles: per frame, ``{"size": [H, W], "counts": bytes}`` or None where the object is absent.
    """

    track_id: int
    category_id: int
    score: float | None
    rles: tuple[dict[str, Any] | None, ...]

    def label(self, categories: Mapping[int, str]) -> str:
        name = categories.get(self.category_id, f"class {self.category_id}")
        return format_label(name, self.score, self.track_id)


def category_names(categories: Mapping[int, str] | Mapping[str, str] | CategoryMap | None) -> dict[int, str]:
    """``{category_id: name}`` from a dict (JSON string keys accepted), a CategoryMap, or None."""
    if categories is None:
        return {}
    if isinstance(categories, CategoryMap):
        return dict(categories.id_to_name())
    return {int(k): str(v) for k, v in categories.items()}


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A results JSON file as a list; :class:`ResultsError` if missing or malformed."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ResultsError(
            f"results file {p} does not exist; pass the results.json written by vistr segment"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ResultsError(f"{p} is not valid JSON{where}; pass a YouTube-VIS results file") from None
    if not isinstance(data, list):
        raise ResultsError(f"{p} is not a YouTube-VIS results list (a JSON list of per-track entries)")
    return data


def _rle(segm: Any, where: str) -> dict[str, Any] | None:
    if segm is None:
        return None
    if isinstance(segm, dict) and "size" in segm and isinstance(segm.get("counts"), str | bytes):
        counts = segm["counts"].encode("ascii") if isinstance(segm["counts"], str) else segm["counts"]
        return {"size": [int(s) for s in segm["size"]], "counts": counts}
    if isinstance(segm, dict) and "size" in segm and isinstance(segm.get("counts"), list):
        from ..ops.masks import to_compressed_rle

        return dict(to_compressed_rle(segm, *segm["size"]))
    raise ResultsError(
        f"{where}: a segmentation is not an RLE ({{'size', 'counts'}}) or null; re-export the results"
    )


def tracks_from_results(
    results: Sequence[Mapping[str, Any]], *, video_id: int | None = None, source: str = "results"
) -> tuple[list[Track], int | None]:
    """The tracks of one video in a results list, and that video's id.

    ``video_id`` None means "the only video in the list" (an error if there are several).
    """
    ids = sorted({int(e["video_id"]) for e in results if isinstance(e, Mapping) and "video_id" in e})
    if video_id is None and len(ids) > 1:
        shown = ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")
        raise ResultsError(f"{source} holds {len(ids)} videos ({shown}); pass --video-id to choose one")
    if video_id is not None and results and video_id not in ids:
        raise ResultsError(
            f"{source} has no entries for video {video_id}; pass --video-id with one of its videos: {', '.join(map(str, ids[:10]))}"
        )
    chosen = video_id if video_id is not None else (ids[0] if ids else None)
    tracks: list[Track] = []
    first_entry: dict[int, int] = {}  # track id -> the entry that has it
    for position, entry in enumerate(results):
        where = f"{source} entry {position}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("segmentations"), list):
            raise ResultsError(f"{where} has no 'segmentations' list; pass a YouTube-VIS results file")
        if chosen is not None and int(entry.get("video_id", chosen)) != chosen:
            continue
        try:
            track_id = int(entry.get("track_id", position + 1))
            category_id, score = int(entry["category_id"]), float(entry["score"])
        except (KeyError, TypeError, ValueError) as err:
            raise ResultsError(f"{where} lacks a valid {err}; entries need category_id and score") from None
        _check_track_id(track_id, position, first_entry, source, chosen)
        rles = tuple(_rle(s, where) for s in entry["segmentations"])
        tracks.append(Track(track_id, category_id, score, rles))
    lengths = {len(t.rles) for t in tracks}
    if len(lengths) > 1:
        raise ResultsError(
            f"{source}: tracks of video {chosen} have different frame counts {sorted(lengths)}; "
            "every entry needs one segmentation (or null) per frame"
        )
    return tracks, chosen


def _check_track_id(
    track_id: int, position: int, first_entry: dict[int, int], source: str, video: int | None
) -> None:
    """Track ids pick colours and legend rows: each must be >= 1 and name one track of the video."""
    if track_id < 1:
        raise ResultsError(f"{source} entry {position} has track_id {track_id}; track ids start at 1")
    if track_id in first_entry:
        raise ResultsError(
            f"{source}: track_id {track_id} of video {video} is on entries {first_entry[track_id]} and {position} "
            "(a missing track_id counts as the entry's position + 1); give each track its own id"
        )
    first_entry[track_id] = position


def mask_size(tracks: Sequence[Track], source: str) -> tuple[int, int] | None:
    """The ``(H, W)`` every RLE was encoded at; None if no mask is present at all."""
    sizes = {tuple(r["size"]) for t in tracks for r in t.rles if r is not None}
    if len(sizes) > 1:
        raise ResultsError(
            f"{source} mixes mask sizes {sorted(sizes)}; all masks of a video must share the video's size"
        )
    return tuple(sizes.pop()) if sizes else None  # type: ignore[return-value]


def num_frames(tracks: Sequence[Track]) -> int | None:
    return len(tracks[0].rles) if tracks else None


@dataclass(frozen=True)
class GroundTruthVideo:
    """One video of a YouTube-VIS annotation file: its frames, size, tracks and category names."""

    video_id: int
    frame_files: tuple[Path, ...]
    size: tuple[int, int]
    tracks: list[Track]
    categories: dict[int, str]


def ground_truth_video(
    annotation_file: str | os.PathLike[str],
    *,
    video_id: int | None = None,
    frames_root: str | os.PathLike[str] | None = None,
) -> GroundTruthVideo:
    """Read one video's annotations; frames are ``frames_root / file_names[t]`` (root guessed beside
    the file when None, as ``vistr eval`` does). Track ids are 1..n in file order; crowd regions included."""
    from ..data.ytvis import load_ytvis

    index = load_ytvis(annotation_file=annotation_file, image_root=frames_root, check_files=False)
    ids = [v.id for v in index.videos]
    if video_id is None:
        if len(ids) != 1:
            shown = ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")
            raise ResultsError(
                f"{annotation_file} holds {len(ids)} videos ({shown}); pass --video-id to choose one"
            )
        video_id = ids[0]
    if video_id not in ids:
        raise ResultsError(
            f"{annotation_file} has no video {video_id}; pass --video-id with one of its videos: {', '.join(map(str, ids[:10]))}"
        )
    video = index.video(video_id)
    size = [video.height, video.width]
    tracks = [
        Track(
            k + 1,
            ann.category_id,
            None,
            tuple(None if c is None else {"size": size, "counts": c} for c in ann.rles),
        )
        for k, ann in enumerate(index.tracks(video_id))
    ]
    categories = {int(c["id"]): str(c.get("name", c["id"])) for c in index.categories}
    files = tuple(index.frame_path(video, t) for t in range(video.length))
    return GroundTruthVideo(video_id, files, (video.height, video.width), tracks, categories)
