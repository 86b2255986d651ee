"""Streaming segmentation of one video: frames in, per-window results with track ids out.

>>> segmenter = VideoSegmenter(model, infer=InferConfig(overlap=9))
>>> with open_video("clip.mp4") as video:
...     for result in segmenter.stream(video):          # one WindowResult per window
...         for frame in result.frames:                 # the frames this window outputs
...             frame.masks, frame.track_ids, frame.scores
>>> tracks = segmenter.tracks()                         # final ids, classes and scores

Frames are decoded and preprocessed in a background thread while the model runs; at most one
window (plus ``window_batch`` windows being predicted) is held, so memory does not grow with the
video's length. Ids in :class:`FrameResult` are provisional (every slot that starts a track gets
one); :meth:`VideoSegmenter.tracks` applies the score / length / count filters and maps them to
the final ids 1..K.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou

from ..config import InferConfig
from ..data.prefetch import prefetch
from ..data.transforms import preprocess_frames
from ..engine.device import resolve_precision, select_device
from .appearance import TrackColours, colour_agreement, mask_colours
from .predictor import WindowPrediction, WindowPredictor, mask_logit_threshold, upsample_masks
from .relink import Relinking, WindowEntry, linked_id, relink
from .tracker import (
    FinalTrack,
    TrackBook,
    TrackStats,
    active_slots,
    link_slots,
    majority_class,
    mask_boxes,
    merge_copies,
    sequence_iou,
    suppress_duplicates,
)
from .windows import Window, check_overlap, default_overlap, iter_windows, ownership_cut

NULL_FRAME_SCORE = 0.001
"""Frames where a track's score is below this get a null segmentation (the reference's rule)."""

PREFETCH_FRAMES = 8

MIN_DEFAULT_GAP = 24
"""Frames a lost track waits to be resumed, at least (about a second of video)."""


RELINK_SPAN = 3
"""Windows on each side of a colour step that re-linking compares (:mod:`vistr_core.inference.relink`):
one window's colour may be a mixture where look-alikes cross, the median of three outvotes it."""

RELINK_JOIN_SPAN = 6
"""Windows on each side of a seam whose median colours re-linking compares to join two pieces: a
crossing taints a track's colour for a few windows (its mask covers part of the other object), and
six outvote them where three did not (long-video AP 0.448 -> 0.465 and 0.455 -> 0.460 on two
quickstart models; README "Long videos")."""

RELINK_GAP_FACTOR = 4
"""Re-linking joins pieces up to this many times ``max_gap`` frames apart (96 by default): seeing
both pieces whole, it can wait longer for an object than the window rule, which decides at once."""

RELINK_GIOU = -0.5
"""Smallest generalized box IoU between a piece's last mask and the next one's first that
re-linking joins at the next frame: looser than resuming (``resume_iou``), because the gaps it
bridges are longer; looser still across longer gaps (:func:`vistr_core.inference.relink.giou_floor`)."""

RELINK_OVERLAP = 2
"""Windows by which a piece may start before the one it continues ends: where two slots hand an
object over, both cover it for a window or two."""

EMPTY_LOGIT = -1.0e4
"""Mask logit of a slot folded into another (:meth:`VideoSegmenter._merged`): below any threshold."""


def default_max_gap(num_frames: int) -> int:
    """How long a lost track can be resumed by default: T frames, at least :data:`MIN_DEFAULT_GAP`.

    For short windows (the tiny model's T = 4) a gap of T frames is shorter than most occlusions;
    on long held-out videos resuming within 24 frames doubled the video AP of 4 frames (README
    "Long videos").
    """
    return max(num_frames, MIN_DEFAULT_GAP)


class FrameLike(Protocol):
    """What :meth:`VideoSegmenter.stream` reads from each frame (``video_io.Frame`` fits)."""

    index: int
    timestamp: float
    name: str
    image: np.ndarray


@dataclass(frozen=True)
class FrameInfo:
    """Where a processed frame comes from: ``position`` counts processed frames from 0,
    ``index`` is the true frame index in the source."""

    position: int
    index: int
    timestamp: float
    name: str


@dataclass(frozen=True)
class FrameResult:
    """The k tracks present in one frame (provisional ids; see :meth:`VideoSegmenter.tracks`).

    Attributes:
        track_ids: [k] provisional track ids.
        labels: [k] int64 per-frame class index (contiguous model index).
        scores: [k] float32 per-frame score.
        masks: [k, H, W] bool at the original frame size.
    """

    frame: FrameInfo
    track_ids: tuple[int, ...]
    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray


@dataclass(frozen=True)
class WindowResult:
    """The frames window ``window`` outputs (those nearer its centre than any other window's)."""

    window: int
    frames: list[FrameResult]


@dataclass(frozen=True)
class _LastSeen:
    """Where a track was last seen, to resume the track after a gap.

    ``box``: [4] float pixel extents (:func:`mask_boxes`) of its last non-empty mask, at the model's
    1/4 resolution; ``position``: that frame's stream position.
    """

    label: int
    box: Tensor
    position: int


@dataclass(frozen=True)
class LinkRecord:
    """One continuation of a track: by window overlap (``kind`` "window", at the later window's
    first frame) or after a gap (``kind`` "gap", at the resumed mask's frame).

    ``affinity`` is what the link was decided on: ``iou`` (mask IoU over the shared frames, or the
    generalized box IoU of the last and first masks around a gap) minus the class penalty when the
    classes differ and the colour penalty. ``vistr review`` reads
    low affinities as likely identity switches.
    """

    track_id: int
    position: int
    kind: str
    iou: float
    affinity: float


@dataclass
class _Pending:
    """A predicted window whose output frames are not final until the next window is known."""

    window: Window
    prediction: WindowPrediction
    slots: np.ndarray
    classes: Tensor  # [k] majority class of each kept slot, what the next window links against
    track_ids: list[int]
    first_output: int
    size: tuple[int, int]


class VideoSegmenter:
    """Windows, predicts, links and emits one video at a time. Reusable across videos.

    ``model``: a VisTR in eval mode with ``.config``, ``.categories`` and ``.data_config`` (what
    :func:`vistr_core.load_model` returns). ``device``: where to run it (the model is moved there);
    None keeps the model's device.
    """

    def __init__(
        self, model: nn.Module, *, infer: InferConfig | None = None, device: str | torch.device | None = None
    ) -> None:
        self.model = model
        self.infer = infer or InferConfig()
        if device is not None:  # else the model stays where it is
            model.to(select_device(device) if isinstance(device, str) else device)
        self.device = next(model.parameters()).device
        self.num_frames = int(model.config.num_frames)
        overlap = self.infer.overlap if self.infer.overlap is not None else default_overlap(self.num_frames)
        self.overlap = check_overlap(overlap, self.num_frames)
        self.logit_thr = mask_logit_threshold(self.infer.mask_thr)
        self.precision = resolve_precision(self.infer.precision, self.device)
        self.predictor = WindowPredictor(model, device=self.device, dtype=self.precision.dtype)
        self.data_config = model.data_config
        self.max_gap = (
            self.infer.max_gap if self.infer.max_gap is not None else default_max_gap(self.num_frames)
        )
        self.book = TrackBook()
        self.colours = TrackColours()
        self.last_seen: dict[int, _LastSeen] = {}
        self.frames: list[FrameInfo] = []
        self.size: tuple[int, int] | None = None
        self.model_calls = 0
        self.links: list[LinkRecord] = []  # provisional ids; see links()
        self.frame_stats: dict[int, dict[int, tuple[float, int]]] = {}  # id -> position -> score, label
        self.history: dict[int, list[WindowEntry]] = {}  # what re-linking reads (relink_colour)
        self.frame_log: dict[int, list[tuple[int, float, int, bool]]] = {}  # id -> its add_frame calls
        self.relinking: Relinking | None = None

    def stream(self, frames: Iterable[FrameLike]) -> Iterator[WindowResult]:
        """Segment a stream of frames, yielding each window's output frames as soon as they are final.

        Frames must all have one size. Calling again starts a new video (ids restart at 1).
        """
        self.book, self.last_seen, self.frames, self.size = TrackBook(), {}, [], None
        self.colours = TrackColours()
        self.links, self.frame_stats = [], {}
        self.history, self.frame_log, self.relinking = {}, {}, None
        items = prefetch(self._prepared(frames), depth=PREFETCH_FRAMES)
        pending: _Pending | None = None
        try:
            for batch in _batched(
                iter_windows(items, self.num_frames, self.overlap), self.infer.window_batch
            ):
                predictions = self._predict(batch)
                for window, prediction in zip(batch, predictions, strict=True):
                    current = self._link(pending, window, prediction)
                    if pending is not None:
                        yield self._emit(pending, ownership_cut(pending.window, window))
                        current.first_output = ownership_cut(pending.window, window) + 1
                    pending = current
            if pending is not None:
                yield self._emit(pending, pending.window.end)
        finally:
            items.close()

    def tracks(self) -> list[FinalTrack]:
        """The final tracks of the last streamed video (filters of ``infer`` applied, ids 1..K).

        With ``relink_colour``, the tracks are first re-linked (:meth:`_relink`): a FinalTrack's
        ``provisional_id`` is then a linked id; :meth:`linked_id` maps the streamed ids to it."""
        if self.infer.relink_colour is not None and self.relinking is None:
            self._relink()
        return self.book.finalize(
            score_thr=self.infer.score_thr,
            min_track_len=self.infer.min_track_len,
            max_tracks=self.infer.max_tracks,
            video_frames=len(self.frames),
            coverage_power=self.infer.coverage_power,
        )

    def linked_id(self, provisional_id: int, position: int) -> int:
        """The id that a streamed frame's ``provisional_id`` at stream ``position`` has in
        :meth:`tracks` (itself unless the video was re-linked)."""
        if self.relinking is None:
            return provisional_id
        return linked_id(self.relinking.parts[provisional_id], position)

    def _relink(self) -> None:
        """Re-link the streamed video's tracks (:func:`vistr_core.inference.relink.relink`) and rebuild
        what is kept per track (statistics, per-frame scores, link records) under the linked ids.
        Hand-over rests are left out: in the window or two where two slots hold one object, the
        earlier slot's copy was shown as a short track of its own (on 24-frame clips, objects
        keeping one id 0.78 -> 0.89 and 0.83 -> 0.89 for the quickstart's two models, clip AP
        0.525 -> 0.527 and 0.464 -> 0.465; long videos unchanged: README "Long videos")."""
        colour = float(self.infer.relink_colour)
        self.relinking = relink(
            self.history,
            span=RELINK_SPAN,
            join_span=RELINK_JOIN_SPAN,
            cut_colour=colour,
            join_colour=colour,
            max_gap=RELINK_GAP_FACTOR * self.max_gap,
            min_giou=RELINK_GIOU,
            scale=self.infer.colour_scale,
            overlap=RELINK_OVERLAP,
        )
        calls = sorted(
            (position, self.linked_id(tid, position), score, label, nonempty)
            for tid, frames in self.frame_log.items()
            for position, score, label, nonempty in frames
        )
        self.book, self.frame_stats = TrackBook(), {}
        for position, tid, score, label, nonempty in calls:
            if tid in self.relinking.rests:  # a second copy of an object a later slot holds
                continue
            self.book.tracks.setdefault(tid, TrackStats(tid)).add_frame(position, score, label, nonempty)
            if nonempty:
                self.frame_stats.setdefault(tid, {})[position] = (score, label)
        self.links = [replace(r, track_id=self.linked_id(r.track_id, r.position)) for r in self.links]
        self.links = [r for r in self.links if r.track_id not in self.relinking.rests]
        for join in self.relinking.joins:  # the colour penalty of linking; an unknown colour costs nothing
            known = join.distance == join.distance
            colour = (
                self.infer.colour_weight * min(join.distance / self.infer.colour_scale, 1.0) if known else 0.0
            )
            self._record_link(join.linked_id, join.position, "relink", join.giou, False, colour)
        self.links.sort(key=lambda r: (r.position, r.track_id))

    # -- steps ---------------------------------------------------------------------------------

    def _prepared(self, frames: Iterable[FrameLike]) -> Iterator[tuple[FrameInfo, Tensor, tuple[int, int]]]:
        """Runs in the prefetch thread: decoding and resizing overlap the model."""
        for position, frame in enumerate(frames):
            info = FrameInfo(position, int(frame.index), float(frame.timestamp), str(frame.name))
            yield (
                info,
                preprocess_frames(frame.image[None], self.data_config)[0],
                tuple(frame.image.shape[:2]),
            )

    def _predict(self, batch: Sequence[Window]) -> list[WindowPrediction]:
        clips = torch.stack([torch.stack([item[1] for item in w.items]) for w in batch])
        self.model_calls += 1
        return self.predictor(clips)

    def _link(self, previous: _Pending | None, window: Window, prediction: WindowPrediction) -> _Pending:
        """Give each active slot of ``window`` a track id, continuing ``previous``'s where they match."""
        slots = active_slots(prediction.mask_logits, window.num_real, self.logit_thr)
        masks = prediction.mask_logits[slots, : window.num_real] > self.logit_thr  # [k, T_real, h, w]
        colours = self._colours(window, masks)
        if self.infer.merge_iou is not None and len(slots) > 1:
            prediction, kept = self._merged(prediction, slots, masks, colours)
            slots, colours = slots[kept], None if colours is None else colours[kept]
            masks = prediction.mask_logits[slots, : window.num_real] > self.logit_thr  # leads: unions
        if self.infer.dedup_iou is not None and len(slots) > 1:
            scores = prediction.scores[slots, : window.num_real].mean(1)
            kept = suppress_duplicates(masks, scores, self.infer.dedup_iou)
            slots, masks = slots[kept], masks[kept]
            colours = None if colours is None else colours[kept]
        classes = majority_class(prediction.labels[slots, : window.num_real])  # [k]
        ids = self._continue_tracks(previous, window, prediction, slots, classes, colours)
        self._resume_after_gaps(window, masks, classes, ids, colours)
        track_ids = [self.book.new_track() if tid is None else tid for tid in ids]
        self._remember(window, masks, classes, track_ids)
        if colours is not None:
            for track_id, colour in zip(track_ids, colours, strict=True):
                self.colours.add(track_id, colour)
        if self.infer.relink_colour is not None:
            owns_from = window.start if previous is None else ownership_cut(previous.window, window) + 1
            self._record_history(window, owns_from, masks, classes, track_ids, colours)
        size = window.items[0][2]
        self.size = self.size or size
        return _Pending(window, prediction, slots, classes, track_ids, window.start, size)

    def _colours(self, window: Window, masks: Tensor) -> Tensor | None:
        """[k, 3] RGB under each of k slots' masks [k, T_real, h, w] (:func:`mask_colours`), or None
        when neither linking (``colour_weight``), merging (``merge_colour``) nor re-linking reads
        colours."""
        merging_reads = self.infer.merge_iou is not None and self.infer.merge_colour < float("inf")
        relinking = self.infer.relink_colour is not None
        if not len(masks) or (self.infer.colour_weight == 0.0 and not merging_reads and not relinking):
            return None
        frames = torch.stack([item[1] for item in window.items[: window.num_real]])  # [T_real, 3, H, W]
        return mask_colours(frames, masks, self.data_config.mean, self.data_config.std)

    def _colour_agreement(self, track_ids: Sequence[int], colours: Tensor | None) -> Tensor | None:
        """[p, q] agreement in [0, 1] of each of p tracks' colours with each of q slots' (colours:
        [q, 3]; :func:`colour_agreement`); None when colour plays no part in linking."""
        if colours is None or self.infer.colour_weight == 0.0:
            return None
        return colour_agreement(self.colours.of(track_ids), colours, self.infer.colour_scale)

    def _merged(
        self, prediction: WindowPrediction, slots: np.ndarray, masks: Tensor, colours: Tensor | None
    ) -> tuple[WindowPrediction, np.ndarray]:
        """``prediction`` with each group of copies (:func:`merge_copies`) folded into its lead slot,
        whose mask becomes the group's union (the largest logit of each pixel); the other members'
        masks are emptied. Returns it and the positions in ``slots`` of the slots still active (a
        lead keeps its own colour: its copies' lie within ``merge_colour`` of it).

        Args:
            slots: [k] active slot indices; masks: [k, T_real, h, w] their thresholded masks;
                colours: [k, 3] their colours or None.
        """
        num_real = masks.shape[1]
        scores = prediction.scores[slots, :num_real].mean(1)
        classes = majority_class(prediction.labels[slots, :num_real])
        groups = merge_copies(masks, scores, classes, self.infer.merge_iou, colours, self.infer.merge_colour)
        if all(len(group) == 1 for group in groups):
            return prediction, np.arange(len(slots))
        merged = prediction.mask_logits.clone()  # [n, T, h, w]
        for lead, *copies in groups:
            for copy in copies:
                merged[slots[lead]] = torch.maximum(merged[slots[lead]], merged[slots[copy]])
                merged[slots[copy]] = EMPTY_LOGIT
        return replace(prediction, mask_logits=merged), np.array(
            [group[0] for group in groups], dtype=np.int64
        )

    def _continue_tracks(
        self,
        previous: _Pending | None,
        window: Window,
        prediction: WindowPrediction,
        slots: np.ndarray,
        classes: Tensor,
        colours: Tensor | None = None,
    ) -> list[int | None]:
        """The track id each kept slot continues from ``previous`` (None: not linked), by the rule of
        :mod:`vistr_core.inference.tracker`.

        Args:
            slots: [k] indices of the window's kept slots; classes: [k] their majority classes;
                colours: [k, 3] their colours, or None.
        """
        ids: list[int | None] = [None] * len(slots)
        if previous is None or not len(slots) or not len(previous.slots):
            return ids
        shared = previous.window.end - window.start + 1
        if shared <= 0:
            return ids
        offset = window.start - previous.window.start
        a = previous.prediction.mask_logits[previous.slots, offset : offset + shared] > self.logit_thr
        b = prediction.mask_logits[slots, :shared] > self.logit_thr
        iou = sequence_iou(a, b)
        same_slot = torch.from_numpy(previous.slots[:, None] == slots[None, :]).float()
        agreement = self._colour_agreement(previous.track_ids, colours)
        penalty = None
        if agreement is not None:  # a slot that shows another colour holds another object
            penalty = self.infer.colour_weight * (1.0 - agreement)
            same_slot = same_slot * agreement
        pairs = link_slots(
            iou,
            previous.classes,
            classes,
            link_iou=self.infer.link_iou,
            class_penalty=self.infer.class_penalty,
            same_slot=same_slot,
            slot_bonus=self.infer.slot_bonus,
            penalty=penalty,
        )
        for i, j in pairs:
            ids[j] = previous.track_ids[i]
            differ = bool(previous.classes[i] != classes[j])
            colour = 0.0 if penalty is None else float(penalty[i, j])
            self._record_link(previous.track_ids[i], window.start, "window", float(iou[i, j]), differ, colour)
        return ids

    def _resume_after_gaps(
        self,
        window: Window,
        masks: Tensor,
        classes: Tensor,
        ids: list[int | None],
        colours: Tensor | None = None,
    ) -> None:
        """Unlinked slots resume tracks that vanished shortly before (fills ``ids`` in place).

        Args:
            masks: [k, T_real, h, w] bool masks of the window's k kept slots; classes: [k] their
                majority classes; ids: [k] their track ids so far, None for the unlinked ones;
                colours: [k, 3] their colours, or None.

        Candidates: tracks not continued in this window with at most ``max_gap`` frames between
        their last mask and the slot's first one (``max_gap`` 0 disables resuming). Hungarian
        matching on the generalized box IoU of those two masks minus ``class_penalty`` across
        classes and the colour penalty, kept at ``resume_iou``. Boxes, not masks, and a threshold
        below 0 (boxes a little apart): an object lost for a few windows has moved and changed
        shape, and the mask IoU of two frames apart says little (measured on long held-out videos,
        README "Long videos").
        """
        free = [j for j, tid in enumerate(ids) if tid is None]
        taken = set(ids)
        lost = [(tid, seen) for tid, seen in self.last_seen.items() if tid not in taken]
        if not free or not lost or self.max_gap == 0:
            return
        first = _first_masks(window, masks[free])
        iou = generalized_box_iou(
            torch.stack([seen.box for _, seen in lost]), mask_boxes(torch.stack([m for _, m in first]))
        )
        gaps = torch.tensor([[position - seen.position - 1 for position, _ in first] for _, seen in lost])
        iou[(gaps < 0) | (gaps > self.max_gap)] = -3.0  # cannot link: overlapping in time, or too old
        agreement = self._colour_agreement(
            [tid for tid, _ in lost], None if colours is None else colours[free]
        )
        penalty = None if agreement is None else self.infer.colour_weight * (1.0 - agreement)
        pairs = link_slots(
            iou,
            torch.tensor([seen.label for _, seen in lost]),
            classes[free],
            link_iou=self.infer.resume_iou,
            class_penalty=self.infer.class_penalty,
            penalty=penalty,
        )
        for i, k in pairs:
            ids[free[k]] = lost[i][0]
            differ = lost[i][1].label != int(classes[free[k]])
            colour = 0.0 if penalty is None else float(penalty[i, k])
            self._record_link(lost[i][0], first[k][0], "gap", float(iou[i, k]), differ, colour)

    def _record_link(
        self, track_id: int, position: int, kind: str, iou: float, differ: bool, colour: float
    ) -> None:
        affinity = iou - self.infer.class_penalty * differ - colour
        self.links.append(LinkRecord(track_id, position, kind, round(iou, 4), round(affinity, 4)))

    def _record_history(
        self,
        window: Window,
        owns_from: int,
        masks: Tensor,
        classes: Tensor,
        track_ids: list[int],
        colours: Tensor | None,
    ) -> None:
        """One :class:`WindowEntry` per kept slot for re-linking: masks [k, T_real, h, w] bool,
        classes [k], colours [k, 3] (None only for a window without kept slots)."""
        if not track_ids:
            return
        firsts, lasts = _present_frames(masks)
        slots = torch.arange(len(track_ids))
        first_boxes = mask_boxes(masks[slots, torch.tensor(firsts)])  # [k, 4]
        last_boxes = mask_boxes(masks[slots, torch.tensor(lasts)])
        for k, track_id in enumerate(track_ids):
            self.history.setdefault(track_id, []).append(
                WindowEntry(
                    window=window.index,
                    owns_from=owns_from,
                    first=window.start + firsts[k],
                    last=window.start + lasts[k],
                    label=int(classes[k]),
                    colour=colours[k] if colours is not None else torch.full((3,), float("nan")),
                    first_box=first_boxes[k],
                    last_box=last_boxes[k],
                )
            )

    def _remember(self, window: Window, masks: Tensor, classes: Tensor, track_ids: list[int]) -> None:
        """Record each track's last non-empty mask in this window; forget tracks lost too long ago.

        The last mask may lie in frames the next window outputs, so a resumed track's visible gap
        can exceed ``max_gap`` by up to half the overlap.
        """
        if self.max_gap == 0:  # nothing will ever be resumed
            return
        lasts = _present_frames(masks)[1]
        if track_ids:
            boxes = mask_boxes(masks[torch.arange(len(track_ids)), torch.tensor(lasts)])  # [k, 4]
        for k, track_id in enumerate(track_ids):
            self.last_seen[track_id] = _LastSeen(int(classes[k]), boxes[k], window.start + lasts[k])
        horizon = window.start - self.max_gap - 1
        self.last_seen = {tid: s for tid, s in self.last_seen.items() if s.position >= horizon}

    def _emit(self, pending: _Pending, last: int) -> WindowResult:
        """The frames ``first_output..last`` of a window, with masks at the original size."""
        window, pred, slots = (
            pending.window,
            pending.prediction,
            torch.as_tensor(pending.slots, dtype=torch.long),
        )
        frames = []
        for position in range(pending.first_output, last + 1):
            t = position - window.start
            info = window.items[t][0]
            self.frames.append(info)
            scores = pred.scores[slots, t].numpy()
            labels = pred.labels[slots, t].numpy()
            keep = np.flatnonzero(scores >= NULL_FRAME_SCORE)
            masks = upsample_masks(pred.mask_logits[slots[keep], t], pending.size, self.logit_thr).numpy()
            nonempty = dict(zip(keep.tolist(), masks.any(axis=(1, 2)).tolist(), strict=True))
            for k, track_id in enumerate(pending.track_ids):
                call = (position, float(scores[k]), int(labels[k]), nonempty.get(k, False))
                self.book.tracks[track_id].add_frame(*call)
                if self.infer.relink_colour is not None:  # replayed under the linked ids
                    self.frame_log.setdefault(track_id, []).append(call)
                if nonempty.get(k, False):  # what review reads: score and class per shown frame
                    self.frame_stats.setdefault(track_id, {})[position] = (float(scores[k]), int(labels[k]))
            frames.append(
                FrameResult(
                    info,
                    tuple(pending.track_ids[k] for k in keep),
                    labels[keep],
                    scores[keep],
                    masks,
                )
            )
        return WindowResult(window.index, frames)


def _first_masks(window: Window, masks: Tensor) -> list[tuple[int, Tensor]]:
    """(stream position, [h, w] bool mask) of each slot's first non-empty frame; masks [k, T_real, h, w]."""
    return [(window.start + t, masks[k, t]) for k, t in enumerate(_present_frames(masks)[0])]


def _present_frames(masks: Tensor) -> tuple[list[int], list[int]]:
    """Index of the first and of the last frame in which each slot has a mask; masks [k, T_real, h, w]
    bool (every kept slot has one somewhere)."""
    present = masks.flatten(2).any(2).float()  # [k, T_real]
    return present.argmax(1).tolist(), (masks.shape[1] - 1 - present.flip(1).argmax(1)).tolist()


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
