"""Re-linking a finished video's tracks by colour: cut a track where its colour changes for good,
then join the pieces whose colours, classes and places continue each other.

The window-by-window rule (:mod:`vistr_core.inference.segmenter`) decides each link when it reaches
the seam, from the frames two windows share. Where two look-alikes cross, a window's slots may each
cover parts of both, and their colours are mixed just there; the rule then follows a slot onto the
other object, and every later seam continues the mistake with good mask overlap. A few windows
later the objects are apart again and each track's colour is clean: the track that switched now
shows the other object's colour. Seen over the whole video, a switch is a lasting step in a
track's colour, and the piece after it continues, in colour, a piece that ended (or switched) at
the same time.

Per window, a track has one :class:`WindowEntry` (its colour, class and the boxes of its first
and last mask in that window). :func:`relink` cuts each track where the median colour of the
``span`` windows before and the ``span`` windows after differ by ``cut_colour`` or more (the step's
largest point), and joins each piece's end to one later piece's start by Hungarian matching on
their colours (the ``span`` windows on either side), the generalized IoU of their boxes and the
gap between them; a piece may take over from one that ends up to ``overlap`` windows later (two
slots handing one object over). A cut that no other piece takes up is undone. The result maps each
provisional track and stream position to a linked id; the segmenter sets the thresholds
(:meth:`vistr_core.inference.segmenter.VideoSegmenter.tracks`) and measured them on long held-out
videos (README "Long videos").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import generalized_box_iou

NO_LINK = 1.0e6
"""Cost of a join that cannot be made (different classes, overlapping in time, too far apart)."""


@dataclass(frozen=True)
class WindowEntry:
    """One track in one window.

    ``owns_from``: the first stream position this window outputs (later than its first frame where
    it shares frames with the window before); ``first`` / ``last``: positions of the
    track's first and last non-empty mask in the window; ``label``: the slot's majority class;
    ``colour``: [3] RGB (NaN if unknown); ``first_box`` / ``last_box``: [4] pixel boxes of those
    masks (at the model's mask resolution).
    """

    window: int
    owns_from: int
    first: int
    last: int
    label: int
    colour: Tensor
    first_box: Tensor
    last_box: Tensor


@dataclass(frozen=True)
class Piece:
    """Consecutive window entries of one provisional track between two cuts."""

    track_id: int
    entries: tuple[WindowEntry, ...]

    @property
    def label(self) -> int:
        """Majority class over the piece's windows (ties: the lowest index)."""
        labels = [e.label for e in self.entries]
        return min(set(labels), key=lambda c: (-labels.count(c), c))


def median_colour(entries: Sequence[WindowEntry]) -> Tensor:
    """[3] median of the entries' colours, NaNs ignored (NaN when none is known)."""
    return torch.stack([e.colour for e in entries]).float().nanmedian(0).values


def _distance(a: Tensor, b: Tensor) -> float:
    """RGB distance of two [3] colours; 0 where either is unknown (NaN)."""
    distance = float(torch.linalg.vector_norm(a.float() - b.float()))
    return 0.0 if distance != distance else distance


def colour_steps(entries: Sequence[WindowEntry], span: int, threshold: float) -> list[int]:
    """Indices m where a track's colour changes for good: the median colour of entries
    ``[m - span, m)`` and of ``[m, m + span)`` differ by at least ``threshold`` RGB levels. One cut
    per run of such m, at the largest difference; medians make plateaus around a step, so a tie goes
    to the largest jump between two consecutive windows, then to the middle. Empty for tracks of
    fewer than ``2 * span`` windows."""
    n = len(entries)
    steps = torch.zeros(n + 1)
    for m in range(span, n - span + 1):
        before, after = median_colour(entries[m - span : m]), median_colour(entries[m : m + span])
        steps[m] = _distance(before, after)
    cuts, m = [], span
    while m <= n - span:
        if steps[m] < threshold:
            m += 1
            continue
        end = m
        while end + 1 <= n - span and steps[end + 1] >= threshold:
            end += 1
        best = steps[m : end + 1].max()
        ties = [k for k in range(m, end + 1) if steps[k] >= best - 1e-3]
        jumps = [_distance(entries[k - 1].colour, entries[k].colour) for k in ties]
        cuts.append(ties[max(range(len(ties)), key=lambda i: (jumps[i], -abs(2 * i + 1 - len(ties))))])
        m = end + 1
    return cuts


def cut_tracks(history: dict[int, list[WindowEntry]], span: int, threshold: float) -> list[Piece]:
    """Every track's entries split at its colour steps (:func:`colour_steps`), in track order."""
    pieces = []
    for track_id, entries in history.items():
        bounds = [0, *colour_steps(entries, span, threshold), len(entries)]
        pieces += [Piece(track_id, tuple(entries[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pieces


def _before(piece: Piece, window: int) -> tuple[WindowEntry, ...]:
    """The piece's entries in windows before ``window`` (scanned from the end: a join overlaps a
    piece's last few windows at most)."""
    end = len(piece.entries)
    while end and piece.entries[end - 1].window >= window:
        end -= 1
    return piece.entries[:end]


def _candidates(pieces: Sequence[Piece], max_gap: int, overlap: int) -> list[tuple[int, int]]:
    """Pairs (i, j) of one class where j starts after i's first window, at most ``overlap`` windows
    before i's last one and at most ``max_gap`` frames after i's last mask (vectorized: a long video
    has thousands of pieces, and most pairs fail these tests)."""
    if not pieces:
        return []
    label = np.array([p.label for p in pieces])
    first_window = np.array([p.entries[0].window for p in pieces])
    last_window = np.array([p.entries[-1].window for p in pieces])
    first_frame = np.array([p.entries[0].first for p in pieces])
    last_frame = np.array([p.entries[-1].last for p in pieces])
    ok = label[:, None] == label[None, :]
    ok &= first_frame[None, :] - last_frame[:, None] - 1 <= max_gap
    ok &= first_window[None, :] > np.maximum(first_window, last_window - overlap)[:, None]
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(ok), strict=True)]


def join_costs(
    pieces: Sequence[Piece],
    *,
    span: int,
    max_gap: int,
    min_giou: float,
    join_colour: float,
    scale: float,
    overlap: int = 0,
) -> np.ndarray:
    """[p, p] cost of continuing piece i with piece j: their colours' distance / ``scale`` minus the
    generalized IoU of i's last box and j's first box, where i's end is its part before j's first
    window. :data:`NO_LINK` where j starts in i's first window or before, more than ``overlap``
    windows before i's last one (two slots on one object hand it over in a window or two, both
    present meanwhile) or more than ``max_gap`` frames after i's last mask, or has another class,
    another colour (``join_colour`` levels or more apart) or lies too far (GIoU below
    ``min_giou``). Pieces of one track joined as they were cost ``-1`` less (kept unless colour
    says otherwise)."""
    starts = [median_colour(p.entries[:span]) for p in pieces]
    cost = np.full((len(pieces), len(pieces)), NO_LINK)
    for i, j in _candidates(pieces, max_gap, overlap):
        earlier, later = pieces[i], pieces[j]
        first = later.entries[0]
        head = _before(earlier, first.window)
        last = head[-1]
        if first.first - last.last - 1 > max_gap:
            continue
        distance = float(torch.linalg.vector_norm(median_colour(head[-span:]) - starts[j]))
        if distance >= join_colour:  # NaN (unknown) passes
            continue
        giou = _box_giou(last, first)
        if giou < min_giou:
            continue
        same = earlier.track_id == later.track_id and first.window == last.window + 1
        cost[i, j] = (0.0 if distance != distance else distance / scale) - giou - float(same)
    return cost


@dataclass(frozen=True)
class Join:
    """Two pieces joined into one linked track: the later one continues ``linked_id`` from stream
    position ``position``; ``giou`` of their boxes and ``distance`` of their colours (NaN: unknown)."""

    linked_id: int
    position: int
    giou: float
    distance: float


@dataclass(frozen=True)
class Relinking:
    """``parts``: for each provisional track, ``[(from_position, linked_id), ...]`` sorted by position
    (from that stream position on, the track's frames belong to ``linked_id``; ids 1..L numbered by
    first appearance). ``joins``: where pieces were joined."""

    parts: dict[int, list[tuple[int, int]]]
    joins: list[Join]


def relink(
    history: dict[int, list[WindowEntry]],
    *,
    span: int,
    cut_colour: float,
    join_colour: float,
    max_gap: int,
    min_giou: float,
    scale: float,
    overlap: int = 0,
) -> Relinking:
    """Linked ids of a video's tracks: cut at colour steps (:func:`cut_tracks`), then each piece's end
    joined to at most one later piece's start by Hungarian matching on :func:`join_costs`. Where the
    later piece starts before the earlier one ends (``overlap``), the earlier one's rest from there
    on becomes a track of its own. A cut whose two sides neither continue nor are continued by
    another piece is undone: a track's colour also changes where its object moves into shadow, and
    a cut is only worth making where another piece takes up each side.

    Args:
        history: each provisional track's window entries, in stream order.
    """
    pieces = cut_tracks(history, span, cut_colour)
    costs = join_costs(
        pieces,
        span=span,
        max_gap=max_gap,
        min_giou=min_giou,
        join_colour=join_colour,
        scale=scale,
        overlap=overlap,
    )
    following = _assignment(costs)
    followed = set(following.values())
    undone = set()
    for i in range(len(pieces) - 1):  # a cut that nothing else explains is undone (lighting, shadows)
        if pieces[i].track_id == pieces[i + 1].track_id and i not in following and i + 1 not in followed:
            following[i] = i + 1
            followed.add(i + 1)
            undone.add(i)
    heads = sorted(
        (i for i in range(len(pieces)) if i not in followed), key=lambda i: pieces[i].entries[0].first
    )
    chains: dict[int, int] = {}
    joins = []
    for linked, head in enumerate(heads, start=1):
        i: int | None = head
        while i is not None:  # each piece starts in a later window than the one before: no cycles
            chains[i] = linked
            j = following.get(i)
            if j is not None and i not in undone:
                joins.append(_join(linked, _before(pieces[i], pieces[j].entries[0].window), pieces[j], span))
            i = j
    parts: dict[int, list[tuple[int, int]]] = {}
    rests = len(heads)
    for i, piece in enumerate(pieces):
        parts.setdefault(piece.track_id, []).append((piece.entries[0].owns_from, chains[i]))
        if i in following:  # the rest of an earlier piece that a later one took over
            rest = [e for e in piece.entries if e.window >= pieces[following[i]].entries[0].window]
            if rest:
                rests += 1
                parts[piece.track_id].append((rest[0].owns_from, rests))
    return Relinking({track_id: sorted(p) for track_id, p in parts.items()}, joins)


def _assignment(costs: np.ndarray) -> dict[int, int]:
    """Hungarian matching of ends (rows) to starts (columns) on ``costs``, pairs at :data:`NO_LINK`
    left out. Solved per group of pieces that some possible join connects: a long video's matrix is
    large and nearly all :data:`NO_LINK`, and the matching is cubic in its size."""
    rows, cols = np.nonzero(costs < NO_LINK)
    parent = list(range(costs.shape[0]))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in sorted(set(rows.tolist()) | set(cols.tolist())):
        groups.setdefault(root(i), []).append(i)
    following = {}
    for members in groups.values():
        index = np.array(members)
        sub = costs[np.ix_(index, index)]
        for r, c in zip(*linear_sum_assignment(sub), strict=True):
            if sub[r, c] < NO_LINK:
                following[int(index[r])] = int(index[c])
    return following


def _box_giou(last: WindowEntry, first: WindowEntry) -> float:
    """Generalized IoU of one entry's last box and a later entry's first box."""
    return float(generalized_box_iou(last.last_box[None], first.first_box[None])[0, 0])


def _join(linked: int, head: Sequence[WindowEntry], later: Piece, span: int) -> Join:
    """The :class:`Join` of ``later`` to the entries ``head`` of the piece it continues, with the
    same figures :func:`join_costs` decided it on."""
    distance = float(
        torch.linalg.vector_norm(median_colour(head[-span:]) - median_colour(later.entries[:span]))
    )
    return Join(linked, later.entries[0].owns_from, _box_giou(head[-1], later.entries[0]), distance)


def linked_id(parts: Sequence[tuple[int, int]], position: int) -> int:
    """The linked id of a provisional track's frame at ``position`` (``parts``: one track's entry of
    :func:`relink`); frames before its first piece belong to that piece."""
    current = parts[0][1]
    for start, linked in parts:
        if position < start:
            break
        current = linked
    return current
