"""The review thresholds: plain settings (no numpy), so the CLI can show them as option defaults
without importing the checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReviewConfig:
    """Thresholds of the checks (the CLI's options; defaults documented in the README)."""

    low_score: float = 0.65  # mean score below this
    score_drop: float = 0.3  # a fall of the per-frame score at least this large
    short_track: int = 5  # fewer frames with a mask than this
    min_gap: int = 1  # absences inside the track at least this long
    flicker_iou: float = 0.5  # IoU between consecutive masks below this
    area_jitter: float = 0.5  # |area change| / mean area between consecutive frames above this
    link_affinity: float = 0.6  # window links decided on an affinity below this
    class_share: float = 0.1  # at least this share of a track's frames voting for another class
    duplicate_iou: float = 0.5  # video IoU with a better-scoring track above this
    fragment_iou: float = 0.3  # IoU of one track's last mask and another's first mask above this
    fragment_gap: int = 8  # ... when the second starts at most this many frames after the first ends
    tiny_area: float = 0.001  # mask area below this fraction of the frame
    border_share: float = 0.5  # share of frames whose mask touches the frame border above this
    needs_review: float = 0.3  # tracks this severe are flagged (needs_review in CVAT, the table)
