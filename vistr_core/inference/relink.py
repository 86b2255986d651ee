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
largest point) and the pieces on either side differ as wholes, and where the track skips a window
(the rule resumed it from boxes alone). It then joins each piece's end to one later piece's start
by Hungarian matching on their colours (the ``join_span`` windows on either side), the
generalized IoU of their boxes and the frames between them; a piece may take over from one that
still has masks in up to ``overlap`` windows (two slots handing one object over). A cut that no
other piece takes up is undone. The result maps each provisional track and stream position to a
linked id; the segmenter sets the thresholds (:meth:`vistr_core.inference.segmenter.VideoSegmenter.tracks`)
and measured them on long held-out videos (README "Long videos").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

NO_LINK = 1.0e6
"""Cost of a join that cannot be made, where the matching needs a number for it."""


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
    if n < 2 * span:
        return []
    colours = torch.stack([e.colour for e in entries]).float()
    medians = colours.unfold(0, span, 1).nanmedian(-1).values  # [n - span + 1, 3]: [m, m + span)
    distance = torch.linalg.vector_norm(medians[: n - 2 * span + 1] - medians[span:], dim=1)
    steps = [0.0] * span + distance.nan_to_num(0.0).tolist()  # steps[m]; unknown colours never cut
    cuts, m = [], span
    while m <= n - span:
        if steps[m] < threshold:
            m += 1
            continue
        end = m
        while end + 1 <= n - span and steps[end + 1] >= threshold:
            end += 1
        best = max(steps[m : end + 1])
        ties = [k for k in range(m, end + 1) if steps[k] >= best - 1e-3]
        jumps = [_distance(entries[k - 1].colour, entries[k].colour) for k in ties]
        cuts.append(ties[max(range(len(ties)), key=lambda i: (jumps[i], -abs(2 * i + 1 - len(ties))))])
        m = end + 1
    return cuts


def lasting_steps(entries: Sequence[WindowEntry], cuts: Sequence[int], threshold: float) -> list[int]:
    """The ``cuts`` whose two sides differ in colour as wholes: while the median colours of two
    neighbouring pieces (all their windows) lie within ``threshold``, the cut between the closest
    two is dropped. Where a track's mask covers part of another object for a few windows (a
    crossing), its colour steps there and back, and the windows on either side of the first step
    can each differ by more than ``threshold``; the pieces' medians, mostly clean windows, show one
    object on both sides."""
    cuts = list(cuts)
    while cuts:
        bounds = [0, *cuts, len(entries)]
        medians = [median_colour(entries[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        apart = [_distance(medians[k], medians[k + 1]) for k in range(len(cuts))]
        closest = min(range(len(cuts)), key=apart.__getitem__)
        if apart[closest] >= threshold:
            break
        del cuts[closest]
    return cuts


def gaps(entries: Sequence[WindowEntry]) -> list[int]:
    """Indices k where the track has no mask in one window or more between entries k - 1 and k. The
    window rule resumed the track there from boxes alone (a slot that held junk for a few windows
    may pick up an object that another track held until then); re-linking weighs those links
    again against every other piece."""
    return [k for k in range(1, len(entries)) if entries[k].window > entries[k - 1].window + 1]


def cut_tracks(history: dict[int, list[WindowEntry]], span: int, threshold: float) -> list[Piece]:
    """Every track's entries split at its lasting colour steps (:func:`colour_steps`,
    :func:`lasting_steps`) and at its gaps (:func:`gaps`), in track order."""
    pieces = []
    for track_id, entries in history.items():
        cuts = lasting_steps(entries, colour_steps(entries, span, threshold), threshold)
        cuts = sorted(set(cuts) | set(gaps(entries)))
        bounds = [0, *cuts, len(entries)]
        pieces += [Piece(track_id, tuple(entries[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pieces


def _before(piece: Piece, window: int) -> tuple[WindowEntry, ...]:
    """The piece's entries in windows before ``window`` (scanned from the end: a join overlaps a
    piece's last few windows at most)."""
    end = len(piece.entries)
    while end and piece.entries[end - 1].window >= window:
        end -= 1
    return piece.entries[:end]


def _candidates(pieces: Sequence[Piece], max_gap: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Pairs (i, j) of one class where j starts after i's first window and at most ``max_gap``
    frames after i's last mask, and i has masks in at most ``overlap`` windows from j's first one
    on. Each i looks only at the pieces that start before its end + ``max_gap`` (sorted by first
    frame): a long video has thousands of pieces, and a [p, p] table of them would not fit in
    memory."""
    if not pieces:
        return
    order = np.argsort([p.entries[0].first for p in pieces], kind="stable")
    label = np.array([p.label for p in pieces])[order]
    first_window = np.array([p.entries[0].window for p in pieces])[order]
    first_frame = np.array([p.entries[0].first for p in pieces])[order]
    for i, piece in enumerate(pieces):
        end = np.searchsorted(first_frame, piece.entries[-1].last + max_gap + 1, side="right")
        later = np.arange(end)  # a later window's first mask may precede i's first (long overlaps)
        later = later[(label[later] == piece.label) & (first_window[later] > piece.entries[0].window)]
        windows = np.array([e.window for e in piece.entries])  # i's windows from each j's first on
        later = later[len(windows) - np.searchsorted(windows, first_window[later]) <= overlap]
        for j in order[later].tolist():
            yield i, j


@dataclass(frozen=True)
class Candidate:
    """A join the matching may make: its ``cost`` and the figures it was decided on (``giou`` of
    the seam's boxes, ``distance`` of the colours; NaN: unknown)."""

    cost: float
    giou: float
    distance: float


def join_costs(
    pieces: Sequence[Piece],
    *,
    span: int,
    max_gap: int,
    min_giou: float,
    join_colour: float,
    scale: float,
    overlap: int = 0,
) -> dict[tuple[int, int], Candidate]:
    """The joins (i, j) that may continue piece i with piece j, each at a cost: their colours'
    distance / ``scale`` minus the generalized IoU of i's last box and j's first box, where i's end
    is its part before j's first window, plus the frames between them / ``max_gap`` (of two pieces
    that continue one end about as well, the nearer in time: after a miss of many frames, a box's
    overlap says little). No join where j starts in i's first window or before, while i still has
    masks in more than ``overlap`` windows (two slots on one object hand it over in a window or two,
    both present meanwhile) or more than ``max_gap`` frames after i's last mask, or has another
    class, another colour (``join_colour`` levels or more apart) or lies too far (GIoU below
    :func:`giou_floor`: ``min_giou`` at the next frame, looser the longer the gap). Pieces of one
    track cut between two consecutive windows cost ``-1`` less joined back as they were (kept
    unless colour says otherwise); across a gap the window rule had only boxes to go by, and so has
    this cost."""
    colours = [torch.stack([e.colour for e in p.entries]).float() for p in pieces]
    starts = [c[:span].nanmedian(0).values for c in colours]
    ends: dict[tuple[int, int], Tensor] = {}  # (piece, entries before the join) -> median colour
    kept, seams = [], []
    for i, j in _candidates(pieces, max_gap, overlap):
        first = pieces[j].entries[0]
        length = len(_before(pieces[i], first.window))
        last = pieces[i].entries[length - 1]
        gap = first.first - last.last - 1
        if gap > max_gap:
            continue
        if (i, length) not in ends:
            ends[i, length] = colours[i][max(length - span, 0) : length].nanmedian(0).values
        distance = float(torch.linalg.vector_norm(ends[i, length] - starts[j]))
        if distance >= join_colour:  # NaN (unknown) passes
            continue
        same = pieces[i].track_id == pieces[j].track_id and first.window == last.window + 1
        kept.append((i, j, gap, distance, same))
        seams.append((last.last_box, first.first_box))
    if not kept:
        return {}
    lasts, firsts = (torch.stack(boxes).float() for boxes in zip(*seams, strict=True))
    gious = (1.0 - generalized_box_iou_loss(lasts, firsts, reduction="none")).tolist()
    candidates = {}
    for (i, j, gap, distance, same), giou in zip(kept, gious, strict=True):
        if giou < giou_floor(min_giou, gap, max_gap):
            continue
        colour = 0.0 if distance != distance else distance / scale
        cost = colour - giou - float(same) + max(gap, 0) / max(max_gap, 1)
        candidates[i, j] = Candidate(cost, giou, distance)
    return candidates


def giou_floor(min_giou: float, gap: int, max_gap: int) -> float:
    """Smallest generalized IoU of a join's seam boxes ``gap`` frames apart: ``min_giou`` for
    consecutive frames, falling linearly to -1 (any boxes) at ``max_gap``. An object keeps moving
    while it is missed, so after a long miss it is rarely near where it was lost; colour and class
    then decide. On the quickstart's two models, long-video AP 0.427 -> 0.438 and 0.482 -> 0.479,
    objects keeping their own id 65 -> 66 % and 57 -> 61 %; on two sets not used to choose it,
    0.327 -> 0.326 and 0.360 -> 0.342 (README "Long videos": AP even over all, more own ids)."""
    return min_giou - (1.0 + min_giou) * min(max(gap, 0) / max(max_gap, 1), 1.0)


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
    first appearance). ``joins``: where pieces were joined. ``rests``: the linked ids of hand-over
    rests (an earlier piece's windows from the one on where a later piece took its object over):
    a second copy of an object that another linked id holds there, to be dropped."""

    parts: dict[int, list[tuple[int, int]]]
    joins: list[Join]
    rests: frozenset[int] = frozenset()


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
    join_span: int | None = None,
) -> Relinking:
    """Linked ids of a video's tracks: cut at colour steps (:func:`cut_tracks`), then each piece's end
    joined to at most one later piece's start by Hungarian matching on :func:`join_costs`. Where the
    later piece starts before the earlier one ends (``overlap``), the earlier one's rest from there
    on gets an id of its own, listed in ``rests``: both slots hold the one object there. A cut
    whose two sides neither continue nor are continued by another piece is undone: a track's colour
    also changes where its object moves into shadow, and a cut is only worth making where another
    piece takes up each side.

    Args:
        history: each provisional track's window entries, in stream order.
        span: windows on each side of a colour step that a cut compares.
        join_span: windows on each side of a seam whose colours a join compares (``span`` if None).
    """
    pieces = cut_tracks(history, span, cut_colour)
    candidates = join_costs(
        pieces,
        span=join_span or span,
        max_gap=max_gap,
        min_giou=min_giou,
        join_colour=join_colour,
        scale=scale,
        overlap=overlap,
    )
    following = _assignment({pair: candidate.cost for pair, candidate in candidates.items()})
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
                joins.append(
                    Join(
                        linked,
                        pieces[j].entries[0].owns_from,
                        candidates[i, j].giou,
                        candidates[i, j].distance,
                    )
                )
            i = j
    parts: dict[int, list[tuple[int, int]]] = {}
    rests: list[int] = []
    for i, piece in enumerate(pieces):
        parts.setdefault(piece.track_id, []).append((piece.entries[0].owns_from, chains[i]))
        if i in following:  # the rest of an earlier piece that a later one took over
            rest = [e for e in piece.entries if e.window >= pieces[following[i]].entries[0].window]
            if rest:
                rests.append(len(heads) + len(rests) + 1)
                parts[piece.track_id].append((rest[0].owns_from, rests[-1]))
    return Relinking({track_id: sorted(p) for track_id, p in parts.items()}, joins, frozenset(rests))


def _assignment(costs: dict[tuple[int, int], float]) -> dict[int, int]:
    """Hungarian matching of ends (rows) to starts (columns) on the possible joins ``costs``: as
    many joins as can be made, then the cheapest. Solved per group of pieces that some possible join
    connects (pairs outside ``costs`` cost :data:`NO_LINK` there): the matching is cubic in its
    size, and most pieces of a long video can join only a few others."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in costs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in sorted(parent):
        groups.setdefault(root(i), []).append(i)
    pairs: dict[int, list[tuple[int, int]]] = {}
    for i, j in costs:
        pairs.setdefault(root(i), []).append((i, j))
    following = {}
    for group, members in groups.items():
        if len(pairs[group]) == 1:
            ((i, j),) = pairs[group]
            following[i] = j
            continue
        position = {piece: k for k, piece in enumerate(members)}
        sub = np.full((len(members), len(members)), NO_LINK)
        for i, j in pairs[group]:
            sub[position[i], position[j]] = costs[i, j]
        for r, c in zip(*linear_sum_assignment(sub), strict=True):
            if sub[r, c] < NO_LINK:
                following[members[r]] = members[c]
    return following


def linked_id(parts: Sequence[tuple[int, int]], position: int) -> int:
    """The linked id of a provisional track's frame at ``position`` (``parts``: one track's entry of
    :func:`relink`); frames before its first piece belong to that piece."""
    current = parts[0][1]
    for start, linked in parts:
        if position < start:
            break
        current = linked
    return current
