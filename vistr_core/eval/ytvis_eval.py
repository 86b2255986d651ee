"""The official YouTube-VIS metric (youtubevos/cocoapi ``ytvoseval``), written from its description.

    ground truth + results ──load/validate──▶ tracks per (video, category)
        ──video IoU──▶ [D, G] per unit ──greedy matching──▶ TP/FP/ignore per (area, IoU thr)
        ──accumulate──▶ precision [T, R, K, A, M], recall [T, K, A, M] ──summarize──▶ 12 stats

Differences from the official API are deliberate and only where it crashes or silently mis-scores:
inputs that do not fit the ground truth are refused with a clear error (the official API truncates
frame lists, prints "Mask sizes ... may not match!" or raises), an empty results list scores
0 wherever ground truth exists (−1 elsewhere) instead of raising IndexError, and a ground truth
without ``areas`` takes ``avg_area`` from its masks. On every input the official API accepts, the
numbers are the same to the last bit of the final division.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vistr_core.progress import ProgressCallback, ProgressUpdate, no_progress

from .accumulate import accumulate, category_ap, summarize
from .loading import GroundTruth, Track, load_ground_truth, load_results
from .matching import UnitMatches, match_unit
from .params import IOU_THRESHOLDS, MAX_DETS, STAT_NAMES
from .segment_output import segment_results
from .video_iou import video_iou


@dataclass
class UnitReport:
    """Diagnostics for one (video, category): how well its tracks were found.

    ``best_iou`` maps each ground-truth annotation id to the highest video IoU any prediction of
    that category reached (0.0 without predictions). ``tp/fp/fn`` at 0.50 and 0.75 come from the
    official matching (area all, maxDets 100). ``ap`` is the metric computed on this unit alone
    (IoU .50:.95), −1 when it has no non-crowd ground truth.
    """

    video_id: int
    video_name: str
    category_id: int
    category_name: str
    num_gt: int
    num_crowd: int
    num_dt: int
    best_iou: dict[int, float]
    tp50: int
    fp50: int
    fn50: int
    tp75: int
    fp75: int
    fn75: int
    top_fp_score: float | None
    ap: float

    @property
    def mean_best_iou(self) -> float | None:
        values = list(self.best_iou.values())
        return float(np.mean(values)) if values else None


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate_ytvis`.

    Attributes:
        stats: ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl`` (in that order)
            as fractions, −1 where undefined.
        per_category: category id → ``{"name", "AP", "num_gt", "num_dt"}`` (AP −1 without GT).
        precision: ``[T=10, R=101, K, A=4, M=3]``, recall ``[T, K, A, M]`` — the official arrays.
        units: per (video, category) diagnostics when asked for (``per_video=True``), else None.
        warnings: notes about inputs the official API scores in surprising ways.
    """

    stats: dict[str, float]
    per_category: dict[int, dict[str, Any]]
    precision: np.ndarray
    recall: np.ndarray
    num_videos: int
    num_gt_tracks: int
    num_predictions: int
    units: list[UnitReport] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The 12 statistics plus ``per_category`` ``{"<id>": {"name", "AP"}}``, JSON-ready."""
        out: dict[str, Any] = {name: float(self.stats[name]) for name in STAT_NAMES}
        out["per_category"] = {
            str(cid): {"name": row["name"], "AP": float(row["AP"])} for cid, row in self.per_category.items()
        }
        return out


def _sorted_predictions(dts: list[Track]) -> list[Track]:
    """Descending score, stable (mergesort), cut to maxDets[-1]."""
    order = np.argsort([-d.score for d in dts], kind="mergesort")
    return [dts[i] for i in order[: MAX_DETS[-1]]]


def _match(dts: list[Track], gts: list[Track]) -> tuple[UnitMatches, np.ndarray]:
    ious = video_iou(dts, gts)
    matches = match_unit(
        ious,
        np.array([d.score for d in dts], dtype=np.float64),
        np.array([d.avg_area for d in dts], dtype=np.float64),
        np.array([g.avg_area for g in gts], dtype=np.float64),
        np.array([g.iscrowd for g in gts], dtype=bool),
        np.array([g.id for g in gts], dtype=np.int64),
    )
    return matches, ious


def _unit_report(
    gt: GroundTruth, vid: int, cid: int, dts: list[Track], gts: list[Track], m: UnitMatches, ious: np.ndarray
) -> UnitReport:
    counts = {}
    for label, thr in (("50", 0.5), ("75", 0.75)):
        t = int(np.flatnonzero(IOU_THRESHOLDS == thr)[0])
        matched, ignore = m.dt_matched[0, t], m.dt_ignore[0, t]
        hit_gt = set(m.dt_gt[0, t][matched & ~ignore].tolist())
        counts[f"tp{label}"] = int(np.count_nonzero(matched & ~ignore))
        counts[f"fp{label}"] = int(np.count_nonzero(~matched & ~ignore))
        counts[f"fn{label}"] = sum(1 for j in range(len(gts)) if not m.gt_ignore[0, j] and j not in hit_gt)
    t50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    fp_scores = m.dt_scores[~m.dt_matched[0, t50] & ~m.dt_ignore[0, t50]]
    precision, _ = accumulate([[m]])
    best = ious.max(axis=0) if len(dts) else np.zeros(len(gts))
    return UnitReport(
        video_id=vid,
        video_name=gt.videos[vid].name,
        category_id=cid,
        category_name=gt.categories[cid],
        num_gt=sum(1 for g in gts if not g.iscrowd),
        num_crowd=sum(1 for g in gts if g.iscrowd),
        num_dt=len(dts),
        best_iou={g.id: float(best[j]) for j, g in enumerate(gts) if not g.iscrowd},
        top_fp_score=float(fp_scores.max()) if fp_scores.size else None,
        ap=category_ap(precision, 0),
        **counts,
    )


def _warnings(gt: GroundTruth) -> list[str]:
    notes = []
    if any(t.id == 0 for t in gt.tracks):
        notes.append(
            f"{gt.source}: an annotation has id 0; the official API counts predictions matched to it as "
            "false positives (scored the same way here); number annotations from 1"
        )
    return notes


def evaluate_ytvis(
    gt: str | os.PathLike[str] | Mapping[str, Any] | GroundTruth,
    results: str | os.PathLike[str] | Sequence[Any],
    *,
    per_video: bool = False,
    progress: ProgressCallback = no_progress,
) -> EvalResult:
    """Score YouTube-VIS results against a ground truth with the official metric.

    Args:
        gt: ground-truth JSON path, its loaded dict, or a :class:`GroundTruth`.
        results: results JSON path (or submission .zip), or the loaded list; or a ``vistr segment``
            output (results.json with its meta.json, a video's output folder, or a batch's), whose
            results are matched to the ground-truth video by their frames (see :mod:`.segment_output`).
        per_video: also build a :class:`UnitReport` per (video, category).
        progress: called once per scored video (task ``"eval"``).

    Raises:
        DatasetError / ResultsError: with one line naming file, video and frame.
    """
    truth = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    notes: list[str] = []
    segmented = segment_results(results, truth) if isinstance(results, str | os.PathLike) else None
    if segmented is not None:  # a vistr segment output: video ids checked against its frames
        source = str(results)
        results, notes = segmented
        predictions = load_results(results, truth, source=source)
    else:
        predictions = load_results(results, truth)
    gts_by_unit: dict[tuple[int, int], list[Track]] = defaultdict(list)
    dts_by_unit: dict[tuple[int, int], list[Track]] = defaultdict(list)
    for track in truth.tracks:
        gts_by_unit[track.video_id, track.category_id].append(track)
    for track in predictions:
        dts_by_unit[track.video_id, track.category_id].append(track)

    cat_ids = sorted(truth.categories)
    vid_ids = sorted(truth.videos)
    units: dict[int, list[UnitMatches]] = {cid: [] for cid in cat_ids}
    reports: list[UnitReport] = []
    for n, vid in enumerate(vid_ids):
        for cid in cat_ids:
            gts, dts = gts_by_unit.get((vid, cid), []), dts_by_unit.get((vid, cid), [])
            if not gts and not dts:
                continue
            dts = _sorted_predictions(dts)
            matches, ious = _match(dts, gts)
            units[cid].append(matches)
            if per_video:
                reports.append(_unit_report(truth, vid, cid, dts, gts, matches, ious))
        progress(
            ProgressUpdate(
                task="eval", completed=n + 1, total=len(vid_ids), description=truth.videos[vid].name
            )
        )

    precision, recall = accumulate([units[cid] for cid in cat_ids])
    per_category = {
        cid: {
            "name": truth.categories[cid],
            "AP": category_ap(precision, k),
            "num_gt": sum(1 for t in truth.tracks if t.category_id == cid and not t.iscrowd),
            "num_dt": sum(1 for t in predictions if t.category_id == cid),
        }
        for k, cid in enumerate(cat_ids)
    }
    progress(ProgressUpdate(task="eval", completed=len(vid_ids), total=len(vid_ids), done=True))
    return EvalResult(
        stats=summarize(precision, recall),
        per_category=per_category,
        precision=precision,
        recall=recall,
        num_videos=len(vid_ids),
        num_gt_tracks=len(truth.tracks),
        num_predictions=len(predictions),
        units=reports if per_video else None,
        warnings=_warnings(truth) + notes,
    )
