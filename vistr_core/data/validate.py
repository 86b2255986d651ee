"""Checking a YouTube-VIS annotation file (and its frames) before anything trusts it.

Each problem is one line naming the file, the video (id and folder) and, where it applies, the frame
(index and file name), so a user can go straight to it. ``vistr data check``
(:func:`vistr_core.data.check.check_dataset`) prints them all; :func:`vistr_core.data.ytvis.load_ytvis`
refuses a dataset with any. This module reads no files but frames and imports no other data module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import DatasetError

#: Missing frame files listed per video before the rest are summarized.
MAX_MISSING_PER_VIDEO = 3


@dataclass(frozen=True)
class Problem:
    """One defect. ``message`` is complete on its own; ``video_id``/``frame`` locate it."""

    message: str
    video_id: int | None = None
    frame: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Video:
    id: Any
    name: str
    height: Any
    width: Any
    file_names: list[Any]

    def where(self, frame: int | None = None) -> str:
        text = f"video {self.id} ({self.name})"
        if frame is not None:
            file = self.file_names[frame] if 0 <= frame < len(self.file_names) else "?"
            text += f" frame {frame} ({file})"
        return text


def validate_annotations(
    data: Any, image_root: Path | None, *, source: str | Path, decode: bool = False
) -> list[Problem]:
    """Every problem in a parsed annotation file; frames are checked on disk if ``image_root``
    (and, with ``decode``, decoded: what training would trip on)."""
    src = Path(source).name
    if not isinstance(data, dict):
        return [
            Problem(
                f"{src}: the top level is a {type(data).__name__}, expected an object with videos, categories and annotations"
            )
        ]
    problems: list[Problem] = []
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            problems.append(Problem(f"{src}: `{key}` is missing or not a list"))
    if problems:
        return problems
    category_ids = _check_categories(data["categories"], src, problems)
    videos = _check_videos(data["videos"], src, problems)
    if image_root is not None:
        _check_frames(videos.values(), Path(image_root), src, problems)
        if decode and Path(image_root).is_dir():
            _check_decoding(videos.values(), Path(image_root), src, problems)
    annotations = data.get("annotations")
    if annotations is not None:
        if isinstance(annotations, list):
            _check_annotations(annotations, videos, category_ids, src, problems)
        else:
            problems.append(Problem(f"{src}: `annotations` must be a list or null"))
    return problems


def raise_if_invalid(problems: list[Problem], source: str | Path) -> None:
    """A :class:`DatasetError` with the first problem and how many more there are."""
    if not problems:
        return
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    raise DatasetError(f"{problems[0].message}{more}; run `vistr data check` on {source} to list them all")


def _duplicates(ids: list[Any]) -> list[Any]:
    return sorted((i for i, n in Counter(ids).items() if n > 1), key=str)


def _check_categories(categories: list[Any], src: str, problems: list[Problem]) -> set[Any]:
    ids = []
    for k, cat in enumerate(categories):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
            problems.append(
                Problem(f"{src}: category #{k} needs an integer `id` and a `name`, got {cat!r:.80}")
            )
            continue
        ids.append(cat["id"])
    for dup in _duplicates(ids):
        problems.append(Problem(f"{src}: duplicate category id {dup}; category ids must be unique"))
    return set(ids)


def _check_videos(videos: list[Any], src: str, problems: list[Problem]) -> dict[Any, _Video]:
    out: dict[Any, _Video] = {}
    for k, v in enumerate(videos):
        if (
            not isinstance(v, dict)
            or not isinstance(v.get("id"), int)
            or not isinstance(v.get("file_names"), list)
        ):
            problems.append(Problem(f"{src}: video #{k} needs an integer `id` and a `file_names` list"))
            continue
        names = v["file_names"]
        name = str(names[0]).split("/")[0] if names else "no frames"
        video = _Video(v["id"], name, v.get("height"), v.get("width"), names)
        if not (
            isinstance(video.height, int)
            and isinstance(video.width, int)
            and video.height > 0
            and video.width > 0
        ):
            problems.append(
                Problem(f"{src}: {video.where()} needs positive integer `height` and `width`", v["id"])
            )
        if "length" in v and v["length"] != len(names):
            problems.append(
                Problem(
                    f"{src}: {video.where()} has length {v['length']} but {len(names)} file_names", v["id"]
                )
            )
        if not names:
            problems.append(Problem(f"{src}: {video.where()} lists no frames", v["id"]))
        if v["id"] in out:
            problems.append(
                Problem(f"{src}: duplicate video id {v['id']}; video ids must be unique", v["id"])
            )
        out[v["id"]] = video
    return out


def _check_frames(videos: Any, image_root: Path, src: str, problems: list[Problem]) -> None:
    if not image_root.is_dir():
        problems.append(
            Problem(f"{src}: image folder {image_root} does not exist; pass the right image root")
        )
        return
    for video in videos:
        missing = [t for t, f in enumerate(video.file_names) if not (image_root / str(f)).is_file()]
        for t in missing[:MAX_MISSING_PER_VIDEO]:
            problems.append(
                Problem(
                    f"{src}: {video.where(t)}: missing frame file {image_root / str(video.file_names[t])}",
                    video.id,
                    t,
                )
            )
        if len(missing) > MAX_MISSING_PER_VIDEO:
            problems.append(
                Problem(
                    f"{src}: {video.where()}: {len(missing) - MAX_MISSING_PER_VIDEO} more missing frame files",
                    video.id,
                )
            )


def _check_decoding(videos: Any, image_root: Path, src: str, problems: list[Problem]) -> None:
    """Decode every present frame (at 1/8 scale: the whole compressed stream is still read) and
    compare its size with the video's; PIL, unlike OpenCV, refuses truncated JPEGs."""
    for video in videos:
        bad = 0
        for t, name in enumerate(video.file_names):
            path = image_root / str(name)
            if not path.is_file():
                continue  # reported as missing
            reason = _decode_problem(path, video.width, video.height)
            if reason is None:
                continue
            bad += 1
            if bad <= MAX_MISSING_PER_VIDEO:
                problems.append(Problem(f"{src}: {video.where(t)}: frame {path} {reason}", video.id, t))
        if bad > MAX_MISSING_PER_VIDEO:
            more = bad - MAX_MISSING_PER_VIDEO
            problems.append(Problem(f"{src}: {video.where()}: {more} more undecodable frame files", video.id))


def _decode_problem(path: Path, width: Any, height: Any) -> str | None:
    try:
        with Image.open(path) as image:
            size = image.size
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
    except (OSError, SyntaxError, ValueError) as err:  # PIL's ways of saying "corrupt"
        return f"cannot be decoded ({str(err).strip() or type(err).__name__}); replace or remove it"
    if size != (width, height):
        return f"is {size[0]}x{size[1]} but the video is {width}x{height}; fix the frame or the video's size"
    return None


def _check_annotations(
    annotations: list[Any],
    videos: dict[Any, _Video],
    category_ids: set[Any],
    src: str,
    problems: list[Problem],
) -> None:
    ids = []
    for k, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not isinstance(ann.get("id"), int):
            problems.append(Problem(f"{src}: annotation #{k} needs an integer `id`"))
            continue
        ids.append(ann["id"])
        label = f"annotation {ann['id']}"
        video = videos.get(ann.get("video_id"))
        if video is None:
            problems.append(
                Problem(f"{src}: {label}: video_id {ann.get('video_id')!r} is not a video in the file")
            )
            continue
        label = f"{label} ({video.where()})"
        if ann.get("category_id") not in category_ids:
            known = ", ".join(str(c) for c in sorted(category_ids, key=str)) or "none"
            problems.append(
                Problem(
                    f"{src}: {label}: unknown category id {ann.get('category_id')!r} (known: {known})",
                    video.id,
                )
            )
        _check_track(ann, video, label, src, problems)
    for dup in _duplicates(ids):
        problems.append(Problem(f"{src}: duplicate annotation id {dup}; annotation ids must be unique"))


def _check_track(ann: dict[str, Any], video: _Video, label: str, src: str, problems: list[Problem]) -> None:
    length = len(video.file_names)
    segms = ann.get("segmentations")
    if not isinstance(segms, list):
        problems.append(Problem(f"{src}: {label}: `segmentations` is missing or not a list", video.id))
        return
    for key in ("segmentations", "bboxes", "areas"):
        values = ann.get(key)
        if isinstance(values, list) and len(values) != length:
            problems.append(
                Problem(
                    f"{src}: {label}: {len(values)} {key} for a {length}-frame video (need one per frame)",
                    video.id,
                )
            )
    for t, segm in enumerate(segms[:length]):
        message = _segmentation_problem(segm, video.height, video.width)
        if message:
            problems.append(
                Problem(f"{src}: {label.split(' (')[0]} {video.where(t)}: {message}", video.id, t)
            )


def _segmentation_problem(segm: Any, height: Any, width: Any) -> str | None:
    if segm is None or segm == []:
        return None
    if isinstance(segm, list):
        ok = all(
            isinstance(p, list) and len(p) % 2 == 0 and all(isinstance(x, int | float) for x in p)
            for p in segm
        )
        return None if ok else "polygon must be a list of flat [x0, y0, x1, y1, ...] lists"
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        return (
            f"unrecognized segmentation {segm!r:.60} (expected a polygon list or an RLE with counts and size)"
        )
    size = segm["size"]
    if not (isinstance(size, list) and len(size) == 2):
        return f"RLE size {size!r} is not [height, width]"
    if list(size) != [height, width]:
        return f"RLE size {size[0]}x{size[1]} (HxW) differs from the video size {height}x{width}"
    counts = segm["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
            return f"uncompressed RLE counts must be non-negative integers summing to {height}*{width}"
    elif not isinstance(counts, str | bytes):
        return f"RLE counts must be a string or a list of integers, got {type(counts).__name__}"
    return None
