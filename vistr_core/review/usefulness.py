"""How useful a review ranking is: recall of the erroneous tracks in its top k, and false flags.

Over a set of videos with ground truth, every predicted track is labelled by
:func:`vistr_core.review.truth.label_tracks`; all tracks are pooled and ranked by their review
severity (unflagged tracks last). With k = the number of erroneous tracks, *recall@k* is the share
of erroneous tracks among the k most severe, the figure a reviewer who checks k tracks gets;
*false-flag share* is the share of correct tracks with at least one item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.masks import decode_segmentation
from .rank import ReviewConfig
from .report import review_results
from .truth import label_tracks


@dataclass
class Usefulness:
    """Pooled figures; ``labels`` counts predicted tracks per truth label."""

    tracks: int = 0
    erroneous: int = 0
    recall_at_k: float = 0.0
    false_flag_share: float = 0.0
    flagged_share: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)
    recall_by_label: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks,
            "erroneous": self.erroneous,
            "recall_at_k": round(self.recall_at_k, 4),
            "false_flag_share": round(self.false_flag_share, 4),
            "flagged_share": round(self.flagged_share, 4),
            "labels": dict(self.labels),
            "recall_by_label": {k: round(v, 4) for k, v in self.recall_by_label.items()},
        }


def result_masks(entry: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """bool [L, H, W] of one results entry."""
    empty = np.zeros(size, dtype=bool)
    return np.stack([empty if s is None else decode_segmentation(s, *size) for s in entry["segmentations"]])


def measure(
    videos: Iterable[tuple[list[dict[str, Any]], dict[str, Any] | None, list[tuple[int, np.ndarray]]]],
    *,
    config: ReviewConfig | None = None,
) -> Usefulness:
    """``videos``: (results, meta, ground truth ``[(category_id, masks [L, H, W])]``) per video."""
    pooled: list[tuple[float, str, bool]] = []  # severity, label, flagged
    for results, meta, truth in videos:
        size = truth[0][1].shape[1:] if truth else (int(meta["height"]), int(meta["width"]))
        report = review_results(results, meta, config=config)
        preds = [(r["track_id"], r["category_id"], r["score"], result_masks(r, size)) for r in results]
        labels = label_tracks(preds, truth)
        for track_id, label in labels.items():
            pooled.append((report.severity.get(track_id, 0.0), label, track_id in report.flagged))
    out = Usefulness(tracks=len(pooled), labels=Counter(label for _, label, _ in pooled))
    if not pooled:
        return out
    # a stable order: most severe first, ties broken by position in the pool (deterministic)
    order = sorted(range(len(pooled)), key=lambda i: (-pooled[i][0], i))
    wrong = [i for i in order if pooled[i][1] != "correct"]
    correct = [i for i in order if pooled[i][1] == "correct"]
    top = set(order[: len(wrong)])
    out.erroneous = len(wrong)
    out.recall_at_k = len(top & set(wrong)) / max(len(wrong), 1)
    out.false_flag_share = sum(pooled[i][2] for i in correct) / max(len(correct), 1)
    out.flagged_share = sum(p[2] for p in pooled) / len(pooled)
    for label in sorted(set(out.labels) - {"correct"}):
        members = [i for i in wrong if pooled[i][1] == label]
        out.recall_by_label[label] = len(top & set(members)) / len(members)
    return out
