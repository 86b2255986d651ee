"""What every track-format conversion shares: a video's tracks in memory, the summary, the
``vistr.json`` side-car and frame copying (its own module so the per-format converters and
:mod:`vistr_core.data.convert` import it without importing each other)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .ytvis import read_json

SIDECAR = "vistr.json"


@dataclass
class VideoTracks:
    """One video in memory: ``masks[n]`` is track n, ``[L, H, W]`` bool."""

    id: int
    name: str
    height: int
    width: int
    frame_names: list[str]  # file names relative to the image root, "<video>/<frame>.jpg"
    ann_ids: list[int] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    image_dir: Path | None = None  # where frame_names live, if frames exist
    frame_folder: Path | None = None  # or: the folder holding the frames by file name (CVAT exports)

    def frame_file(self, name: str) -> Path | None:
        """The source file of frame ``name`` (one of ``frame_names``), if the frames exist."""
        if self.frame_folder is not None:
            return self.frame_folder / Path(name).name
        return None if self.image_dir is None else self.image_dir / name


@dataclass
class ConvertSummary:
    out: Path
    to: str
    videos: int = 0
    tracks: int = 0
    overlap_pixels: int = 0
    frames_copied: int = 0


def read_sidecar(src: Path) -> dict[str, Any] | None:
    """The ``vistr.json`` side-car a conversion wrote into ``src`` (None without one)."""
    path = src / SIDECAR
    return read_json(path) if path.is_file() else None


def copy_frames(video: VideoTracks, dst_dir: Path) -> int:
    """Copy the video's frames that exist into ``dst_dir`` (by file name); how many were copied."""
    copied = 0
    for name in video.frame_names:
        src = video.frame_file(name)
        if src is not None and src.is_file():
            target = dst_dir / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            copied += 1
    return copied


def video_header(video: VideoTracks) -> dict[str, Any]:
    """The side-car's record of a converted video: id, name, size and frame file names."""
    return {
        "id": video.id,
        "name": video.name,
        "height": video.height,
        "width": video.width,
        "file_names": video.frame_names,
    }
