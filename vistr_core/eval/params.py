"""The fixed parameters of the official YouTube-VIS metric (ytvoseval ``Params.setDetParams``).

The thresholds are produced with the same ``np.linspace`` calls as the official API, so values like
``0.7000000000000001`` are bit-identical and IoU ties at a threshold resolve the same way.
"""

from __future__ import annotations

import numpy as np

#: IoU thresholds .50:.05:.95, T = 10.
IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
#: Recall sampling points 0:.01:1, R = 101.
RECALL_THRESHOLDS: np.ndarray = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
#: Inclusive ranges on a track's mean present-frame mask area (not COCO's 32²/96²).
AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0.0**2, 1e5**2),
    (0.0**2, 128.0**2),
    (128.0**2, 256.0**2),
    (256.0**2, 1e5**2),
)
AREA_LABELS: tuple[str, ...] = ("all", "small", "medium", "large")
#: Detections kept per (video, category), not per video.
MAX_DETS: tuple[int, ...] = (1, 10, 100)
#: The 12 summary statistics, in the order of the official ``stats`` array.
STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
#: What each statistic averages: (precision or recall, IoU threshold or None for all, area, maxDets).
STAT_DEFINITIONS: dict[str, tuple[str, float | None, str, int]] = {
    "AP": ("precision", None, "all", 100),
    "AP50": ("precision", 0.5, "all", 100),
    "AP75": ("precision", 0.75, "all", 100),
    "APs": ("precision", None, "small", 100),
    "APm": ("precision", None, "medium", 100),
    "APl": ("precision", None, "large", 100),
    "AR1": ("recall", None, "all", 1),
    "AR10": ("recall", None, "all", 10),
    "AR100": ("recall", None, "all", 100),
    "ARs": ("recall", None, "small", 100),
    "ARm": ("recall", None, "medium", 100),
    "ARl": ("recall", None, "large", 100),
}
