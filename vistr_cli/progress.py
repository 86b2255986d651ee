"""The display for :mod:`vistr_core.progress` callbacks: one Rich bar per task name in a terminal,
plain full lines at a steady interval otherwise (a log file, a pipe, a CI job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vistr_core.progress import ProgressUpdate


def _format_info(info: dict[str, object]) -> str:
    parts = []
    for key, value in info.items():
        if isinstance(value, float):
            text = f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.3f}"
        else:
            text = str(value)
        parts.append(f"{key} {text}")
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class PlainLines:
    """Progress as whole lines, for output that is not a terminal: a task's first update, then at
    most one line per ``interval`` seconds, then its last (``done``). A transient display (one
    that would vanish in a terminal) prints only the interval lines, so short tasks leave nothing.

    A line: ``iterations 120/1500 (8%)  0:01:23 elapsed  0:15:54 left  epoch 3  loss 10.305``.
    """

    def __init__(
        self,
        console: Console,
        *,
        interval: float = 30.0,
        transient: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.interval, self.transient, self.clock = console, interval, transient, clock
        self._started: dict[str, float] = {}
        self._printed: dict[str, float] = {}
        self._finished: set[str] = set()

    def __call__(self, update: ProgressUpdate) -> None:
        now = self.clock()
        if update.task in self._finished:  # a task name reused (the frames of the next video)
            self._finished.discard(update.task)
            self._started.pop(update.task, None)
            self._printed.pop(update.task, None)
        if update.done:
            self._finished.add(update.task)
        started = self._started.setdefault(update.task, now)
        last = self._printed.get(update.task)
        waited = now - (started if last is None else last) >= self.interval
        if waited or (not self.transient and (last is None or update.done)):
            self._printed[update.task] = now
            self.console.print(
                self.line(update, now - started), markup=False, highlight=False, soft_wrap=True
            )

    @staticmethod
    def line(update: ProgressUpdate, elapsed: float) -> str:
        """One full line for ``update`` after ``elapsed`` seconds."""
        parts = [update.task]
        if update.total:
            parts.append(f"{update.completed}/{update.total} ({100 * update.completed // update.total}%)")
        else:
            parts.append(str(update.completed))
        parts.append(f" {_clock(elapsed)} elapsed")
        if update.total and 0 < update.completed < update.total:
            left = elapsed / update.completed * (update.total - update.completed)
            parts.append(f" {_clock(left)} left")
        if update.description:
            parts.append(f" {update.description}")
        if update.info:
            parts.append(f" {_format_info(dict(update.info))}")
        return " ".join(parts)


class RichProgress:
    """A context manager that is also a ``ProgressCallback``: bars in a terminal, else
    :class:`PlainLines` (every ``interval`` seconds).

    >>> with RichProgress() as progress:
    ...     run_something(progress=progress)
    """

    def __init__(
        self, console: Console | None = None, *, transient: bool = False, interval: float = 30.0
    ) -> None:
        console = console or Console(stderr=True)
        # Outside a terminal Rich cannot redraw a bar; it prints the last one, cut to 80 columns.
        self._plain = (
            None if console.is_terminal else PlainLines(console, interval=interval, transient=transient)
        )
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[task]:<10}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=transient,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        if self._plain is None:
            self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._plain is None:
            self._progress.__exit__(exc_type, exc, tb)

    def __call__(self, update: ProgressUpdate) -> None:
        if self._plain is not None:
            self._plain(update)
            return
        text = update.description
        if update.info:
            text = f"{text}  {_format_info(dict(update.info))}".strip()
        task_id = self._tasks.get(update.task)
        if task_id is None:
            task_id = self._progress.add_task(text, total=update.total, task=update.task)
            self._tasks[update.task] = task_id
        self._progress.update(task_id, completed=update.completed, total=update.total, description=text)
        if update.done:
            self._progress.update(
                task_id, completed=update.total if update.total is not None else update.completed
            )
