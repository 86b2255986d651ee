"""How long re-linking takes, and how much memory, on the history of a very long video.

Re-linking (:mod:`vistr_core.inference.relink`) runs once per video, after the last window. Here
it gets a synthetic history: ``--tracks`` tracks of 30-600 windows each, spread over ``--windows``
windows (9000 windows of T = 4 with overlap 1 are 27 000 frames, 15 minutes at 30 fps), each
window missing with probability ``--miss`` (every gap cuts a track, so flickering tracks make many
pieces). Random colours and boxes, 2 % of windows with another class. Prints and writes JSON.

    python benchmarks/relink_scale.py --miss 0 0.1 0.3
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

import torch

from vistr_core.inference.relink import WindowEntry, cut_tracks, relink

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "relink_scale.json"
STRIDE = 3  # stream positions between window starts (T = 4, overlap 1)


def synthetic_history(windows: int, tracks: int, miss: float, seed: int) -> dict[int, list[WindowEntry]]:
    """Track id -> window entries: each track a random colour drifting in place, windows dropped with
    probability ``miss``."""
    rng = random.Random(seed)
    history = {}
    for track_id in range(1, tracks + 1):
        start = rng.randrange(0, windows - 30)
        length = rng.randrange(30, max(31, min(600, windows - start)))
        colour = torch.tensor([float(rng.randrange(256)) for _ in range(3)])
        x, y = rng.uniform(0, 200), rng.uniform(0, 200)
        entries = []
        for window in range(start, start + length):
            x, y = x + rng.uniform(-2, 2), y + rng.uniform(-2, 2)
            if rng.random() < miss:
                continue
            box = torch.tensor([x, y, x + 20, y + 20])
            label = rng.randrange(3) if rng.random() < 0.02 else track_id % 3
            first = window * STRIDE
            entries.append(WindowEntry(window, first + 1, first, first + 3, label, colour, box, box))
        if entries:
            history[track_id] = entries
    return history


def measure(history: dict[int, list[WindowEntry]]) -> dict:
    """Seconds and peak traced memory of one :func:`relink` call with the segmenter's defaults."""
    tracemalloc.start()
    start = time.perf_counter()
    result = relink(
        history, span=3, cut_colour=20.0, join_colour=20.0, max_gap=96, min_giou=-0.5, scale=64.0, overlap=2
    )
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": round(seconds, 3), "peak_mb": round(peak / 1e6, 1), "joins": len(result.joins)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=9000)
    parser.add_argument("--tracks", type=int, default=300)
    parser.add_argument("--miss", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for miss in args.miss:
        history = synthetic_history(args.windows, args.tracks, miss, args.seed)
        row = {
            "miss": miss,
            "tracks": len(history),
            "entries": sum(map(len, history.values())),
            "pieces": len(cut_tracks(history, 3, 20.0)),
            **measure(history),
        }
        print(row, flush=True)
        rows.append(row)
    report = {"windows": args.windows, "cpu": cpu_info(), "torch": torch.__version__, "rows": rows}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
