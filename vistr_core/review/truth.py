"""Labelling predicted tracks against ground truth, to measure how useful a review ranking is.

Each predicted track of a video gets one label, with the official YouTube-VIS IoU (video IoU =
Σ_t |P ∩ G| / Σ_t |P ∪ G|, threshold 0.5) and the official greedy matching (predictions in
decreasing score, each ground-truth track taken once):

- ``correct``: matched to a ground-truth track of its category;
- ``wrong_class``: video IoU ≥ 0.5 with a ground-truth track of another category;
- ``id_switch``: follows one ground-truth track in some frames and another in others (per-frame
  IoU ≥ 0.5 with each for at least one frame);
- ``fragment``: follows one ground-truth track (per-frame IoU ≥ 0.5 in most of its frames) but
  covers too little of it in time to reach video IoU 0.5;
- ``false_positive``: anything else, including a second track on an already matched object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABELS = ("correct", "false_positive", "fragment", "id_switch", "wrong_class")
IOU_THRESHOLD = 0.5


def video_iou(a: np.ndarray, b: np.ndarray) -> float:
    """a, b: bool [L, H, W] → Σ intersection / Σ union (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def frame_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float [L]: per-frame IoU (0 where both are empty)."""
    inter = np.logical_and(a, b).sum((1, 2))
    union = np.logical_or(a, b).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def label_tracks(
    predictions: Sequence[tuple[int, int, float, np.ndarray]],
    ground_truth: Sequence[tuple[int, np.ndarray]],
) -> dict[int, str]:
    """Label every prediction ``(track_id, category_id, score, masks [L, H, W])`` of one video
    against the ground truth ``(category_id, masks [L, H, W])``."""
    labels: dict[int, str] = {}
    taken: set[int] = set()
    for track_id, category, _score, masks in sorted(predictions, key=lambda p: (-p[2], p[0])):
        ious = [video_iou(masks, g) for _, g in ground_truth]
        same = [k for k, (c, _) in enumerate(ground_truth) if c == category and k not in taken]
        best = max(same, key=lambda k: ious[k], default=None)
        if best is not None and ious[best] >= IOU_THRESHOLD:
            labels[track_id] = "correct"
            taken.add(best)
        elif any(iou >= IOU_THRESHOLD and ground_truth[k][0] == category for k, iou in enumerate(ious)):
            labels[track_id] = "false_positive"  # a duplicate of an already matched track
        elif any(iou >= IOU_THRESHOLD for iou in ious):
            labels[track_id] = "wrong_class"
        else:
            labels[track_id] = _temporal_label(masks, ground_truth)
    return labels


def _temporal_label(masks: np.ndarray, ground_truth: Sequence[tuple[int, np.ndarray]]) -> str:
    present = masks.any((1, 2))
    if not ground_truth or not present.any():
        return "false_positive"
    per_frame = np.stack([frame_ious(masks, g) for _, g in ground_truth])  # [G, L]
    followed = {
        int(k)
        for k, t in zip(per_frame.argmax(0), range(masks.shape[0]), strict=True)
        if per_frame[k, t] >= IOU_THRESHOLD
    }
    if len(followed) > 1:
        return "id_switch"
    if followed:
        (k,) = followed
        if (per_frame[k][present] >= IOU_THRESHOLD).mean() >= 0.5:
            return "fragment"
    return "false_positive"


def ranking_recall(labels: dict[int, str], ranked: Sequence[int]) -> tuple[int, int]:
    """(erroneous tracks among the top k of ``ranked``, k) with k = number of erroneous tracks."""
    wrong = {t for t, label in labels.items() if label != "correct"}
    return len(wrong & set(ranked[: len(wrong)])), len(wrong)
