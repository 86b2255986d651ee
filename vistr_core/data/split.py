"""Held-out splits carved from a training set (YouTube-VIS / OVIS valid ground truth is private).

``split_dataset(DIR, valid_fraction=0.1, seed=0)`` writes two annotation files next to the data::

    DIR/annotations/split_train.json    the remaining videos
    DIR/annotations/split_valid.json    round(F * N) videos (at least 1, at most N - 1)

Videos are chosen by a seeded permutation of the sorted video ids, so the same (file, fraction,
seed) always gives the same split. Video, annotation and category ids and the frame file names are
kept unchanged; both files record in ``info.vistr_split`` the source file, the seed, the fraction and
the image root (relative to DIR), which is how ``--data DIR --split split_valid`` finds the frames
(:func:`vistr_core.data.ytvis.resolve_split`). ``name`` changes the ``split`` prefix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json, refuse_overwrite
from ..errors import ConfigError
from .validate import raise_if_invalid, validate_annotations
from .ytvis import read_json, resolve_split


@dataclass(frozen=True)
class SplitSummary:
    train_file: Path
    valid_file: Path
    train_videos: int
    valid_videos: int


def choose_valid_videos(video_ids: list[int], valid_fraction: float, seed: int) -> set[int]:
    """The held-out video ids: a seeded permutation of the sorted ids, first round(F * N)."""
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"--valid-fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    if len(video_ids) < 2:
        raise ConfigError(f"cannot split {len(video_ids)} video(s); a split needs at least 2")
    count = min(max(round(valid_fraction * len(video_ids)), 1), len(video_ids) - 1)
    order = np.random.default_rng(seed).permutation(len(video_ids))
    ids = sorted(video_ids)
    return {ids[i] for i in order[:count]}


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _subset(data: dict[str, Any], video_ids: set[int], meta: dict[str, Any], part: str) -> dict[str, Any]:
    info = dict(data.get("info") or {})
    info["vistr_split"] = {**meta, "part": part}
    anns = data.get("annotations")
    return {
        "info": info,
        "licenses": data.get("licenses") or [],
        "videos": [v for v in data["videos"] if v["id"] in video_ids],
        "categories": data["categories"],
        "annotations": None if anns is None else [a for a in anns if a["video_id"] in video_ids],
    }


def split_dataset(
    root: str | Path,
    *,
    valid_fraction: float = 0.1,
    seed: int = 0,
    source_split: str = "train",
    name: str = "split",
    force: bool = False,
) -> SplitSummary:
    """Write ``{name}_train.json`` and ``{name}_valid.json`` under ``root/annotations`` (see module doc)."""
    root = Path(root)
    files = resolve_split(root, source_split)
    data = read_json(files.annotation_file)
    raise_if_invalid(
        validate_annotations(data, files.image_root, source=files.annotation_file), files.annotation_file
    )
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name {name!r} must be a plain file name prefix")
    train_file = root / "annotations" / f"{name}_train.json"
    valid_file = root / "annotations" / f"{name}_valid.json"
    for target in (train_file, valid_file):
        refuse_overwrite(target, force=force, what="split file")
    all_ids = [v["id"] for v in data["videos"]]
    valid_ids = choose_valid_videos(all_ids, valid_fraction, seed)
    meta = {
        "source": _relative(files.annotation_file, root),
        "image_root": _relative(files.image_root, root),
        "valid_fraction": valid_fraction,
        "seed": seed,
    }
    atomic_write_json(valid_file, _subset(data, valid_ids, meta, "valid"))
    atomic_write_json(train_file, _subset(data, set(all_ids) - valid_ids, meta, "train"))
    return SplitSummary(train_file, valid_file, len(all_ids) - len(valid_ids), len(valid_ids))
