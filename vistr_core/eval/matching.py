"""Greedy matching of one (video, category) unit, for every area range and IoU threshold at once.

This is COCO's ``evaluateImg`` with a video as the image. Per area range a ground-truth track is
ignored when it is a crowd or its ``avg_area`` lies outside the range (inclusive ends). Then, for
each threshold t, predictions are taken in descending score order (stable) and each claims the
best still-available ground truth with IoU ≥ min(t, 1 − 1e-10), where the official scan order

    ground truths sorted ignore-last (stable); skip taken non-crowd ones; stop at the first
    ignored one once a non-ignored match exists; replace the best when IoU ≥ best

amounts to: among available *non-ignored* candidates take the highest IoU, ties going to the one
listed last; only if there is none, the same among *ignored* candidates. A prediction matched to
an ignored track is ignored; an unmatched prediction whose own ``avg_area`` is outside the range is
ignored (this is how APs/APm/APl treat false positives).

Vectorizing over the A×T (range, threshold) grid keeps one numpy step per prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .params import AREA_RANGES, IOU_THRESHOLDS


@dataclass
class UnitMatches:
    """Matching outcome of one (video, category).

    Attributes:
        dt_scores: ``[D]`` prediction scores, descending (stable), at most maxDets[-1] of them.
        dt_matched: ``bool [A, T, D]`` matched to a ground truth (official ``dtMatches`` truthiness).
        dt_ignore: ``bool [A, T, D]`` excluded from both TP and FP.
        dt_gt: ``int [A, T, D]`` column of the matched ground truth, −1 when unmatched.
        gt_ignore: ``bool [A, G]`` ground truth excluded from recall.
    """

    dt_scores: np.ndarray
    dt_matched: np.ndarray
    dt_ignore: np.ndarray
    dt_gt: np.ndarray
    gt_ignore: np.ndarray


def gt_ignore_flags(
    gt_avg_area: np.ndarray, gt_crowd: np.ndarray, area_ranges: Sequence[tuple[float, float]] = AREA_RANGES
) -> np.ndarray:
    """``bool [A, G]``: crowd, or mean area outside the (inclusive) range."""
    rng = np.asarray(area_ranges, dtype=np.float64)
    outside = (gt_avg_area[None, :] < rng[:, :1]) | (gt_avg_area[None, :] > rng[:, 1:])
    return outside | gt_crowd[None, :].astype(bool)


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum along the last axis."""
    g = values.shape[-1]
    return g - 1 - np.argmax(values[..., ::-1], axis=-1)


def match_unit(
    ious: np.ndarray,
    dt_scores: np.ndarray,
    dt_avg_area: np.ndarray,
    gt_avg_area: np.ndarray,
    gt_crowd: np.ndarray,
    gt_ids: np.ndarray,
    *,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    area_ranges: Sequence[tuple[float, float]] = AREA_RANGES,
) -> UnitMatches:
    """Match one unit.

    Args:
        ious: ``[D, G]`` video IoUs, rows already in descending-score (stable) order and cut to
            maxDets[-1]; columns in ground-truth file order.
        dt_scores, dt_avg_area: ``[D]`` in the same row order.
        gt_avg_area, gt_crowd, gt_ids: ``[G]``. A match to a ground truth whose id is 0 does not
            count as a match downstream, exactly as in the official API (it stores the id and tests
            its truthiness).
    """
    num_dt, num_gt = ious.shape
    rng = np.asarray(area_ranges, dtype=np.float64)
    num_a, num_t = len(rng), len(iou_thresholds)
    gt_ignore = gt_ignore_flags(gt_avg_area, gt_crowd, area_ranges)  # [A, G]
    crowd = gt_crowd.astype(bool)
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[None, :, None]  # [1, T, 1]
    taken = np.zeros((num_a, num_t, num_gt), dtype=bool)
    dt_gt = np.full((num_a, num_t, num_dt), -1, dtype=np.int64)
    if num_dt and num_gt:
        gt_ignore_b = np.broadcast_to(gt_ignore[:, None, :], taken.shape)
        a_idx, t_idx = np.meshgrid(np.arange(num_a), np.arange(num_t), indexing="ij")
        for d in range(num_dt):
            row = ious[d][None, None, :]
            candidate = (~taken | crowd) & (row >= thresholds)  # [A, T, G]
            regular = candidate & ~gt_ignore_b
            use = np.where(regular.any(axis=-1, keepdims=True), regular, candidate)
            found = use.any(axis=-1)  # [A, T]
            best = _last_argmax(np.where(use, row, -np.inf))  # [A, T]
            dt_gt[:, :, d] = np.where(found, best, -1)
            taken[a_idx[found], t_idx[found], best[found]] = True
    matched_any = dt_gt >= 0
    safe = np.where(matched_any, dt_gt, 0)
    if num_gt:
        matched_ignored = matched_any & np.take_along_axis(
            np.broadcast_to(gt_ignore[:, None, :], (num_a, num_t, num_gt)), safe, axis=-1
        )
        dt_matched = matched_any & (gt_ids[safe] != 0)
    else:
        matched_ignored = np.zeros_like(matched_any)
        dt_matched = matched_any
    dt_outside = (dt_avg_area[None, :] < rng[:, :1]) | (dt_avg_area[None, :] > rng[:, 1:])  # [A, D]
    dt_ignore = matched_ignored | (~dt_matched & dt_outside[:, None, :])
    return UnitMatches(
        dt_scores=np.asarray(dt_scores, dtype=np.float64),
        dt_matched=dt_matched,
        dt_ignore=dt_ignore,
        dt_gt=dt_gt,
        gt_ignore=gt_ignore,
    )
