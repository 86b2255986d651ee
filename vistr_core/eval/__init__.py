"""Evaluation with the official YouTube-VIS metric (see :mod:`vistr_core.eval.ytvis_eval`)."""

from .loading import GroundTruth, Track, Video, load_ground_truth, load_results
from .params import AREA_LABELS, AREA_RANGES, IOU_THRESHOLDS, MAX_DETS, RECALL_THRESHOLDS, STAT_NAMES
from .report import PER_VIDEO_COLUMNS, per_video_rows, write_per_video_csv
from .ytvis_eval import EvalResult, UnitReport, evaluate_ytvis

__all__ = [
    "AREA_LABELS",
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "PER_VIDEO_COLUMNS",
    "RECALL_THRESHOLDS",
    "STAT_NAMES",
    "EvalResult",
    "GroundTruth",
    "Track",
    "UnitReport",
    "Video",
    "evaluate_ytvis",
    "load_ground_truth",
    "load_results",
    "per_video_rows",
    "write_per_video_csv",
]
