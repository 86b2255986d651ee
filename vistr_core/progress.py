"""Progress reporting from the library without printing.

Long-running core functions accept ``progress: ProgressCallback``. They call it with a
:class:`ProgressUpdate` whenever a unit of work (a video, a frame, an iteration) completes. The CLI
turns these into a Rich display; library users may log them or ignore them (:func:`no_progress`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressUpdate:
    """The state of one task after some work.

    Attributes:
        task: a short stable name, e.g. ``"videos"``, ``"frames"``, ``"iterations"``; one bar each.
        completed: units done so far in this task (absolute, not a delta).
        total: units expected, or None when unknown.
        description: what is being worked on now (a video name, an epoch), shown beside the bar.
        info: extra figures to show, e.g. ``{"loss": 1.23, "lr": 1e-4}``.
        done: True once the task will receive no more updates.
    """

    task: str
    completed: int
    total: int | None = None
    description: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)
    done: bool = False


ProgressCallback = Callable[[ProgressUpdate], None]


def no_progress(update: ProgressUpdate) -> None:
    """A callback that ignores every update."""
