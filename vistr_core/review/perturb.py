"""Imperfect predictions made from ground truth, with the mistakes a VIS model makes, injected.

For measuring review rankings fast and reproducibly (no model, no training): each ground-truth
track becomes a predicted track with realistic noise (a pixel of mask jitter, scores around 0.8, an
occasional uncertain frame of another class, window-link affinities of 0.55-0.95) and, with some
probability, one mistake:

- ``fragment``: the track breaks in two at a window boundary (the second part gets a new id);
- ``id_switch``: two tracks exchange objects at a window boundary, linked with a middling affinity (0.45-0.7);
- ``wrong_class``: the track takes another category, uncertain frames voting for the true one,
  scores lower;
- ``flicker``: the mask vanishes or shrinks to a sliver in some frames;

plus 0-2 ``false_positive`` tracks per video on background blobs with lower, overlapping scores.
The output has the shape of a ``vistr segment`` folder: results entries and a meta dict with
``frame_scores``, ``frame_categories`` and ``links``. Which labels the truth gives is decided
afterwards by :func:`vistr_core.review.truth.label_tracks`, not by what was injected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..ops.masks import encode_masks

WINDOW, OVERLAP = 6, 2
MISTAKES = {"fragment": 0.12, "id_switch": 0.12, "wrong_class": 0.12, "flicker": 0.1}


@dataclass
class _Track:
    category: int
    masks: np.ndarray  # bool [L, H, W]
    scores: np.ndarray  # float [L]
    classes: np.ndarray  # int [L]
    links: list[tuple[int, float]]  # (position, affinity)


def perturbed_predictions(
    ground_truth: Sequence[tuple[int, np.ndarray]], categories: Sequence[int], rng: np.random.Generator
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(results entries, meta dict) of one video from its ``(category_id, masks [L, H, W])`` tracks."""
    length, height, width = ground_truth[0][1].shape if ground_truth else (1, 1, 1)
    tracks = [_base(c, m.copy(), categories, rng) for c, m in ground_truth]
    out: list[_Track] = []
    k = 0
    while k < len(tracks):
        mistake = rng.choice([*MISTAKES, "none"], p=[*MISTAKES.values(), 1 - sum(MISTAKES.values())])
        track = tracks[k]
        if mistake == "id_switch" and k + 1 < len(tracks) and _switch(track, tracks[k + 1], rng):
            out += [track, tracks[k + 1]]
            k += 2
            continue
        if mistake == "fragment":
            out += _fragment(track, rng)
        else:
            if mistake == "wrong_class":
                _wrong_class(track, categories, rng)
            elif mistake == "flicker":
                _flicker(track, rng)
            out.append(track)
        k += 1
    for _ in range(int(rng.integers(0, 3))):
        out.append(_false_positive(length, (height, width), categories, rng))
    return _as_output([t for t in out if t.masks.any()], (height, width))


def _boundaries(length: int) -> list[int]:
    return list(range(WINDOW - OVERLAP, length - OVERLAP, WINDOW - OVERLAP))


def _base(category: int, masks: np.ndarray, categories: Sequence[int], rng: np.random.Generator) -> _Track:
    kernel = np.ones((3, 3), np.uint8)
    for t in range(len(masks)):  # one pixel of boundary noise, as a model's masks have
        op = rng.choice(["none", "dilate", "erode"], p=[0.8, 0.1, 0.1])
        if op != "none" and masks[t].any():
            fn = cv2.dilate if op == "dilate" else cv2.erode
            masks[t] = fn(masks[t].astype(np.uint8), kernel).astype(bool)
    scores = np.clip(rng.normal(0.8, 0.08), 0.3, 0.99) + rng.normal(0, 0.05, len(masks))
    classes = np.full(len(masks), category)
    uncertain = rng.random(len(masks)) < 0.04
    classes[uncertain] = rng.choice(categories, int(uncertain.sum()))
    present = masks.any((1, 2))
    links = [
        (b, float(rng.uniform(0.55, 0.95)))
        for b in _boundaries(len(masks))
        if present[b - OVERLAP : b].any() and present[b : b + OVERLAP].any()
    ]
    return _Track(category, masks, np.clip(scores, 0.01, 0.99), classes, links)


def _fragment(track: _Track, rng: np.random.Generator) -> list[_Track]:
    present = np.flatnonzero(track.masks.any((1, 2)))
    cuts = [b for b in _boundaries(len(track.masks)) if present.size and present[0] + 2 < b < present[-1] - 1]
    if not cuts:
        return [track]
    cut = int(rng.choice(cuts))
    second = _Track(track.category, track.masks.copy(), track.scores.copy(), track.classes.copy(), [])
    track.masks[cut:] = False
    second.masks[:cut] = False
    second.links = [(p, a) for p, a in track.links if p > cut]
    track.links = [(p, a) for p, a in track.links if p < cut]
    return [track, second]


def _switch(a: _Track, b: _Track, rng: np.random.Generator) -> bool:
    both = a.masks.any((1, 2)) & b.masks.any((1, 2))
    cuts = [x for x in _boundaries(len(both)) if both[x - 1] and both[x]]
    if not cuts:
        return False
    cut = int(rng.choice(cuts))
    for name in ("masks", "scores", "classes"):
        tail = getattr(a, name)[cut:].copy()
        getattr(a, name)[cut:] = getattr(b, name)[cut:]
        getattr(b, name)[cut:] = tail
    for track in (a, b):
        track.links = [(p, a_) for p, a_ in track.links if p != cut] + [(cut, float(rng.uniform(0.45, 0.7)))]
    return True


def _wrong_class(track: _Track, categories: Sequence[int], rng: np.random.Generator) -> None:
    others = [c for c in categories if c != track.category]
    if not others:
        return
    true = track.category
    track.category = int(rng.choice(others))
    votes = rng.random(len(track.classes)) < rng.uniform(0.15, 0.4)
    track.classes = np.where(votes, true, track.category)
    track.scores = np.clip(track.scores - rng.uniform(0.1, 0.3), 0.01, 0.99)


def _flicker(track: _Track, rng: np.random.Generator) -> None:
    present = np.flatnonzero(track.masks.any((1, 2)))
    for t in rng.choice(present, size=min(len(present), int(rng.integers(1, 4))), replace=False):
        if rng.random() < 0.5:
            track.masks[t] = False
        else:
            track.masks[t] = cv2.erode(track.masks[t].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(
                bool
            )


def _false_positive(
    length: int, size: tuple[int, int], categories: Sequence[int], rng: np.random.Generator
) -> _Track:
    masks = np.zeros((length, *size), dtype=bool)
    span = int(rng.integers(2, max(3, length // 2)))
    start = int(rng.integers(0, max(1, length - span)))
    cx, cy = rng.uniform(0.1, 0.9) * size[1], rng.uniform(0.1, 0.9) * size[0]
    radius = rng.uniform(0.04, 0.12) * min(size)
    dx, dy = rng.normal(0, 1.5, 2)
    for t in range(start, min(length, start + span)):
        canvas = np.zeros(size, np.uint8)
        center = (int(cx + dx * (t - start)), int(cy + dy * (t - start)))
        cv2.circle(canvas, center, max(int(radius * rng.uniform(0.8, 1.2)), 1), 1, -1)
        masks[t] = canvas.astype(bool)
    category = int(rng.choice(categories))
    classes = np.where(rng.random(length) < 0.25, rng.choice(categories, length), category)
    scores = np.clip(rng.normal(0.6, 0.12) + rng.normal(0, 0.08, length), 0.05, 0.99)
    return _Track(category, masks, scores, classes, [])


def _as_output(tracks: list[_Track], size: tuple[int, int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results, metas, links = [], [], []
    for k, track in enumerate(tracks, start=1):
        present = track.masks.any((1, 2))
        rles = encode_masks(track.masks)
        results.append(
            {
                "video_id": 1,
                "category_id": int(track.category),
                "score": round(float(track.scores[present].mean()), 6),
                "segmentations": [r if p else None for r, p in zip(rles, present, strict=True)],
                "track_id": k,
            }
        )
        metas.append(
            {
                "track_id": k,
                "frame_scores": [
                    round(float(s), 4) if p else None for s, p in zip(track.scores, present, strict=True)
                ],
                "frame_categories": [
                    int(c) if p else None for c, p in zip(track.classes, present, strict=True)
                ],
            }
        )
        links += [
            {"track_id": k, "position": p, "frame": p, "kind": "window", "affinity": round(a, 4)}
            for p, a in track.links
        ]
    length = tracks[0].masks.shape[0] if tracks else 0
    meta = {
        "height": size[0],
        "width": size[1],
        "frame_indices": list(range(length)),
        "tracks": metas,
        "links": links,
    }
    return results, meta
