"""YouTube-VIS style datasets: finding the files, reading the JSON, an in-memory index.

Supported layouts for ``--data DIR --split S`` (first match wins, see :func:`resolve_split`):

=====================  ===============================================  ==========================
layout                 annotation file                                  frames
=====================  ===============================================  ==========================
2021 / synthetic       ``DIR/S/instances.json``                         ``DIR/S/JPEGImages/``
2019                   ``DIR/S.json``                                   ``DIR/S/JPEGImages/``
VisTR reference        ``DIR/annotations/instances_{S}_sub.json``       ``DIR/S/JPEGImages/``
                       (``valid`` and ``val`` are interchangeable)
OVIS, held-out splits  ``DIR/annotations/{S}.json`` or                  ``info.vistr_split.image_root``
                       ``DIR/annotations/annotations_{S}.json``         if recorded (``vistr data
                                                                        split``), else
                                                                        ``DIR/S/JPEGImages/`` or
                                                                        ``DIR/S/``
a split folder         ``DIR/instances.json`` (``--data DIR/train``)    ``DIR/JPEGImages/``
=====================  ===============================================  ==========================

An explicit annotation file plus image root is always accepted instead.

Segmentations may be polygons, uncompressed RLE or compressed RLE; they are converted once, at load
time, to compressed RLE bytes (a few hundred bytes per mask) and decoded lazily, per clip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..categories import CategoryMap
from ..errors import DatasetError
from ..ops.masks import encode_masks, to_compressed_rle
from .validate import raise_if_invalid, validate_annotations


@dataclass(frozen=True)
class VideoInfo:
    """One video: ``file_names[t]`` is frame t, relative to the image root."""

    id: int
    height: int
    width: int
    file_names: tuple[str, ...]

    @property
    def length(self) -> int:
        return len(self.file_names)

    @property
    def name(self) -> str:
        """The video folder (``file_names[0]``'s first component)."""
        return self.file_names[0].split("/")[0] if self.file_names else str(self.id)


@dataclass(frozen=True)
class TrackAnnotation:
    """One object over a whole video. ``rles[t]`` is frame t's compressed RLE counts at the video size,
    or None where the object is absent (a null or empty segmentation)."""

    id: int
    video_id: int
    category_id: int
    iscrowd: int
    rles: tuple[bytes | None, ...]

    def present(self) -> np.ndarray:
        """[L] bool, frames where the object has a non-empty mask."""
        return np.array([r is not None for r in self.rles], dtype=bool)


@dataclass(frozen=True)
class SplitFiles:
    """Where a split's annotation file and frames are."""

    annotation_file: Path
    image_root: Path


def _split_aliases(split: str) -> list[str]:
    aliases = {"valid": ["valid", "val"], "val": ["val", "valid"]}
    return aliases.get(split, [split])


def _image_root_for(root: Path, split: str) -> Path:
    for name in _split_aliases(split):
        for candidate in (root / name / "JPEGImages", root / name):
            if candidate.is_dir():
                return candidate
    return root / split / "JPEGImages"


def resolve_split(root: str | Path, split: str = "train") -> SplitFiles:
    """Find split ``split`` of the dataset folder ``root`` (layouts in the module docstring).

    ``root`` may also be an annotation JSON file; its frames are then looked for next to it
    (``X/instances.json`` -> ``X/JPEGImages``, ``X/S.json`` -> ``X/S/JPEGImages``).
    """
    root = Path(root)
    if root.is_file():
        return SplitFiles(root, image_root_beside(root))
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist; pass the folder holding your YouTube-VIS data"
        )
    candidates: list[tuple[Path, Path | None]] = [
        (root / split / "instances.json", root / split / "JPEGImages"),
        (root / f"{split}.json", root / split / "JPEGImages"),
    ]
    for name in _split_aliases(split):
        candidates.append((root / "annotations" / f"instances_{name}_sub.json", None))
    candidates += [
        (root / "annotations" / f"{split}.json", None),
        (root / "annotations" / f"annotations_{split}.json", None),
    ]
    if split in ("", "."):
        candidates.insert(0, (root / "instances.json", root / "JPEGImages"))
    else:
        candidates.append((root / "instances.json", root / "JPEGImages"))
    for ann_file, image_root in candidates:
        if ann_file.is_file():
            return SplitFiles(ann_file, image_root or _recorded_image_root(ann_file, root, split))
    looked = ", ".join(str(a.relative_to(root)) for a, _ in candidates)
    empty = "" if any(root.iterdir()) else ", an empty folder"
    raise DatasetError(
        f"no annotation file for split {split!r} in {root}{empty} (looked for {looked}); "
        "pass the folder holding your YouTube-VIS data, or its annotation JSON file, and a --split it has"
    )


def image_root_beside(ann_file: Path) -> Path:
    if (ann_file.parent / "JPEGImages").is_dir():
        return ann_file.parent / "JPEGImages"
    return _image_root_for(ann_file.parent, ann_file.stem)


def _recorded_image_root(ann_file: Path, root: Path, split: str) -> Path:
    """The image root a held-out split file names in ``info.vistr_split.image_root``, else the
    split's own folder (OVIS keeps frames in ``DIR/S/`` directly)."""
    info = _peek_info(ann_file)
    recorded = info.get("vistr_split", {}).get("image_root") if isinstance(info, dict) else None
    if isinstance(recorded, str):
        return root / recorded
    return _image_root_for(root, split)


def _peek_info(ann_file: Path) -> Any:
    try:
        return read_json(ann_file).get("info") or {}
    except (DatasetError, AttributeError):
        return {}


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a :class:`DatasetError` naming line and column if it is malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"annotation file {path} does not exist; check the path") from None
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}; "
            "fix or re-export the file"
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; is it really a JSON annotation file?") from None


class YTVISIndex:
    """An annotation file in memory: videos, per-video tracks (masks as compressed RLE), categories.

    Build it with :func:`load_ytvis` (validates first) or :meth:`from_dict`.
    """

    def __init__(
        self,
        *,
        videos: list[VideoInfo],
        tracks: list[TrackAnnotation],
        categories: list[dict[str, Any]],
        image_root: Path,
        annotation_file: Path | None = None,
        has_annotations: bool = True,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.videos = videos
        self.categories = sorted((dict(c) for c in categories), key=lambda c: c["id"])
        self.image_root = Path(image_root)
        self.annotation_file = annotation_file
        self.has_annotations = has_annotations
        self.info = info or {}
        self._video_by_id = {v.id: v for v in videos}
        self._tracks: dict[int, list[TrackAnnotation]] = {v.id: [] for v in videos}
        for track in tracks:
            self._tracks[track.video_id].append(track)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], image_root: str | Path, annotation_file: Path | None = None
    ) -> YTVISIndex:
        """Index an already validated annotation dict (see :func:`validate.validate_annotations`)."""
        videos = [
            VideoInfo(int(v["id"]), int(v["height"]), int(v["width"]), tuple(v["file_names"]))
            for v in data["videos"]
        ]
        sizes = {v.id: (v.height, v.width) for v in videos}
        anns = data.get("annotations")
        tracks = [_track_from_json(a, *sizes[a["video_id"]]) for a in anns or []]
        return cls(
            videos=videos,
            tracks=tracks,
            categories=list(data.get("categories") or []),
            image_root=Path(image_root),
            annotation_file=annotation_file,
            has_annotations=anns is not None,
            info=data.get("info") if isinstance(data.get("info"), dict) else None,
        )

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def category_map(self) -> CategoryMap:
        return CategoryMap.from_categories(self.categories)

    @property
    def num_instances(self) -> int:
        return sum(len(t) for t in self._tracks.values())

    def video(self, video_id: int) -> VideoInfo:
        return self._video_by_id[video_id]

    def tracks(self, video_id: int) -> list[TrackAnnotation]:
        """The video's tracks in file order."""
        return self._tracks[video_id]

    def frame_path(self, video: VideoInfo, t: int) -> Path:
        return self.image_root / video.file_names[t]

    def read_frames(
        self, video: VideoInfo, indices: np.ndarray | list[int], *, reduction: int = 1
    ) -> np.ndarray:
        """Frames ``indices`` of ``video`` as RGB uint8 ``[T, H, W, 3]`` (repeated indices decode once).

        ``reduction`` r in 1, 2, 4, 8 decodes at ``ceil(H / r) x ceil(W / r)`` (libjpeg DCT scaling).
        """
        decoded: dict[int, np.ndarray] = {}
        expect = (-(-video.height // reduction), -(-video.width // reduction))
        for t in dict.fromkeys(int(i) for i in indices):
            decoded[t] = read_rgb(self.frame_path(video, t), expect=expect, reduction=reduction)
        return np.stack([decoded[int(i)] for i in indices])

    def decode_masks(
        self,
        video: VideoInfo,
        indices: np.ndarray | list[int],
        *,
        include_crowd: bool = False,
        crop: tuple[int, int, int, int] | None = None,
    ) -> tuple[np.ndarray, list[TrackAnnotation]]:
        """Masks of the video's tracks in frames ``indices``: ``bool [N, T, H, W]`` and the N tracks.

        ``crop`` = (y0, x0, y1, x1) returns only that region, ``[N, T, y1 - y0, x1 - x0]`` (cheaper
        than cropping afterwards). Crowd tracks (``iscrowd`` 1) are left out unless ``include_crowd``.
        """
        y0, x0, y1, x1 = crop or (0, 0, video.height, video.width)
        tracks = [tr for tr in self.tracks(video.id) if include_crowd or not tr.iscrowd]
        masks = np.zeros((len(tracks), len(indices), y1 - y0, x1 - x0), dtype=bool)
        size = [video.height, video.width]
        for n, track in enumerate(tracks):
            present = [
                (j, track.rles[int(t)]) for j, t in enumerate(indices) if track.rles[int(t)] is not None
            ]
            if not present:
                continue
            # One C call for all frames of the track: [H, W, K] uint8 (column-major).
            decoded = mask_utils.decode([{"size": size, "counts": c} for _, c in present])
            region = decoded[y0:y1, x0:x1].transpose(2, 0, 1).view(bool)
            masks[n, [j for j, _ in present]] = region
        return masks, tracks


def _track_from_json(ann: dict[str, Any], height: int, width: int) -> TrackAnnotation:
    rles: list[bytes | None] = []
    for segm in ann["segmentations"]:
        if not segm:
            rles.append(None)
            continue
        rle = to_compressed_rle(segm, height, width)
        counts = rle["counts"]
        counts = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
        # An all-background mask counts as absent, like a null: "valid" means a visible mask.
        rles.append(counts if mask_utils.area({"size": [height, width], "counts": counts}) > 0 else None)
    return TrackAnnotation(
        id=int(ann["id"]),
        video_id=int(ann["video_id"]),
        category_id=int(ann["category_id"]),
        iscrowd=int(ann.get("iscrowd") or 0),
        rles=tuple(rles),
    )


_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def read_rgb(path: Path, *, expect: tuple[int, int] | None = None, reduction: int = 1) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]``, optionally decoded at 1/``reduction`` size;
    a :class:`DatasetError` if unreadable or of the wrong size (``expect`` = (H, W) from the
    annotation file, already reduced)."""
    bgr = cv2.imread(str(path), _REDUCED_FLAGS[reduction])
    if bgr is None:
        what = "is missing" if not path.exists() else "cannot be decoded"
        raise DatasetError(
            f"frame {path} {what}; run `vistr data check` on the dataset to list every problem"
        )
    if expect is not None and bgr.shape[:2] != tuple(expect):
        raise DatasetError(
            f"frame {path} is {bgr.shape[1] * reduction}x{bgr.shape[0] * reduction} but the annotation "
            f"file says {expect[1] * reduction}x{expect[0] * reduction}; fix the video's width/height or the frame"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_ytvis(
    data: str | Path | None = None,
    split: str = "train",
    *,
    annotation_file: str | Path | None = None,
    image_root: str | Path | None = None,
    check_files: bool = True,
) -> YTVISIndex:
    """Load and validate a YouTube-VIS-format split.

    Either ``data`` (a dataset folder, resolved with :func:`resolve_split`) or ``annotation_file``
    (+ ``image_root``; guessed beside the file if omitted). Raises :class:`DatasetError` naming
    the first problem found; ``vistr data check`` lists them all.
    """
    if annotation_file is not None:
        ann_path = Path(annotation_file)
        root = Path(image_root) if image_root is not None else image_root_beside(ann_path)
    elif data is not None:
        files = resolve_split(data, split)
        ann_path = files.annotation_file
        root = Path(image_root) if image_root is not None else files.image_root
    else:
        raise DatasetError("no dataset given; pass --data DIR (and --split) or an annotation file")
    raw = read_json(ann_path)
    problems = validate_annotations(raw, root if check_files else None, source=ann_path)
    raise_if_invalid(problems, ann_path)
    return YTVISIndex.from_dict(raw, root, annotation_file=ann_path)


def track_json(ann_id: int, video_id: int, category_id: int, masks: np.ndarray) -> dict[str, Any]:
    """A YouTube-VIS annotation for ``masks`` [T, H, W] bool: compressed RLE (``counts`` str),
    ``bboxes`` (xywh pixels) and ``areas`` (pixel counts) per frame, null where the mask is empty."""
    segmentations: list[Any] = []
    bboxes: list[Any] = []
    areas: list[Any] = []
    rles = encode_masks(masks)
    for mask, rle in zip(masks, rles, strict=True):
        if not mask.any():
            segmentations.append(None)
            bboxes.append(None)
            areas.append(None)
            continue
        segmentations.append(rle)
        bboxes.append(
            [float(v) for v in mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})]
        )
        areas.append(int(mask.sum()))
    height, width = masks.shape[1:]
    return {
        "id": ann_id,
        "video_id": video_id,
        "category_id": category_id,
        "iscrowd": 0,
        "height": int(height),
        "width": int(width),
        "length": int(masks.shape[0]),
        "segmentations": segmentations,
        "bboxes": bboxes,
        "areas": areas,
    }
