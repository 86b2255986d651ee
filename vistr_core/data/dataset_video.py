"""Which YouTube-VIS video a frame folder is, when it lies inside a dataset.

``vistr segment …/valid/JPEGImages/valid_00001`` should write that video's id into results.json,
or scoring it against ``valid/instances.json`` compares it with another video. A frame folder
``F`` is looked up in the split it belongs to: ``F``'s parent is the split's image root
(``DIR/S/JPEGImages`` or, for OVIS, ``DIR/S``), the split's annotation file is found the way
``--data DIR --split S`` finds it (:func:`~.ytvis.resolve_split`), and the video is the one whose
``file_names`` lie in ``F``. Anything else (no dataset around the folder, a folder the annotation
file does not list, an unreadable file) means "not a dataset video": the caller keeps its default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DatasetError
from .ytvis import SplitFiles, resolve_split


@dataclass(frozen=True)
class DatasetVideo:
    """A frame folder's video in a dataset: its id and the annotation file that says so."""

    video_id: int
    annotation_file: Path


class DatasetVideoFinder:
    """Finds dataset videos for frame folders; each annotation file is read once per finder."""

    def __init__(self) -> None:
        self._splits: dict[Path, SplitFiles | None] = {}  # split folder -> its files
        self._folders: dict[Path, dict[str, int] | None] = {}  # annotation file -> folder -> id

    def find(self, folder: str | Path) -> DatasetVideo | None:
        """The dataset video whose frames are ``folder``, or None (see the module docstring)."""
        folder = Path(folder).resolve()
        image_root = folder.parent
        split_dir = image_root.parent if image_root.name == "JPEGImages" else image_root
        files = self._split(split_dir)
        if files is None or files.image_root.resolve() != image_root:
            return None
        ids = self._video_folders(files.annotation_file)
        video_id = None if ids is None else ids.get(folder.name)
        return None if video_id is None else DatasetVideo(video_id, files.annotation_file)

    def _split(self, split_dir: Path) -> SplitFiles | None:
        # Cached: resolving some layouts reads the annotation file, and a batch shares one split.
        if split_dir not in self._splits:
            try:
                self._splits[split_dir] = resolve_split(split_dir.parent, split_dir.name)
            except (DatasetError, OSError):
                self._splits[split_dir] = None
        return self._splits[split_dir]

    def _video_folders(self, annotation_file: Path) -> dict[str, int] | None:
        key = annotation_file.resolve()
        if key not in self._folders:
            self._folders[key] = _video_folders(key)
        return self._folders[key]


def _video_folders(annotation_file: Path) -> dict[str, int] | None:
    """``{folder of the video's frames: video id}`` for the videos whose frames share one folder."""
    try:
        data: Any = json.loads(annotation_file.read_text(encoding="utf-8"))
        folders: dict[str, int] = {}
        for video in data["videos"]:
            parents = {PurePosixPath(str(name)).parent.as_posix() for name in video["file_names"]}
            if len(parents) == 1 and "/" not in (parent := parents.pop()):
                folders.setdefault(parent, int(video["id"]))
        return folders
    except (OSError, ValueError, KeyError, TypeError):  # not a usable dataset: no id from it
        return None
