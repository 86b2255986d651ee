"""Progress outside a terminal: whole lines at a steady interval, never cut to the console width."""

from __future__ import annotations

import io

from rich.console import Console

from vistr_cli.progress import PlainLines, RichProgress
from vistr_core.progress import ProgressUpdate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def narrow_log() -> tuple[Console, io.StringIO]:
    """A 40-column console writing to a file, as when stderr is redirected."""
    out = io.StringIO()
    return Console(file=out, width=40, force_terminal=False), out


def train(progress, clock: FakeClock, steps: int = 100) -> None:
    """A training loop's updates: one step per second."""
    for step in range(1, steps + 1):
        clock.now = float(step)
        info = {"loss": 10.305 - step / 100, "lr": 1e-4}
        progress(
            ProgressUpdate("iterations", step, steps, description="epoch 3", info=info, done=step == steps)
        )


def test_lines_are_whole_and_come_at_a_steady_interval():
    console, out = narrow_log()
    clock = FakeClock()
    train(PlainLines(console, interval=30.0, clock=clock), clock)
    lines = out.getvalue().splitlines()
    # the first update (t=1), then every 30 s (t=31, 61, 91), then the last (t=100)
    assert [line.split()[1] for line in lines] == ["1/100", "31/100", "61/100", "91/100", "100/100"]
    assert (
        lines[1] == "iterations 31/100 (31%)  0:00:30 elapsed  0:01:06 left  epoch 3  loss 9.995  lr 0.0001"
    )
    assert lines[-1] == "iterations 100/100 (100%)  0:01:39 elapsed  epoch 3  loss 9.305  lr 0.0001"


def test_transient_displays_print_only_interval_lines_and_tasks_restart():
    console, out = narrow_log()
    clock = FakeClock()
    plain = PlainLines(console, interval=30.0, transient=True, clock=clock)
    train(plain, clock, steps=20)  # shorter than the interval: nothing left behind
    assert out.getvalue() == ""
    plain = PlainLines(console, interval=30.0, clock=clock)
    for video in ("a", "b"):  # the same task name, once per video
        for k in range(1, 4):
            plain(ProgressUpdate("frames", k, 3, description=video, done=k == 3))
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["1/3", "3/3", "1/3", "3/3"]


def test_rich_progress_prints_plain_lines_when_not_a_terminal():
    console, out = narrow_log()
    with RichProgress(console, interval=0.0) as progress:
        progress(ProgressUpdate("iterations", 5, 10, description="epoch 1", info={"loss": 10.305}))
    assert out.getvalue().startswith("iterations 5/10 (50%)  0:00:00 elapsed")
    assert out.getvalue().rstrip().endswith("epoch 1  loss 10.305")  # not cut at 40 columns
    assert len(out.getvalue().splitlines()) == 1
