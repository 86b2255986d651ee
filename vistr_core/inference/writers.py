"""Writing one video's outputs: a streaming spool, then results.json, PNG masks and MOTS text.

While a video is segmented, each output frame's RLEs go to a JSONL *spool* (one line per frame),
so full-resolution masks never accumulate. When the video ends and the final track ids are known,
:func:`write_outputs` reads the spool once, in frame order:

- ``results.json``: the YouTube-VIS results list. Only RLE strings (a few hundred bytes per mask)
  are held, never decoded masks.
- ``masks/NNNNN.png`` (``png``): one indexed PNG per frame, named by the true frame index; pixel =
  track id, the palette of :mod:`vistr_core.render`. Where masks overlap, the higher-scoring track
  (its mean score over the video) is on top.
- ``tracks.mots.txt`` (``mots``): MOTS text, one line per (frame, track):
  ``frame id class_id height width rle`` with ``frame`` the true frame index, ``class_id`` the
  dataset category id and ``id = class_id * 1000 + track_id`` (the MOTS convention). MOTS masks
  may not overlap, so these lines come from the same overlap-resolved label map as the PNGs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..atomic import atomic_write_json
from ..categories import CategoryMap
from ..ops.masks import encode_masks
from ..render.palette import palette_for_png
from .segmenter import FrameResult
from .tracker import FinalTrack


class SpoolWriter:
    """Appends each output frame's instances to a JSONL file: ``{"p": position, "i": [[id, score, counts]]}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.frames = 0

    def write(self, frame: FrameResult) -> None:
        rles = encode_masks(frame.masks) if len(frame.track_ids) else []
        instances = [
            [tid, round(float(s), 6), rle["counts"]]
            for tid, s, rle in zip(frame.track_ids, frame.scores, rles, strict=True)
        ]
        self._file.write(
            json.dumps({"p": frame.frame.position, "i": instances}, separators=(",", ":")) + "\n"
        )
        self.frames += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_spool(
    path: Path, linked_id: Callable[[int, int], int] | None = None
) -> Iterator[tuple[int, list[list[Any]]]]:
    """``(position, [[provisional_id, score, counts], ...])`` per frame, in write order; with
    ``linked_id(provisional_id, position)`` (re-linking), its ids instead of the streamed ones."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            position, instances = record["p"], record["i"]
            if linked_id is not None:
                instances = [[linked_id(p, position), s, c] for p, s, c in instances]
            yield position, instances


def build_results(
    spool: Path,
    tracks: Sequence[FinalTrack],
    *,
    num_frames: int,
    size: tuple[int, int],
    video_id: int,
    categories: CategoryMap,
    linked_id: Callable[[int, int], int] | None = None,
) -> list[dict[str, Any]]:
    """The YouTube-VIS results list: one entry per track, one RLE or null per processed frame
    (``linked_id``: see :func:`read_spool`)."""
    by_provisional = {t.provisional_id: t for t in tracks}
    segmentations: dict[int, list[dict[str, Any] | None]] = {t.track_id: [None] * num_frames for t in tracks}
    height, width = size
    for position, instances in read_spool(spool, linked_id):
        for provisional, _score, counts in instances:
            track = by_provisional.get(provisional)
            if track is not None:
                segmentations[track.track_id][position] = {"size": [height, width], "counts": counts}
    return track_entries(tracks, segmentations, video_id=video_id, categories=categories)


def track_entries(
    tracks: Sequence[FinalTrack],
    segmentations: dict[int, list[dict[str, Any] | None]],
    *,
    video_id: int,
    categories: CategoryMap,
) -> list[dict[str, Any]]:
    """Results entries of ``tracks``; ``segmentations`` maps each final ``track_id`` to its per-frame RLEs."""
    return [
        {
            "video_id": video_id,
            "category_id": categories.ids[t.label],
            "score": round(t.score, 6),
            "segmentations": segmentations[t.track_id],
            "track_id": t.track_id,
        }
        for t in tracks
    ]


def label_map(
    instances: list[list[Any]], by_provisional: dict[int, FinalTrack], size: tuple[int, int]
) -> np.ndarray:
    """``int32 [H, W]``: 0 background, else the track id; the higher-scoring track wins overlaps."""
    canvas = np.zeros(size, dtype=np.int32)
    present = [(by_provisional[p], counts) for p, _s, counts in instances if p in by_provisional]
    for track, counts in sorted(present, key=lambda tc: (tc[0].score, -tc[0].track_id)):
        rle = {"size": list(size), "counts": counts.encode("ascii")}
        canvas[mask_utils.decode(rle).astype(bool)] = track.track_id
    return canvas


def write_png(path: Path, labels: np.ndarray, palette: list[int]) -> None:
    """An indexed (P-mode) PNG when ids fit in 255, else 16-bit greyscale holding the raw ids."""
    if labels.max(initial=0) <= 255:
        image = Image.fromarray(labels.astype(np.uint8), mode="P")
        image.putpalette(palette)
    else:
        image = Image.fromarray(labels.astype(np.uint16))  # PIL: "I;16"
    image.save(path, optimize=False)


def mots_lines(
    frame_index: int, labels: np.ndarray, tracks: Sequence[FinalTrack], categories: CategoryMap
) -> list[str]:
    """MOTS text lines of one frame from its overlap-resolved label map."""
    height, width = labels.shape
    lines = []
    for track in tracks:
        mask = labels == track.track_id
        if not mask.any():
            continue
        class_id = categories.ids[track.label]
        counts = encode_masks(mask[None])[0]["counts"]
        lines.append(f"{frame_index} {class_id * 1000 + track.track_id} {class_id} {height} {width} {counts}")
    return lines


def write_frame_outputs(
    spool: Path,
    out_dir: Path,
    tracks: Sequence[FinalTrack],
    *,
    frame_indices: Sequence[int],
    size: tuple[int, int],
    categories: CategoryMap,
    png: bool,
    mots: bool,
    linked_id: Callable[[int, int], int] | None = None,
) -> None:
    """``masks/NNNNN.png`` and/or ``tracks.mots.txt`` from one pass over the spool (``linked_id``:
    see :func:`read_spool`)."""
    if not (png or mots):
        return
    by_provisional = {t.provisional_id: t for t in tracks}
    palette = palette_for_png()
    if png:
        (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        mots_file = (
            stack.enter_context(open(out_dir / "tracks.mots.txt", "w", encoding="utf-8")) if mots else None
        )
        for position, instances in read_spool(spool, linked_id):
            labels = label_map(instances, by_provisional, size)
            index = frame_indices[position]
            if png:
                write_png(out_dir / "masks" / f"{index:05d}.png", labels, palette)
            if mots_file is not None:
                present = [by_provisional[p] for p, _s, _c in instances if p in by_provisional]
                for line in mots_lines(index, labels, sorted(present, key=lambda t: t.track_id), categories):
                    mots_file.write(line + "\n")


def write_results(path: Path, results: list[dict[str, Any]]) -> None:
    atomic_write_json(path, results)
