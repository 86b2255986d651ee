"""Cutting a frame stream into the model's T-frame windows.

A video of N frames is covered by windows of T frames that start every ``T - overlap`` frames; the
last window is aligned to the end of the video (it starts at N - T, so it may overlap its
predecessor by more than ``overlap``). A video shorter than T is one window padded by repetition
(frame ``t % N`` at position t, as the reference inference does); outputs for the padded positions
are dropped.

Each frame belongs to exactly one window for output: the window whose centre is nearest (ties go to
the earlier window). For consecutive windows starting at ``a < b`` that is a cut at
``(a + b) / 2 + (T - 1) / 2``, so in a regular overlap the first half of the shared frames comes
from the earlier window and the second half from the later one: every frame is taken from the
window in which it has the most temporal context on both sides.

The windows are produced while frames stream in: only the last T frames are held.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import ConfigError

F = TypeVar("F")


def default_overlap(num_frames: int) -> int:
    """The default overlap for windows of ``num_frames`` (T): T // 4, at least 1 when T > 1.

    A quarter of the window (9 frames for the paper's T = 36) gives the linker several frames of
    mask IoU to match on, while costing only 4/3 of a non-overlapping pass.
    """
    return max(1, num_frames // 4) if num_frames > 1 else 0


def check_overlap(overlap: int, num_frames: int) -> int:
    """``overlap`` validated for windows of ``num_frames`` frames."""
    if not 0 <= overlap < num_frames:
        raise ConfigError(
            f"--overlap {overlap} must be between 0 and {num_frames - 1} for this model's "
            f"{num_frames}-frame windows"
        )
    return overlap


@dataclass(frozen=True)
class Window(Generic[F]):
    """T consecutive positions of the frame stream (positions count processed frames from 0).

    Attributes:
        index: 0 for the first window of a video, then 1, 2, ...
        start: position of the first frame.
        positions: the stream position at each of the T slots; repeats when padded.
        items: the stream items at those positions (the same objects, not copies).
        num_real: how many leading slots are distinct real frames (T unless padded).
    """

    index: int
    start: int
    positions: tuple[int, ...]
    items: tuple[F, ...]
    num_real: int

    @property
    def length(self) -> int:
        return len(self.positions)

    @property
    def end(self) -> int:
        """Position of the last real frame (inclusive)."""
        return self.start + self.num_real - 1

    @property
    def center(self) -> float:
        return self.start + (self.length - 1) / 2


def ownership_cut(previous: Window, following: Window) -> int:
    """The last position that ``previous`` (rather than ``following``) outputs."""
    return math.floor((previous.center + following.center) / 2)


def iter_windows(items: Iterable[F], num_frames: int, overlap: int) -> Iterator[Window[F]]:
    """Windows of ``num_frames`` items over a stream, ``overlap`` items shared between neighbours.

    Holds at most ``num_frames`` items. Yields nothing for an empty stream.
    """
    check_overlap(overlap, num_frames)
    stride = num_frames - overlap
    recent: deque[F] = deque(maxlen=num_frames)
    next_start, index, count, last_end = 0, 0, 0, -1
    for position, item in enumerate(items):
        recent.append(item)
        count = position + 1
        if position == next_start + num_frames - 1:
            yield Window(index, next_start, tuple(range(next_start, count)), tuple(recent), num_frames)
            index, last_end = index + 1, position
            next_start += stride
    if count == 0 or last_end == count - 1:
        return
    if count < num_frames:  # a short video: pad by repetition
        positions = tuple(t % count for t in range(num_frames))
        yield Window(index, 0, positions, tuple(recent[p] for p in positions), count)
        return
    start = count - num_frames  # the final window, aligned to the end
    yield Window(index, start, tuple(range(start, count)), tuple(recent), num_frames)
