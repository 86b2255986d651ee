"""``vistr review`` as a library call: read a segment output, rank its items, write review.json/csv.

Input: a ``vistr segment`` output folder (``results.json`` + ``meta.json``) or a results.json of
one video (with its meta.json beside it if there is one; without it, per-frame scores and classes,
link affinities and source frame numbers are unknown and those checks use what results.json has).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_text, refuse_overwrite
from ..errors import ResultsError
from .rank import ReviewConfig, ReviewItem, review_tracks, track_severity
from .signals import track_views


@dataclass(frozen=True)
class ReviewReport:
    """Items most severe first; ``frame_indices[k]`` is the source frame of results position k."""

    video: str
    num_tracks: int
    items: list[ReviewItem]
    severity: dict[int, float]
    frame_indices: list[int]
    config: ReviewConfig

    @property
    def flagged(self) -> set[int]:
        """Tracks at least ``config.needs_review`` severe (milder items are listed, not flagged)."""
        return {t for t, s in self.severity.items() if s >= self.config.needs_review}

    def ranked_tracks(self) -> list[int]:
        """Flagged track ids, most severe first."""
        return sorted(self.severity, key=lambda t: (-self.severity[t], t))

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "tracks": self.num_tracks,
            "flagged_tracks": len(self.flagged),
            "thresholds": asdict(self.config),
            "track_severity": {str(t): self.severity[t] for t in self.ranked_tracks()},
            "items": [self._item_json(item) for item in self.items],
        }

    def _item_json(self, item: ReviewItem) -> dict[str, Any]:
        frames = [self.frame_indices[p] for p in item.frames]
        return {
            "track_id": item.track_id,
            "category_id": item.category_id,
            "reason": item.reason,
            "severity": item.severity,
            "first_frame": min(frames, default=None),
            "last_frame": max(frames, default=None),
            "frames": frames,
            "detail": item.detail,
        }


def load_segment_output(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, Path]:
    """(results, meta or None, results.json path) of a segment folder or a results.json."""
    path = Path(path)
    results_path = path / "results.json" if path.is_dir() else path
    if not results_path.is_file():
        raise ResultsError(
            f"{results_path} does not exist; pass a `vistr segment` output folder or its results.json"
        )
    results = _read_json(results_path)
    if not isinstance(results, list):
        raise ResultsError(
            f"{results_path} is not a YouTube-VIS results list; pass a `vistr segment` results.json"
        )
    if len({r.get("video_id") for r in results}) > 1:
        raise ResultsError(f"{results_path} holds several videos; review takes one video's results at a time")
    meta_path = results_path.with_name("meta.json")
    meta = _read_json(meta_path) if meta_path.is_file() else None
    return results, meta, results_path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}; rerun `vistr segment`"
        ) from None


def review_results(
    results: list[dict[str, Any]],
    meta: dict[str, Any] | None,
    *,
    config: ReviewConfig | None = None,
    video: str = "",
) -> ReviewReport:
    """Rank what to check in one video's results (``meta``: its meta.json, or None)."""
    config = config or ReviewConfig()
    length = len(results[0]["segmentations"]) if results else int((meta or {}).get("frame_count", 0))
    size = _size(results, meta)
    views = track_views(results, meta, size)
    items = review_tracks(views, size, config)
    indices = list((meta or {}).get("frame_indices") or range(length))
    return ReviewReport(video, len(views), items, track_severity(items), indices, config)


def _size(results: list[dict[str, Any]], meta: dict[str, Any] | None) -> tuple[int, int]:
    if meta is not None:
        return int(meta["height"]), int(meta["width"])
    for entry in results:
        for segm in entry["segmentations"]:
            if isinstance(segm, dict) and "size" in segm:
                return int(segm["size"][0]), int(segm["size"][1])
    return 1, 1


def review_output(
    path: str | Path,
    *,
    config: ReviewConfig | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
) -> tuple[ReviewReport, Path]:
    """Review a segment output and write ``review.json`` and ``review.csv`` (beside results.json
    unless ``out_dir``); refuses to replace them unless ``force``."""
    results, meta, results_path = load_segment_output(path)
    folder = Path(out_dir) if out_dir is not None else results_path.parent
    for name in ("review.json", "review.csv"):
        refuse_overwrite(folder / name, force=force, what="review file")
    report = review_results(results, meta, config=config, video=results_path.parent.name)
    atomic_write_json(folder / "review.json", report.to_json(), indent=1)
    atomic_write_text(folder / "review.csv", review_csv(report))
    return report, folder


def review_csv(report: ReviewReport) -> str:
    """One row per item, most severe first."""
    buffer = io.StringIO()
    fields = [
        "rank",
        "track_id",
        "category_id",
        "reason",
        "severity",
        "first_frame",
        "last_frame",
        "frames",
        "detail",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for rank, item in enumerate(report.to_json()["items"], start=1):
        writer.writerow({**item, "rank": rank, "frames": " ".join(str(f) for f in item["frames"])})
    return buffer.getvalue()


def load_review(path: str | Path) -> dict[int, list[dict[str, Any]]]:
    """A review.json's items per track id (for render and CVAT export)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path} does not exist; run `vistr review` on the segment output first")
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ResultsError(f"{path} is not a review.json written by `vistr review`")
    out: dict[int, list[dict[str, Any]]] = {}
    for item in data["items"]:
        out.setdefault(int(item["track_id"]), []).append(item)
    return out
