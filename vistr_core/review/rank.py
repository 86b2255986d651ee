"""From signals to ranked review items: which tracks and frames a person should look at first.

Each check flags a track (or a frame range of it) with a ``reason`` and a ``severity`` in [0, 1]:
the reason's weight (how often such a flag is a real mistake: an identity switch outranks a mask
touching the border) scaled by how far past its threshold the evidence is, ``weight · (0.3 + 0.7 ·
strength)``. A track's severity is its worst item's, plus a little for the others
(:func:`track_severity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import signals
from .config import ReviewConfig
from .signals import TrackView

WEIGHTS = {
    "low_link_affinity": 0.9,
    "class_change": 0.8,
    "fragment": 0.8,
    "fragment_partner": 0.35,
    "duplicate": 0.8,
    "low_score": 0.7,
    "short_track": 0.6,
    "score_drop": 0.5,
    "flicker": 0.35,
    "gap": 0.3,
    "tiny_mask": 0.25,
    "area_jitter": 0.2,
    "border": 0.1,
}


@dataclass(frozen=True)
class ReviewItem:
    """One flag: ``frames`` are result positions (0..L-1) to look at, first to last."""

    track_id: int
    category_id: int
    reason: str
    severity: float
    frames: tuple[int, ...]
    detail: str


def _item(view: TrackView, reason: str, strength: float, frames: Sequence[int], detail: str) -> ReviewItem:
    severity = WEIGHTS[reason] * (0.3 + 0.7 * float(np.clip(strength, 0.0, 1.0)))
    return ReviewItem(
        view.track_id, view.category_id, reason, round(severity, 4), tuple(int(f) for f in frames), detail
    )


def score_items(view: TrackView, cfg: ReviewConfig) -> list[ReviewItem]:
    present = view.present
    scores = [s for s in view.scores if s is not None] or [view.score]
    items = []
    mean, low = float(np.mean(scores)), float(np.min(scores))
    if mean < cfg.low_score:
        strength = (cfg.low_score - mean) / 0.3
        items.append(_item(view, "low_score", strength, present, f"mean score {mean:.2f}, min {low:.2f}"))
    drop, at = signals.largest_drop(scores)
    if drop >= cfg.score_drop:
        frames = [t for t in present if view.scores[t] is not None][at : at + 1]
        items.append(_item(view, "score_drop", drop, frames, f"score falls by {drop:.2f}"))
    return items


def presence_items(view: TrackView, cfg: ReviewConfig, size: tuple[int, int]) -> list[ReviewItem]:
    present = view.present
    items = []
    if len(present) < cfg.short_track:
        strength = 1.0 - len(present) / cfg.short_track
        items.append(_item(view, "short_track", strength, present, f"a mask in {len(present)} frame(s)"))
    holes = [(a, b) for a, b in signals.gaps(view) if b - a + 1 >= cfg.min_gap]
    if holes:
        longest = max(b - a + 1 for a, b in holes)
        frames = [t for a, b in holes for t in (a - 1, b + 1)]
        items.append(
            _item(view, "gap", longest / 10, frames, f"{len(holes)} gap(s), longest {longest} frame(s)")
        )
    areas = signals.areas(view)
    tiny = [int(t) for t in present if areas[t] < cfg.tiny_area * size[0] * size[1]]
    if tiny:
        items.append(_item(view, "tiny_mask", len(tiny) / len(present), tiny, f"{len(tiny)} tiny mask(s)"))
    border = [int(t) for t in present if signals.touches_border(view.rles[t], size)]
    if len(present) and len(border) / len(present) > cfg.border_share:
        items.append(
            _item(
                view, "border", 0.0, border[:1] + border[-1:], f"touches the border in {len(border)} frames"
            )
        )
    return items


def mask_items(view: TrackView, cfg: ReviewConfig) -> list[ReviewItem]:
    items = []
    pairs = signals.consecutive_iou(view)
    bad = [(t, iou) for t, iou in pairs if iou < cfg.flicker_iou]
    if bad:
        worst = min(iou for _, iou in bad)
        strength = max(len(bad) / max(len(pairs), 1), 1.0 - worst / cfg.flicker_iou)
        items.append(
            _item(
                view, "flicker", strength, [t for t, _ in bad], f"{len(bad)} jump(s), IoU down to {worst:.2f}"
            )
        )
    areas = signals.areas(view)
    jumps = []
    for t, _ in pairs:
        rel = abs(areas[t] - areas[t - 1]) / max((areas[t] + areas[t - 1]) / 2, 1.0)
        if rel > cfg.area_jitter:
            jumps.append((t, rel))
    if jumps:
        items.append(
            _item(
                view,
                "area_jitter",
                max(r for _, r in jumps) - cfg.area_jitter,
                [t for t, _ in jumps],
                f"area changes up to {max(r for _, r in jumps):.0%} between frames",
            )
        )
    return items


def class_items(view: TrackView, cfg: ReviewConfig) -> list[ReviewItem]:
    changes = signals.class_changes(view)
    if not changes:
        return []
    classes = [c for t, c in enumerate(view.classes) if c is not None and view.rles[t] is not None]
    minority = 1.0 - max(classes.count(c) for c in set(classes)) / len(classes)
    if minority < cfg.class_share:  # a single uncertain frame is not worth a look
        return []
    detail = f"class changes {len(changes)} time(s); {minority:.0%} of frames not {view.category_id}"
    return [_item(view, "class_change", 2 * minority, changes, detail)]


def link_items(view: TrackView, cfg: ReviewConfig) -> list[ReviewItem]:
    weak = [link for link in view.links if link["affinity"] < cfg.link_affinity]
    if not weak:
        return []
    worst = min(link["affinity"] for link in weak)
    strength = (cfg.link_affinity - worst) / 0.2
    detail = f"{len(weak)} weak link(s), affinity down to {worst:.2f}: a possible identity switch"
    return [_item(view, "low_link_affinity", strength, [int(link["position"]) for link in weak], detail)]


def pair_items(views: Sequence[TrackView], cfg: ReviewConfig) -> list[ReviewItem]:
    """Duplicates (two tracks on one object) and fragments (one object's track broken in two)."""
    items = []
    for i, a in enumerate(views):
        for b in views[i + 1 :]:
            iou, both = signals.pair_overlap(a, b)
            if iou > cfg.duplicate_iou:
                worse = a if (a.score, -a.track_id) < (b.score, -b.track_id) else b
                other = b if worse is a else a
                items.append(
                    _item(worse, "duplicate", iou, both, f"IoU {iou:.2f} with track {other.track_id}")
                )
            for first, second in ((a, b), (b, a)):
                items += _fragment(first, second, cfg)
    return items


def _fragment(first: TrackView, second: TrackView, cfg: ReviewConfig) -> list[ReviewItem]:
    p, q = first.present, second.present
    if not len(p) or not len(q) or q[0] <= p[-1] or q[0] - p[-1] - 1 > cfg.fragment_gap:
        return []
    iou = signals.mask_iou(second.rles[q[0]], first.rles[p[-1]])
    if iou < cfg.fragment_iou:
        return []
    frames = [int(p[-1]), int(q[0])]
    # the shorter piece is the likelier error (the longer may still match the object on its own);
    # the longer one is flagged lightly so the reviewer who merges them sees both
    short, long_ = (first, second) if len(p) < len(q) else (second, first)
    detail = f"track {first.track_id} ends and track {second.track_id} starts {q[0] - p[-1] - 1} frame(s) later, IoU {iou:.2f}"
    return [
        _item(short, "fragment", iou, frames, detail),
        _item(long_, "fragment_partner", iou, frames, detail),
    ]


def review_tracks(views: Sequence[TrackView], size: tuple[int, int], cfg: ReviewConfig) -> list[ReviewItem]:
    """Every item of every track, most severe first (ties: track id, reason)."""
    items = pair_items(views, cfg)
    for view in views:
        items += score_items(view, cfg) + presence_items(view, cfg, size) + mask_items(view, cfg)
        items += class_items(view, cfg) + link_items(view, cfg)
    return sorted(items, key=lambda it: (-it.severity, it.track_id, it.reason))


def track_severity(items: Sequence[ReviewItem]) -> dict[int, float]:
    """Per track: its most severe item, plus a tenth of the others' ``1 − Π(1 − s)``, so that
    corroborating evidence breaks ties without many weak flags outranking one strong one."""
    per_track: dict[int, list[float]] = {}
    for item in items:
        per_track.setdefault(item.track_id, []).append(item.severity)
    out = {}
    for track_id, severities in per_track.items():
        top, *rest = sorted(severities, reverse=True)
        out[track_id] = round(top + 0.1 * (1.0 - float(np.prod([1.0 - s for s in rest]))), 4)
    return out
