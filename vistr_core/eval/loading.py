"""Reading and validating a YouTube-VIS ground truth and a results list for scoring.

Both become :class:`Track` records: one category, one compressed RLE (or ``None``) per frame, the
per-frame mask areas and the track's ``avg_area``. Everything the official API would silently
mis-score (unknown video ids, wrong frame counts, masks at the wrong resolution) or crash on is
refused here with a one-line :class:`DatasetError` / :class:`ResultsError` naming the file, the
video and the frame.

Truthiness follows the official API: a frame is *present* when its segmentation is truthy, so
``null``, ``[]`` and ``{}`` are absent, while an RLE of an all-zero mask is present with area 0.
Both contribute nothing to a video IoU, so they score identically.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from vistr_core.errors import DatasetError, ResultsError

JsonSource = str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any]


@dataclass(frozen=True)
class Video:
    """A ground-truth video: id, original frame size and number of listed frames."""

    id: int
    height: int
    width: int
    length: int
    name: str
    file_names: tuple[str, ...] = ()  # as listed (relative to the image root); () if not listed


@dataclass
class Track:
    """One ground-truth annotation or one prediction over a whole video.

    Attributes:
        id: the annotation id (ground truth) or 1-based position in the results list (predictions).
        frames: ``length`` compressed RLEs (``counts`` bytes) or None where absent.
        areas: ``int64 [length]`` mask pixel counts, 0 where absent.
        avg_area: mean of the truthy per-frame areas (ground truth: the JSON ``areas`` when given),
            0.0 when there are none — the value the area ranges test.
        score: prediction confidence (1.0 for ground truth).
        iscrowd: ground truth only; a crowd track is ignored and may match several predictions.
    """

    id: int
    video_id: int
    category_id: int
    frames: list[dict[str, Any] | None]
    areas: np.ndarray
    avg_area: float
    score: float = 1.0
    iscrowd: bool = False


@dataclass
class GroundTruth:
    """A parsed ground-truth file: videos and categories by id, annotations in file order."""

    source: str
    videos: dict[int, Video]
    categories: dict[int, str]
    tracks: list[Track]


def read_json(path: str | os.PathLike[str], error: type[Exception], what: str) -> Any:
    """Parse a JSON file (or the ``results.json`` inside a submission ``.zip``); malformed JSON
    becomes one line with file, line and column."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} {p} does not exist or is not a file; check the path")
    try:
        if p.suffix.lower() == ".zip":
            with zipfile.ZipFile(p) as archive:
                names = [n for n in archive.namelist() if n.endswith(".json")]
                if len(names) != 1:
                    raise error(f"{p}: expected exactly one .json file in the archive, found {len(names)}")
                text = archive.read(names[0]).decode("utf-8")
        else:
            text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as err:
        raise error(f"{p}: cannot read {what} ({err}); check the file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(
            f"{p}:{err.lineno}:{err.colno}: malformed JSON ({err.msg}); fix or regenerate the file"
        ) from None


def _as_int(value: Any, error: type[Exception], where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{where}: '{key}' must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise error(f"{where}: '{key}' must be an integer, got {value!r}")
    return int(value)


def _require(entry: Any, keys: Sequence[str], error: type[Exception], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise error(f"{where}: expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise error(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")


def _frame_rle(segm: Any, video: Video, error: type[Exception], where: str, *, polygons: bool) -> Any:
    """The compressed RLE of one truthy per-frame segmentation, checked against the video size."""
    h, w = video.height, video.width
    if type(segm) is dict and type(segm.get("counts")) is str and segm.get("size") == [h, w]:
        return {"size": [h, w], "counts": segm["counts"].encode("ascii")}  # the common case, fast
    try:
        if isinstance(segm, list):
            if not polygons:
                raise error(f"{where}: results must hold RLE masks, not polygons; encode masks as COCO RLE")
            # The official annToRLE: polygons rasterized at the video's size, then merged.
            return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        if not isinstance(segm, Mapping) or "counts" not in segm or "size" not in segm:
            raise error(
                f"{where}: expected an RLE {{'size': [h, w], 'counts': ...}} or null, got {segm!r:.60}"
            )
        size = segm["size"]
        if not (isinstance(size, list | tuple) and len(size) == 2):
            raise error(f"{where}: RLE 'size' must be [height, width], got {size!r}")
        if [int(size[0]), int(size[1])] != [h, w]:
            raise error(
                f"{where}: mask size {int(size[0])}x{int(size[1])} differs from the video's {h}x{w}; "
                "masks must be at the original video resolution"
            )
        counts = segm["counts"]
        if isinstance(counts, list):
            return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        if isinstance(counts, str):
            return {"size": [h, w], "counts": counts.encode("ascii")}
        if isinstance(counts, bytes):
            return {"size": [h, w], "counts": counts}
        raise error(f"{where}: RLE 'counts' must be a string or a list of run lengths")
    except (DatasetError, ResultsError):
        raise
    except Exception as err:  # pycocotools raises bare Exceptions / TypeErrors on bad input
        raise error(f"{where}: unreadable segmentation ({err}); re-encode the mask") from None


def _track_frames(
    segms: Any, video: Video, error: type[Exception], where: str, *, polygons: bool
) -> tuple[list[dict[str, Any] | None], np.ndarray]:
    """Per-frame RLEs and areas ``int64 [length]`` of one annotation / prediction."""
    if not isinstance(segms, list):
        raise error(f"{where}: 'segmentations' must be a list with one entry per frame")
    if len(segms) != video.length:
        raise error(
            f"{where}: 'segmentations' has {len(segms)} entries but video {video.id} has {video.length} "
            "frames; give one entry (mask or null) per frame"
        )
    frames: list[dict[str, Any] | None] = []
    for t, segm in enumerate(segms):
        frames.append(
            _frame_rle(segm, video, error, f"{where}, frame {t}", polygons=polygons) if segm else None
        )
    present = [t for t, rle in enumerate(frames) if rle is not None]
    areas = np.zeros(video.length, dtype=np.int64)
    if present:
        areas[present] = mask_utils.area([frames[t] for t in present])
        over = np.flatnonzero(areas > video.height * video.width)
        if over.size:
            raise error(f"{where}, frame {int(over[0])}: corrupt RLE (area larger than the frame)")
    return frames, areas


def _truthy_mean(values: Sequence[Any]) -> float:
    """Mean of the truthy values, 0 when there are none (the official ``avg_area``)."""
    kept = [v for v in values if v]
    return float(np.asarray(kept).mean()) if kept else 0.0


def _parse_video(entry: Any, index: int, source: str) -> Video:
    where = f"{source}: videos[{index}]"
    _require(entry, ("id", "height", "width"), DatasetError, where)
    vid = _as_int(entry["id"], DatasetError, where, "id")
    where = f"{source}: video {vid}"
    names = entry.get("file_names")
    length = entry.get("length")
    if length is None and names is None:
        raise DatasetError(f"{where}: needs 'length' or 'file_names' to know its number of frames")
    if names is not None and not isinstance(names, list):
        raise DatasetError(f"{where}: 'file_names' must be a list")
    n = _as_int(length, DatasetError, where, "length") if length is not None else len(names)
    if names is not None and len(names) != n:
        raise DatasetError(f"{where}: 'length' is {n} but 'file_names' lists {len(names)} frames")
    name = str(names[0]).split("/")[0] if names else str(vid)
    h = _as_int(entry["height"], DatasetError, where, "height")
    w = _as_int(entry["width"], DatasetError, where, "width")
    if h <= 0 or w <= 0 or n <= 0:
        raise DatasetError(f"{where}: height, width and length must be positive")
    files = tuple(str(f) for f in names) if names is not None else ()
    return Video(id=vid, height=h, width=w, length=n, name=name, file_names=files)


def _parse_annotation(
    entry: Any, index: int, source: str, videos: dict[int, Video], categories: dict[int, str]
) -> Track:
    where = f"{source}: annotations[{index}]"
    _require(entry, ("id", "video_id", "category_id", "segmentations"), DatasetError, where)
    ann_id = _as_int(entry["id"], DatasetError, where, "id")
    vid = _as_int(entry["video_id"], DatasetError, where, "video_id")
    cat = _as_int(entry["category_id"], DatasetError, where, "category_id")
    where = f"{source}: annotation {ann_id} (video {vid})"
    if vid not in videos:
        raise DatasetError(f"{where}: video id {vid} is not in 'videos'; fix the annotation's video_id")
    if cat not in categories:
        raise DatasetError(f"{where}: category id {cat} is not in 'categories'")
    video = videos[vid]
    frames, areas = _track_frames(entry["segmentations"], video, DatasetError, where, polygons=True)
    json_areas = entry.get("areas")
    if json_areas is None:
        avg_area = _truthy_mean(areas.tolist())  # our extension: derive from the masks
    else:
        if not isinstance(json_areas, list) or len(json_areas) != video.length:
            raise DatasetError(f"{where}: 'areas' must list one value (or null) per frame")
        if any(a is not None and (isinstance(a, bool) or not isinstance(a, int | float)) for a in json_areas):
            raise DatasetError(f"{where}: 'areas' entries must be numbers or null")
        avg_area = _truthy_mean(json_areas)
    return Track(
        id=ann_id,
        video_id=vid,
        category_id=cat,
        frames=frames,
        areas=areas,
        avg_area=avg_area,
        iscrowd=bool(entry.get("iscrowd", 0)),
    )


def load_ground_truth(gt: str | os.PathLike[str] | Mapping[str, Any]) -> GroundTruth:
    """Parse a YouTube-VIS ground truth (a path or the loaded dict) and validate it.

    Segmentations may be polygons, uncompressed or compressed RLE; ``iscrowd`` defaults to 0;
    ``areas`` is optional (then ``avg_area`` comes from the masks).
    """
    source = "ground truth"
    if not isinstance(gt, Mapping):
        source = str(gt)
        gt = read_json(gt, DatasetError, "ground truth")
    if _looks_like_results(gt):
        raise DatasetError(
            f"{source} is a results list, not a ground truth; were --gt and --results swapped? "
            "pass the annotation file (videos, categories, annotations) as --gt"
        )
    if not isinstance(gt, Mapping):
        raise DatasetError(f"{source}: expected a JSON object with videos/categories/annotations")
    _require(gt, ("videos", "categories"), DatasetError, source)
    if not gt.get("annotations"):
        raise DatasetError(
            f"{source}: has no annotations (a valid/test split without ground truth?); "
            "score against a split with annotations"
        )
    videos: dict[int, Video] = {}
    for i, entry in enumerate(gt["videos"]):
        video = _parse_video(entry, i, source)
        if video.id in videos:
            raise DatasetError(f"{source}: video id {video.id} appears twice in 'videos'")
        videos[video.id] = video
    categories: dict[int, str] = {}
    for i, entry in enumerate(gt["categories"]):
        _require(entry, ("id",), DatasetError, f"{source}: categories[{i}]")
        cid = _as_int(entry["id"], DatasetError, f"{source}: categories[{i}]", "id")
        categories[cid] = str(entry.get("name", cid))
    tracks = [_parse_annotation(e, i, source, videos, categories) for i, e in enumerate(gt["annotations"])]
    seen: set[int] = set()
    for track in tracks:
        if track.id in seen:
            raise DatasetError(f"{source}: annotation id {track.id} appears twice; ids must be unique")
        seen.add(track.id)
    return GroundTruth(source=source, videos=videos, categories=categories, tracks=tracks)


def _looks_like_results(data: Any) -> bool:
    """A JSON list whose first entry has the keys of a prediction."""
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], Mapping)
        and {"video_id", "score", "segmentations"} <= data[0].keys()
    )


def load_results(
    results: str | os.PathLike[str] | Sequence[Any], gt: GroundTruth, *, source: str | None = None
) -> list[Track]:
    """Parse a YouTube-VIS results list (a path, a submission .zip, or the loaded list) against ``gt``.

    Each entry needs ``video_id`` (a ground-truth video), ``category_id`` (a ground-truth category),
    a finite ``score`` and ``segmentations`` with one RLE (``counts`` str or bytes; uncompressed
    lists are accepted too) or null per frame at the video's resolution. Extra keys are ignored.
    ``source`` names a loaded list in messages.
    """
    source = source or "results"
    if isinstance(results, str | os.PathLike):
        source = str(results)
        results = read_json(results, ResultsError, "results file")
    if isinstance(results, Mapping) and "videos" in results and "annotations" in results:
        raise ResultsError(
            f"{source} is a ground truth, not a results list; were --gt and --results swapped? "
            "pass the predictions (a JSON list from vistr segment or eval) as --results"
        )
    if isinstance(results, Mapping) or not isinstance(results, Sequence):
        raise ResultsError(
            f"{source}: expected a JSON list of predictions [{{video_id, category_id, score, segmentations}}]"
        )
    tracks = []
    for i, entry in enumerate(results):
        where = f"{source}: result #{i}"
        _require(entry, ("video_id", "category_id", "score", "segmentations"), ResultsError, where)
        vid = _as_int(entry["video_id"], ResultsError, where, "video_id")
        cat = _as_int(entry["category_id"], ResultsError, where, "category_id")
        where = f"{source}: result #{i} (video {vid}, category {cat})"
        if vid not in gt.videos:
            raise ResultsError(
                f"{where}: video id {vid} is not in the ground truth; results must use its video ids"
            )
        if cat not in gt.categories:
            raise ResultsError(
                f"{where}: category id {cat} is not in the ground truth's categories "
                f"({min(gt.categories)}..{max(gt.categories)}); map labels to the dataset's ids"
            )
        score = entry["score"]
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ResultsError(f"{where}: 'score' must be a finite number, got {score!r}")
        frames, areas = _track_frames(
            entry["segmentations"], gt.videos[vid], ResultsError, where, polygons=False
        )
        tracks.append(
            Track(
                id=i + 1,
                video_id=vid,
                category_id=cat,
                frames=frames,
                areas=areas,
                avg_area=_truthy_mean(areas.tolist()),
                score=float(score),
            )
        )
    return tracks
