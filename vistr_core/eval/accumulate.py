"""Precision/recall accumulation and the 12 summary statistics (COCO ``accumulate``/``summarize``).

For every category k, area range a and maxDets m, the first m predictions of each (video, k)
unit are pooled over videos (in ascending video id), sorted by score descending with a stable
mergesort, and turned into cumulative TP/FP counts per IoU threshold. Recall = TP / #non-ignored
ground truths; precision is made non-increasing from the right and sampled at 101 recall points
(``searchsorted(..., side='left')``; points beyond the reached recall stay 0). Slices without a
non-ignored ground truth keep −1 and are left out of every mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .matching import UnitMatches
from .params import AREA_LABELS, IOU_THRESHOLDS, MAX_DETS, RECALL_THRESHOLDS, STAT_DEFINITIONS, STAT_NAMES


def _precision_recall_curves(
    matched: np.ndarray, ignore: np.ndarray, num_positive: int, recall_thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sampled precision ``[T, R]`` and final recall ``[T]`` from score-sorted ``[T, N]`` flags."""
    tp = np.cumsum(matched & ~ignore, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignore, axis=1).astype(np.float64)
    num_t, num_dt = tp.shape
    if num_dt == 0:
        return np.zeros((num_t, len(recall_thresholds))), np.zeros(num_t)
    rc = tp / num_positive
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # monotone envelope
    sampled = np.zeros((num_t, len(recall_thresholds)))
    for t in range(num_t):
        idx = np.searchsorted(rc[t], recall_thresholds, side="left")
        reached = idx < num_dt
        sampled[t, reached] = pr[t, idx[reached]]
    return sampled, rc[:, -1]


def accumulate(
    units: Sequence[Sequence[UnitMatches]],
    *,
    max_dets: Sequence[int] = MAX_DETS,
    recall_thresholds: np.ndarray = RECALL_THRESHOLDS,
    num_thresholds: int = len(IOU_THRESHOLDS),
) -> tuple[np.ndarray, np.ndarray]:
    """Precision ``[T, R, K, A, M]`` and recall ``[T, K, A, M]`` (−1 where undefined).

    Args:
        units: per category (in ascending id order), that category's units in ascending video id
            order — only units with at least one ground truth or prediction.
    """
    num_k = len(units)
    first = next((u for cat_units in units for u in cat_units), None)
    num_a = first.gt_ignore.shape[0] if first is not None else len(AREA_LABELS)
    shape = (num_thresholds, len(recall_thresholds), num_k, num_a, len(max_dets))
    precision = -np.ones(shape)
    recall = -np.ones((num_thresholds, num_k, num_a, len(max_dets)))
    for k, cat_units in enumerate(units):
        if not cat_units:
            continue
        for a in range(num_a):
            num_positive = int(sum(np.count_nonzero(~u.gt_ignore[a]) for u in cat_units))
            if num_positive == 0:
                continue
            for m, max_det in enumerate(max_dets):
                scores = np.concatenate([u.dt_scores[:max_det] for u in cat_units])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([u.dt_matched[a, :, :max_det] for u in cat_units], axis=1)
                ignore = np.concatenate([u.dt_ignore[a, :, :max_det] for u in cat_units], axis=1)
                curve, final = _precision_recall_curves(
                    matched[:, order], ignore[:, order], num_positive, recall_thresholds
                )
                precision[:, :, k, a, m] = curve
                recall[:, k, a, m] = final
    return precision, recall


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    *,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> dict[str, float]:
    """The 12 statistics ``AP, AP50, ..., ARl`` as fractions, −1 where undefined.

    Slices are taken with the same fancy indexing as the official ``_summarize`` so the flattened
    element order — and hence the float sum — is identical.
    """
    stats: dict[str, float] = {}
    for name in STAT_NAMES:
        kind, iou, area, max_det = STAT_DEFINITIONS[name]
        aind = [i for i, label in enumerate(AREA_LABELS) if label == area]
        mind = [i for i, m in enumerate(max_dets) if m == max_det]
        values = precision if kind == "precision" else recall
        if iou is not None:
            values = values[np.where(iou == iou_thresholds)[0]]
        values = values[:, :, :, aind, mind] if kind == "precision" else values[:, :, aind, mind]
        stats[name] = _mean_defined(values)
    return stats


def category_ap(precision: np.ndarray, k: int) -> float:
    """AP of category column k: IoU .50:.95, area all, maxDets 100; −1 without ground truth."""
    return _mean_defined(precision[:, :, k, 0, -1])
