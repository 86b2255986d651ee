"""Identities across windows: Hungarian linking on mask IoU, and per-track statistics.

Linking rule (consecutive windows share their overlapping frames; resuming a track after a gap is
:meth:`vistr_core.inference.segmenter.VideoSegmenter._resume_after_gaps`):

- A slot *takes part* in a window when its mask is non-empty in at least one real frame there.
- For each pair (slot i of the earlier window, slot j of the later one) the affinity is the mask IoU
  summed over the shared frames (sum of intersections / sum of unions, computed on the model's 1/4
  resolution masks) minus ``class_penalty`` when the two slots' majority classes differ, minus the
  colour penalty between slot i's track and slot j (:mod:`vistr_core.inference.appearance`).
- One-to-one assignment maximizing the total affinity plus ``slot_bonus`` for each pair of the same
  query slot, scaled by the agreement of the two sides' colours
  (``scipy.optimize.linear_sum_assignment``); a pair is linked only if its affinity, without the
  bonus, is at least ``link_iou``. Every slot left unlinked starts a new track.

Why the bonus: slot i of every window is the same learned instance query, and a query that found an
object tends to find it again in the next window. When the masks alone are ambiguous (a briefly
trained model gives one object to two slots, each covering part of it) the bonus keeps the track on
the slot that had it, instead of handing it to the copy; the copy keeps its own track and is ranked
or deduplicated as before. Measured on held-out long videos (README "Long videos").

A track's score is the mean of its per-frame scores over the frames it covers, as in the reference
for a single window, times ``coverage ** coverage_power`` (:func:`coverage_score`; 1 for a track in
every frame); its class is the most frequent per-frame class (ties: the lowest index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import masks_to_boxes


def majority_class(labels: Tensor) -> Tensor:
    """labels: [k, t] int64 → [k] most frequent value per row (ties: the lowest)."""
    if labels.shape[0] == 0:
        return labels.new_zeros(0)
    num = int(labels.max()) + 1
    counts = torch.zeros(labels.shape[0], num, dtype=torch.int64)
    counts.scatter_add_(1, labels.cpu(), torch.ones_like(labels.cpu()))
    return counts.argmax(1)


def sequence_iou(a: Tensor, b: Tensor) -> Tensor:
    """Video IoU between every pair of mask sequences.

    Args:
        a: [p, t, h, w] bool, b: [q, t, h, w] bool (the same t frames).
    Returns:
        [p, q] float: sum over frames of intersections / sum of unions (0 where both are empty).
    """
    fa = a.flatten(1).float()
    fb = b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def suppress_duplicates(masks: Tensor, scores: Tensor, iou_thr: float) -> list[int]:
    """Greedy non-maximum suppression of one window's instances on their video mask IoU.

    Instances are taken by decreasing score; one whose masks overlap an already kept instance by
    more than ``iou_thr`` (:func:`sequence_iou` over the window's frames) is dropped. These are the
    leads of :func:`merge_copies` with every instance in one class: an instance leads its group
    exactly when it overlaps no better-scoring lead.

    Args:
        masks: [k, t, h, w] bool; scores: [k] window scores (mean per-frame score).
    Returns:
        the kept indices, in increasing order.
    """
    one_class = torch.zeros(masks.shape[0], dtype=torch.int64)
    return [group[0] for group in merge_copies(masks, scores, one_class, iou_thr)]


def merge_copies(
    masks: Tensor,
    scores: Tensor,
    classes: Tensor,
    iou_thr: float,
    colours: Tensor | None = None,
    colour_tol: float = math.inf,
) -> list[list[int]]:
    """Groups of one window's instances that are copies of one object, for merging into one.

    A model trained briefly often splits one object over several slots of one class, each covering
    part of it; over a long video the slots then take turns on the object and its track breaks
    (README "Long videos"). Instances are taken by decreasing score; each still free instance of
    the same majority class whose masks overlap the taken one's by more than ``iou_thr``
    (:func:`sequence_iou` over the window's frames) and whose colour lies within ``colour_tol`` of
    its colour joins its group: copies of one object share its colour, while two look-alikes side by
    side, whose masks overlap where they touch, usually differ in colour.

    Args:
        masks: [k, t, h, w] bool; scores: [k] window scores; classes: [k] majority classes.
        colours: [k, 3] RGB of each instance (:func:`~vistr_core.inference.appearance.mask_colours`;
            NaN = unknown, never keeps two apart) or None (colour plays no part).
    Returns:
        the groups, each led by its best-scoring instance, ordered by that instance's index.
    """
    order = torch.argsort(scores.cpu(), descending=True, stable=True).tolist()
    iou = sequence_iou(masks, masks).cpu()
    if colours is not None and colour_tol < math.inf:
        apart = torch.nan_to_num(torch.cdist(colours.float(), colours.float()), nan=0.0) > colour_tol
        iou = iou.masked_fill(apart, 0.0)
    grouped: set[int] = set()
    groups: list[list[int]] = []
    for lead in order:
        if lead in grouped:
            continue
        group = [lead] + [
            j
            for j in order
            if j not in grouped
            and j != lead
            and classes[j] == classes[lead]
            and float(iou[lead, j]) > iou_thr
        ]
        grouped.update(group)
        groups.append(group)
    return sorted(groups, key=lambda g: g[0])


def mask_boxes(masks: Tensor) -> Tensor:
    """Pixel extents of non-empty masks: [k, h, w] bool (any device) → [k, 4] float on the CPU
    (x1, y1, x2 + 1, y2 + 1), so a one-pixel mask has area 1 and its box IoU is defined. On the
    CPU because a track keeps its last box for the rest of the video."""
    boxes = masks_to_boxes(masks).float().cpu()
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])


def link_slots(
    iou: Tensor,
    classes_a: Tensor,
    classes_b: Tensor,
    *,
    link_iou: float,
    class_penalty: float,
    same_slot: Tensor | None = None,
    slot_bonus: float = 0.0,
    penalty: Tensor | None = None,
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` linking earlier slots to later ones.

    Args:
        iou: [p, q] sequence IoU over the shared frames.
        classes_a: [p] majority class of each earlier slot; classes_b: [q] of each later slot.
        same_slot: [p, q] bool or float in [0, 1], where both come from the same query slot; such
            pairs get that share of ``slot_bonus`` in the assignment, not in the ``link_iou``
            threshold (module docstring).
        penalty: [p, q] to subtract from the affinity as well (the colour penalty), or None.
    """
    if iou.numel() == 0:
        return []
    differ = (classes_a[:, None] != classes_b[None, :]).float()
    affinity = iou.cpu().float() - class_penalty * differ
    if penalty is not None:
        affinity = affinity - penalty.cpu().float()
    affinity = affinity.numpy()
    preference = affinity if same_slot is None else affinity + slot_bonus * same_slot.cpu().float().numpy()
    rows, cols = linear_sum_assignment(preference, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if affinity[i, j] >= link_iou]


@dataclass
class TrackStats:
    """What is known about one track so far (ids are provisional until :meth:`TrackBook.finalize`)."""

    id: int
    first_position: int = -1
    last_position: int = -1
    covered: int = 0
    nonempty: int = 0
    score_sum: float = 0.0
    class_counts: dict[int, int] = field(default_factory=dict)

    def add_frame(self, position: int, score: float, label: int, nonempty: bool) -> None:
        """Count one covered frame; first/last positions track the frames with a non-empty mask."""
        if nonempty:
            self.first_position = position if self.first_position < 0 else self.first_position
            self.last_position = position
            self.nonempty += 1
        self.covered += 1
        self.score_sum += score
        self.class_counts[label] = self.class_counts.get(label, 0) + 1

    @property
    def score(self) -> float:
        return self.score_sum / max(self.covered, 1)

    @property
    def label(self) -> int:
        """Most frequent per-frame class; ties go to the lowest index (like np.bincount().argmax())."""
        return min(self.class_counts, key=lambda c: (-self.class_counts[c], c))


@dataclass(frozen=True)
class FinalTrack:
    """A kept track: ``track_id`` is its output id (1..K in order of first appearance).

    ``first_position``/``last_position``: stream positions of its first and last non-empty mask;
    ``num_frames``: how many frames have a non-empty mask."""

    track_id: int
    provisional_id: int
    label: int
    score: float
    first_position: int
    last_position: int
    num_frames: int


class TrackBook:
    """Assigns provisional track ids to window slots and accumulates per-track statistics."""

    def __init__(self) -> None:
        self.tracks: dict[int, TrackStats] = {}

    def new_track(self) -> int:
        track_id = len(self.tracks) + 1
        self.tracks[track_id] = TrackStats(track_id)
        return track_id

    def finalize(
        self,
        *,
        score_thr: float = 0.0,
        min_track_len: int = 1,
        max_tracks: int | None = None,
        video_frames: int | None = None,
        coverage_power: float = 0.0,
    ) -> list[FinalTrack]:
        """Tracks kept by the filters, numbered 1..K by first appearance.

        A track's final score is its mean per-frame score times ``coverage ** coverage_power``,
        where ``coverage`` is the share of the ``video_frames`` frames in which it has a non-empty
        mask (:func:`coverage_score`). A track needs a non-empty mask in at least
        ``max(1, min_track_len)`` frames and a final score of at least ``score_thr``; of those, the
        ``max_tracks`` best-scoring are kept.
        """
        scores = {
            t.id: coverage_score(t.score, t.nonempty, video_frames, coverage_power)
            for t in self.tracks.values()
        }
        kept = [
            t
            for t in self.tracks.values()
            if t.nonempty >= max(1, min_track_len) and scores[t.id] >= score_thr
        ]
        if max_tracks is not None:
            kept = sorted(kept, key=lambda t: (-scores[t.id], t.id))[:max_tracks]
        kept.sort(key=lambda t: (t.first_position, t.id))
        return [
            FinalTrack(k + 1, t.id, t.label, scores[t.id], t.first_position, t.last_position, t.nonempty)
            for k, t in enumerate(kept)
        ]


def coverage_score(mean_score: float, frames: int, video_frames: int | None, power: float) -> float:
    """``mean_score * (frames / video_frames) ** power``: a track's confidence for the whole video.

    The YouTube-VIS metric matches a track to an object over the whole video, so a track that
    covers a tenth of a long video is a miss wherever its object lasts longer (the usual case for
    pieces of a track that lost its object for a while). Ranking such pieces below whole tracks
    raised long-video AP 2x on held-out synthetic videos (README "Long videos"). A track covering
    every frame, as every track of a one-window video does, keeps its mean score exactly.
    """
    if power == 0.0 or not video_frames:
        return mean_score
    return mean_score * min(frames / video_frames, 1.0) ** power


def active_slots(mask_logits: Tensor, num_real: int, logit_thr: float) -> np.ndarray:
    """Indices of slots whose mask is non-empty in some real frame.

    mask_logits: [n, T, h, w]; only the first ``num_real`` frames count.
    """
    present = (mask_logits[:, :num_real] > logit_thr).flatten(1).any(1)
    return np.flatnonzero(present.cpu().numpy())
