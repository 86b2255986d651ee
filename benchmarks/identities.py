"""How many ids does each object get in the tracks a user sees? (issue 17: "the rendered overlay shows
each object with its own stable colour and id").

The video AP forgives a fragment it can skip: a track that covers most of an object still matches it
at IoU 0.5, and a second track on the rest of it only costs a false positive. The overlay shows both,
in two colours. This measure follows each annotated object through its frames: in each frame where
it is visible, the shown track (score >= the render threshold) whose mask overlaps it most, at mask
IoU 0.5 or more, is the id it shows there (none if no shown track overlaps it that well). An object
*keeps one id* when it shows an id in at least one frame and the same id in every frame it shows one,
and that id is *its own* when no other object of the video shows it; an *id change* is a frame whose
id differs from the last id the object showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from pycocotools import mask as mask_utils

from vistr_core.config import LOW_SCORE
from vistr_core.eval.loading import Track, load_ground_truth, load_results

MATCH_IOU = 0.5
"""A shown track is an object's id in a frame only if their masks overlap at least this much."""


def ids_over_frames(obj: Track, shown: Sequence[Track]) -> list[int | None]:
    """Per frame of ``obj``'s video: the index in ``shown`` of the track that is its id there
    (largest mask IoU, at least :data:`MATCH_IOU`), None where it is absent or no track matches."""
    ids: list[int | None] = []
    for t, rle in enumerate(obj.frames):
        candidates = [(k, track.frames[t]) for k, track in enumerate(shown) if track.frames[t] is not None]
        if rle is None or not candidates:
            ids.append(None)
            continue
        iou = mask_utils.iou([c for _, c in candidates], [rle], [0])  # [candidates, 1]
        best = int(np.argmax(iou[:, 0]))
        ids.append(candidates[best][0] if iou[best, 0] >= MATCH_IOU else None)
    return ids


def id_changes(ids: Sequence[int | None]) -> int:
    """Frames whose id differs from the last id shown before them (frames without one are skipped)."""
    seen = [i for i in ids if i is not None]
    return sum(a != b for a, b in pairwise(seen))


def identity_summary(ground_truth: dict, results: list[dict], score_thr: float = LOW_SCORE) -> dict:
    """Over every annotated (non-crowd) object of ``ground_truth``: the share that keep one id, the
    share whose one id is their own (no other object shows it: a track that switched objects gives
    both one id, but not their own), ids and id changes per object, and the share of visible object
    frames that show an id.

    Args:
        ground_truth: a YouTube-VIS ground-truth dict; results: its predictions (a results list).
        score_thr: tracks scoring below this are hidden, as ``vistr render`` hides them by default.
    """
    gt = load_ground_truth(ground_truth)
    shown_by_video: dict[int, list[Track]] = {}
    for track in load_results(results, gt):
        if track.score >= score_thr:
            shown_by_video.setdefault(track.video_id, []).append(track)
    objects = [t for t in gt.tracks if not t.iscrowd]
    ids_of: dict[int, list[int | None]] = {}
    holders: dict[tuple[int, int], set[int]] = {}  # (video, shown track) -> objects it is the id of
    for obj in objects:
        ids_of[obj.id] = ids_over_frames(obj, shown_by_video.get(obj.video_id, []))
        for i in set(ids_of[obj.id]) - {None}:
            holders.setdefault((obj.video_id, i), set()).add(obj.id)
    kept = own = changes = ids_total = visible = followed = 0
    for obj in objects:
        ids = ids_of[obj.id]
        distinct = {i for i in ids if i is not None}
        kept += len(distinct) == 1
        own += len(distinct) == 1 and len(holders[obj.video_id, next(iter(distinct))]) == 1
        changes += id_changes(ids)
        ids_total += len(distinct)
        visible += sum(rle is not None for rle in obj.frames)
        followed += sum(i is not None for i in ids)
    n = max(len(objects), 1)
    return {
        "objects": len(objects),
        "one_id": round(kept / n, 4),
        "own_id": round(own / n, 4),
        "ids_per_object": round(ids_total / n, 3),
        "id_changes_per_object": round(changes / n, 3),
        "frames_with_id": round(followed / max(visible, 1), 4),
    }
