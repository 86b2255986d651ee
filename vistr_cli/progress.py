"""The Rich display for :mod:`vistr_core.progress` callbacks: one bar per task name."""

from __future__ import annotations

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


class RichProgress:
    """A context manager that is also a ``ProgressCallback``.

    >>> with RichProgress() as progress:
    ...     run_something(progress=progress)
    """

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[task]:<10}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console or Console(stderr=True),
            transient=transient,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def __call__(self, update: ProgressUpdate) -> None:
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
