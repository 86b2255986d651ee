"""The per-video CSV: one row per (video, category) that has ground truth or predictions.

Columns (``PER_VIDEO_COLUMNS``):

- ``video_id``, ``video_name`` (first path component of ``file_names``), ``category_id``, ``category_name``
- ``num_gt`` non-crowd ground-truth tracks, ``num_crowd`` crowd tracks, ``num_dt`` predictions (≤ 100 kept)
- ``ap``: the metric (IoU .50:.95, area all, maxDets 100) on this unit alone; −1 without ground truth
- ``mean_best_iou``: mean over ground-truth tracks of the best video IoU any prediction reached (empty
  without ground truth) — low values point at badly segmented or missed objects
- ``tp50, fp50, fn50`` and ``tp75, fp75, fn75``: true positives, false positives and missed tracks of the
  official matching at IoU 0.50 / 0.75 (area all, maxDets 100)
- ``top_fp_score``: the highest score among false positives at IoU 0.50 (confident hallucinations)
- ``best_iou``: ``annotation_id:iou`` pairs, ``;``-separated, one per ground-truth track
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

from vistr_core.atomic import atomic_open

from .ytvis_eval import UnitReport

PER_VIDEO_COLUMNS: tuple[str, ...] = (
    "video_id",
    "video_name",
    "category_id",
    "category_name",
    "num_gt",
    "num_crowd",
    "num_dt",
    "ap",
    "mean_best_iou",
    "tp50",
    "fp50",
    "fn50",
    "tp75",
    "fp75",
    "fn75",
    "top_fp_score",
    "best_iou",
)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def per_video_rows(units: Sequence[UnitReport]) -> list[dict[str, Any]]:
    """CSV-ready rows (strings and ints) in ``PER_VIDEO_COLUMNS`` order."""
    rows = []
    for u in units:
        rows.append(
            {
                "video_id": u.video_id,
                "video_name": u.video_name,
                "category_id": u.category_id,
                "category_name": u.category_name,
                "num_gt": u.num_gt,
                "num_crowd": u.num_crowd,
                "num_dt": u.num_dt,
                "ap": _fmt(u.ap),
                "mean_best_iou": _fmt(u.mean_best_iou),
                "tp50": u.tp50,
                "fp50": u.fp50,
                "fn50": u.fn50,
                "tp75": u.tp75,
                "fp75": u.fp75,
                "fn75": u.fn75,
                "top_fp_score": _fmt(u.top_fp_score),
                "best_iou": ";".join(f"{gid}:{iou:.4f}" for gid, iou in u.best_iou.items()),
            }
        )
    return rows


def write_per_video_csv(units: Sequence[UnitReport], path: str | os.PathLike[str]) -> None:
    """Write the per-video CSV atomically (a reader never sees half a file)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(PER_VIDEO_COLUMNS))
        writer.writeheader()
        writer.writerows(per_video_rows(units))
