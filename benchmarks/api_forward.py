"""The Python API's CPU forward against the CLI's: is the library fast without an extra call?

A random-weight model of the preset is saved in the official release format; then each mode runs in
a fresh process (modes alternated, so a busy spell hits them all alike), loads it and times forwards
of one clip:

- ``api``: the README's Python example, nothing else: ``load_model(path)``, ``model(frames)`` under
  ``torch.inference_mode()``.
- ``cli``: what the CLI's process did before each command until this change: ``keep_freed_memory()``
  called explicitly before loading, then the same.
- ``system_malloc``: ``VISTR_KEEP_FREED_MEMORY=0``: glibc's default malloc, which is what the API
  got before ``build_vistr`` applied the tuning itself.

``api`` ≈ ``cli`` < ``system_malloc`` means library users get the CLI's speed by default.

    python benchmarks/api_forward.py                                   # vistr_r50, 36 x 300 x 540
    python benchmarks/api_forward.py --preset tiny --frames 4 --size 64x96 --repeats 1   # smoke run

Prints the figures and writes benchmarks/results/api_forward.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("api", "cli", "system_malloc")
CHILD = """
import json, sys, time
import torch
mode, path, frames, height, width, forwards = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
if mode == "cli":
    from vistr_core.model.cpu_memory import keep_freed_memory
    keep_freed_memory()
from vistr_core import load_model
start = time.perf_counter()
model = load_model(path, num_frames=frames)
load_s = time.perf_counter() - start
clip = torch.randn(1, frames, 3, height, width, generator=torch.Generator().manual_seed(0))
seconds, cpu = [], []
with torch.inference_mode():
    for _ in range(forwards):
        start, cpu_start = time.perf_counter(), time.process_time()
        model(clip)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
from vistr_core.model.cpu_memory import keep_freed_memory
print(json.dumps({"load_s": load_s, "forward_s": seconds, "forward_cpu_s": cpu,
                  "malloc_tuned": keep_freed_memory(),
                  "threads": torch.get_num_threads()}))
"""


def save_official_format(preset: str, frames: int, path: Path) -> None:
    """Random weights of ``preset`` with T = ``frames``, as ``{"model": state_dict}`` (release layout)."""
    import torch

    from vistr_core.model import build_vistr
    from vistr_core.presets import get_preset

    config = dataclasses.replace(get_preset(preset).model, num_frames=frames)
    torch.save({"model": build_vistr(config).state_dict()}, path)


def run_mode(mode: str, checkpoint: Path, frames: int, size: tuple[int, int], forwards: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VISTR_KEEP_FREED_MEMORY", None)
    if mode == "system_malloc":
        env["VISTR_KEEP_FREED_MEMORY"] = "0"
    args = [mode, str(checkpoint), str(frames), *map(str, size), str(forwards)]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - start
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="vistr_r50")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", default="300x540", help="HxW of the clip")
    parser.add_argument("--forwards", type=int, default=2, help="forwards per process (the first is cold)")
    parser.add_argument("--repeats", type=int, default=3, help="processes per mode")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / f"{args.preset}_random.pth"
        save_official_format(args.preset, args.frames, checkpoint)
        for _ in range(args.repeats):
            for mode in MODES:
                runs[mode].append(run_mode(mode, checkpoint, args.frames, size, args.forwards))
    results = {}
    for mode, figures in runs.items():
        first = [f["forward_s"][0] for f in figures]
        later = [min(f["forward_s"][1:]) for f in figures if len(f["forward_s"]) > 1]
        results[mode] = {
            "malloc_tuned": figures[0]["malloc_tuned"],
            "load_s_median": round(statistics.median(f["load_s"] for f in figures), 2),
            "first_forward_s_median": round(statistics.median(first), 2),
            "later_forward_s_median": round(statistics.median(later), 2) if later else None,
            # process CPU time (all threads) of the last forward: less sensitive to a busy machine
            "last_forward_cpu_s_median": round(statistics.median(f["forward_cpu_s"][-1] for f in figures), 2),
            "process_s_median": round(statistics.median(f["process_s"] for f in figures), 2),
        }
        print(f"{mode:>14}: {results[mode]}", flush=True)
    key = "later_forward_s_median" if args.forwards > 1 else "first_forward_s_median"
    ratios = {
        "api_over_cli": round(results["api"][key] / results["cli"][key], 3),
        "system_malloc_over_api": round(results["system_malloc"][key] / results["api"][key], 3),
    }
    print(f"ratios ({key}): {ratios}")
    report = {
        "benchmark": "api_forward",
        "preset": args.preset,
        "clip": f"{args.frames}x{size[0]}x{size[1]}",
        "forwards_per_process": args.forwards,
        "repeats": args.repeats,
        "results": results,
        "ratios": ratios,
        "threads": runs["api"][0]["threads"],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    path = Path(__file__).parent / "results" / "api_forward.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
