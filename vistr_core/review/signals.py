"""Per-track evidence read from a segment output alone: scores, presence, masks, classes, links.

Everything here is a pure function of the decoded tracks; no model is run. Frames are *positions*
in the results (0..L-1); :mod:`vistr_core.review.rank` maps them to source frame indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..ops.masks import to_compressed_rle


@dataclass
class TrackView:
    """One predicted track: ``rles[t]`` compressed RLE or None; per-frame ``scores``/``classes``
    where the segmenter recorded them (meta.json), else the track's own score and class."""

    track_id: int
    category_id: int
    score: float
    rles: list[Any]
    scores: list[float | None]
    classes: list[int | None]
    links: list[dict[str, Any]] = field(default_factory=list)

    @property
    def present(self) -> np.ndarray:
        """int [n] positions where the track has a non-empty mask."""
        return np.array([t for t, r in enumerate(self.rles) if r is not None], dtype=np.int64)


def track_views(
    results: Sequence[dict[str, Any]], meta: dict[str, Any] | None, size: tuple[int, int]
) -> list[TrackView]:
    """Tracks of one video's results (+ its meta.json, if any) with empty masks as None."""
    per_track = {t["track_id"]: t for t in (meta or {}).get("tracks", [])}
    links: dict[int, list[dict[str, Any]]] = {}
    for link in (meta or {}).get("links", []):
        links.setdefault(int(link["track_id"]), []).append(link)
    views = []
    for k, entry in enumerate(results):
        track_id = int(entry.get("track_id", k + 1))
        rles = [None if s is None else to_compressed_rle(s, *size) for s in entry["segmentations"]]
        rles = [r if r is not None and mask_utils.area(r) > 0 else None for r in rles]
        info = per_track.get(track_id, {})
        scores = info.get("frame_scores") or [entry["score"] if r is not None else None for r in rles]
        classes = info.get("frame_categories") or [
            entry["category_id"] if r is not None else None for r in rles
        ]
        views.append(
            TrackView(
                track_id,
                int(entry["category_id"]),
                float(entry["score"]),
                rles,
                scores,
                classes,
                links.get(track_id, []),
            )
        )
    return views


def areas(view: TrackView) -> np.ndarray:
    """float [L]: mask area per frame (0 where absent)."""
    return np.array([0.0 if r is None else float(mask_utils.area(r)) for r in view.rles])


def consecutive_iou(view: TrackView) -> list[tuple[int, float]]:
    """(position, IoU with the previous present frame's mask after aligning their centroids) for
    present frames following a present one. Aligning removes motion, which alone lowers the IoU of
    a small, fast object's consecutive masks far below that of a mask that changes shape."""
    out = []
    for t in range(1, len(view.rles)):
        a, b = view.rles[t - 1], view.rles[t]
        if a is not None and b is not None:
            out.append((t, aligned_iou(mask_utils.decode(a), mask_utils.decode(b))))
    return out


def aligned_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two non-empty [H, W] masks with ``a`` shifted so that the centroids coincide."""
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    if not len(ya) or not len(yb):
        return 0.0
    dy, dx = round(float(yb.mean() - ya.mean())), round(float(xb.mean() - xa.mean()))
    width = a.shape[1] + 2 * abs(dx) + 1
    shifted = (ya + dy) * width + (xa + dx)
    target = yb * width + xb
    inter = len(np.intersect1d(shifted, target, assume_unique=True))
    return inter / (len(shifted) + len(target) - inter)


def gaps(view: TrackView) -> list[tuple[int, int]]:
    """(first, last) absent positions strictly between the track's first and last mask."""
    present = view.present
    return [(int(a) + 1, int(b) - 1) for a, b in zip(present[:-1], present[1:], strict=True) if b - a > 1]


def largest_drop(scores: Sequence[float]) -> tuple[float, int]:
    """The largest fall ``s[i] - s[j]`` with ``i < j`` and the position index ``j`` where it ends."""
    best, where, peak = 0.0, 0, -np.inf
    for j, s in enumerate(scores):
        peak = max(peak, s)
        if peak - s > best:
            best, where = peak - s, j
    return float(best), where


def class_changes(view: TrackView) -> list[int]:
    """Positions whose per-frame class differs from the previous present frame's."""
    changes, last = [], None
    for t, c in enumerate(view.classes):
        if c is None or view.rles[t] is None:
            continue
        if last is not None and c != last:
            changes.append(t)
        last = c
    return changes


def touches_border(rle: Any, size: tuple[int, int]) -> bool:
    x, y, w, h = mask_utils.toBbox(rle)
    return x <= 0 or y <= 0 or x + w >= size[1] or y + h >= size[0]


def pair_overlap(a: TrackView, b: TrackView) -> tuple[float, list[int]]:
    """Video IoU of two tracks over the frames where both are present, and those frames."""
    both = [t for t in range(len(a.rles)) if a.rles[t] is not None and b.rles[t] is not None]
    if not both:
        return 0.0, []
    inter = union = 0.0
    for t in both:
        i = float(mask_utils.area(mask_utils.merge([a.rles[t], b.rles[t]], intersect=True)))
        inter += i
        union += float(mask_utils.area(a.rles[t]) + mask_utils.area(b.rles[t])) - i
    return inter / max(union, 1.0), both


def mask_iou(a: Any, b: Any) -> float:
    return float(mask_utils.iou([a], [b], [0])[0, 0])
