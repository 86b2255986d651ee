"""``vistr data convert --to cvat / --from cvat``: dataset folders of CVAT for video 1.1 files.

Layout written (one CVAT task per video; the XML format is :mod:`vistr_core.data.formats.cvat_video`)::

    DST/annotations/<video>.xml     CVAT for video 1.1: upload into a task made from images/<video>/
    DST/images/<video>/<frame>.jpg  the frames (copied when the source has them)
    DST/labels.json                 the labels with their attributes, for CVAT's "Raw" label editor
    DST/vistr.json                  side-car: categories, video ids, sizes and frame file names

Read: the same layout, a folder of CVAT exports (``<any>/annotations.xml``, e.g. unzipped task
exports), a folder holding one ``annotations.xml``, or one ``.xml`` file. With the side-car, video
ids, frame names and category ids come back exactly; without it videos are numbered in name order,
categories in label order, and frames named after the files of ``images/<video>/`` (our layout) or
``<video>/images/`` (a CVAT task export) when it holds one image per frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..ops.masks import decode_segmentation, encode_masks
from .converted import ConvertSummary, VideoTracks, copy_frames, read_sidecar, video_header
from .formats import cvat_video
from .video_io import IMAGE_EXTENSIONS, natural_key


def cvat_files(src: Path) -> list[tuple[str, Path]]:
    """``(video name, xml path)`` of every CVAT file ``src`` holds, in natural name order."""
    if src.is_file():
        return [(src.stem if src.name != "annotations.xml" else src.parent.name, src)]
    found = [(p.stem, p) for p in (src / "annotations").glob("*.xml")]
    found += [(p.parent.name, p) for p in src.glob("*/annotations.xml") if p.parent.name != "annotations"]
    if (src / "annotations.xml").is_file():
        found.append((src.name, src / "annotations.xml"))
    return sorted(found, key=lambda item: natural_key(item[0]))


def looks_like_cvat(src: Path) -> bool:
    return src.suffix.lower() == ".xml" or bool(src.is_dir() and cvat_files(src))


def read_cvat(src: Path) -> tuple[list[dict[str, Any]], Iterator[VideoTracks], int]:
    """Categories, the videos (masks decoded) and their count, as the other readers return them."""
    files = cvat_files(src)
    if not files:
        raise DatasetError(f"{src} holds no CVAT files (annotations/<video>.xml or <video>/annotations.xml)")
    root = src if src.is_dir() else src.parent
    if src.is_file() and root.name == "annotations":  # DST/annotations/<video>.xml of our layout
        root = root.parent
    side = read_sidecar(root)
    metas = {m["name"]: m for m in side["videos"]} if side else {}
    categories = list(side["categories"]) if side else []

    def videos() -> Iterator[VideoTracks]:
        for number, (name, path) in enumerate(files, start=1):
            meta = metas.get(name)
            images = root / "images" / name  # our layout; a CVAT export has <video>/images/
            images = images if images.is_dir() else path.parent / "images"
            data = cvat_video.read(
                path,
                video_id=int(meta["id"]) if meta else number,
                categories=categories,
                file_names=meta["file_names"] if meta else None,
            )
            if meta is None:
                _name_frames_after(images, data["videos"][0])
            for category in data["categories"]:  # labels added in CVAT get new ids
                if all(c["id"] != category["id"] for c in categories):
                    categories.append(category)
            yield _tracks(data, name, images if images.is_dir() else None)

    # ``categories`` is complete once the videos have been read, before anything uses it
    return categories, videos(), len(files)


def _name_frames_after(images: Path, video: dict[str, Any]) -> None:
    """Frame names from the video's image folder when it holds exactly one image per frame."""
    if not images.is_dir():
        return
    files = sorted(
        (p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key
    )
    if len(files) == video["length"]:
        video["file_names"] = files


def _tracks(data: dict[str, Any], name: str, frame_folder: Path | None) -> VideoTracks:
    (video,) = data["videos"]
    height, width = video["height"], video["width"]
    tracks = VideoTracks(
        id=video["id"],
        name=name,
        height=height,
        width=width,
        frame_names=[f"{name}/{Path(f).name}" for f in video["file_names"]],
        frame_folder=frame_folder,
    )
    empty = np.zeros((height, width), dtype=bool)
    for ann in data["annotations"]:
        tracks.ann_ids.append(ann["id"])
        tracks.category_ids.append(ann["category_id"])
        tracks.masks.append(
            np.stack(
                [empty if s is None else decode_segmentation(s, height, width) for s in ann["segmentations"]]
            )
        )
    return tracks


def write_cvat(
    video: VideoTracks, out: Path, summary: ConvertSummary, categories: list[dict[str, Any]], shapes: str
) -> dict[str, Any]:
    """``annotations/<video>.xml`` and ``images/<video>/``; the video's side-car entry."""
    tracks = [
        cvat_video.CvatTrack(
            track_id=ann_id,
            category_id=cat,
            segmentations=[
                rle if m.any() else None for m, rle in zip(masks, encode_masks(masks), strict=True)
            ],
        )
        for ann_id, cat, masks in zip(video.ann_ids, video.category_ids, video.masks, strict=True)
    ]
    (out / "annotations").mkdir(exist_ok=True)
    cvat_video.write_video(
        out / "annotations" / f"{video.name}.xml",
        name=video.name,
        size=(video.height, video.width),
        length=len(video.frame_names),
        categories=categories,
        tracks=tracks,
        shapes=shapes,
    )
    summary.frames_copied += copy_frames(video, out / "images" / video.name)
    return video_header(video)


def write_labels_json(path: Path, categories: list[dict[str, Any]]) -> None:
    """CVAT's "Raw" label list: paste it when creating the task, so the attributes import."""
    path.write_text(json.dumps(cvat_video.label_spec(categories), indent=1) + "\n", encoding="utf-8")


__all__ = ["cvat_files", "looks_like_cvat", "read_cvat", "write_cvat", "write_labels_json"]
