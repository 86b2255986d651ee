"""CPU training in bf16 (``vistr train --amp`` on a CPU with AMX or AVX512-BF16) against fp32.

Trains the same run three times from the same seed on the same synthetic data: in fp32 (backbone
included), in fp32 with the frozen backbone in bf16 (``--backbone-precision bf16``, what ``auto``
picks on such a CPU), and with ``--amp`` (everything in bf16). Reports the loss curves (every
step), their gaps to fp32 (mean over the last 50 steps, relative), and the speed: wall seconds and
process CPU seconds per step (CPU time is the fairer figure on a shared machine).

    python benchmarks/train_precision.py                        # 300 steps of `tiny`, single shapes at 96x128
    python benchmarks/train_precision.py --difficulty multi --size 192x256   # the quickstart's data
    python benchmarks/train_precision.py --steps 6 --videos 4   # a smoke test

On a CPU without native bf16, ``--amp`` trains in fp32: the script says so and exits 1.
Prints a summary and writes benchmarks/results/train_precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from model_forward import cpu_model  # noqa: E402

from vistr_core.data.synthetic import generate_synthetic  # noqa: E402
from vistr_core.engine.device import cpu_bf16_support, training_precision  # noqa: E402
from vistr_core.engine.trainer import train  # noqa: E402

# run name -> (amp, backbone_precision)
RUNS = {"fp32": (False, "fp32"), "bf16_backbone": (False, "bf16"), "bf16": (True, "auto")}


def run(data: Path, out: Path, *, name: str, steps: int, preset: str) -> dict:
    amp, backbone = RUNS[name]
    overrides = {"max_iters": steps, "epochs": 10_000, "workers": 0, "log_every": 1, "checkpoint_every": 0,
                 "amp": amp, "backbone_precision": backbone}  # fmt: skip
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    summary = train(data, preset=preset, out_dir=out, overrides=overrides, device="cpu")
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "precision": summary.precision.name,
        "reason": summary.precision.reason,
        "backbone_precision": summary.backbone_precision.name,
        "seconds_per_step": wall / steps,
        "process_cpu_seconds_per_step": cpu / steps,
        "loss": [line["loss"] for line in lines],
        "step": [line["step"] for line in lines],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--videos", type=int, default=60, help="synthetic training videos")
    parser.add_argument("--size", default="96x128", help="synthetic frame size HxW")
    parser.add_argument("--difficulty", default="single", help="synthetic scenes (the quickstart's: multi)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "train_precision.json"
    )
    args = parser.parse_args()
    choice = training_precision(True, torch.device("cpu"))
    if choice.dtype is None:
        print(f"nothing to compare: {choice.reason}")
        raise SystemExit(1)
    size = tuple(int(s) for s in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "shapes"
        generate_synthetic(data, videos=args.videos, valid_videos=1, frames=24, size=size, seed=0,
                           difficulty=args.difficulty)  # fmt: skip
        runs = {name: run(data, Path(tmp) / name, name=name, steps=args.steps, preset=args.preset)
                for name in RUNS}  # fmt: skip
    tail = min(50, args.steps)
    mean = {name: statistics.fmean(r["loss"][-tail:]) for name, r in runs.items()}
    report = {
        "benchmark": "train_precision",
        "preset": args.preset,
        "steps": args.steps,
        "data": {"videos": args.videos, "size": args.size, "difficulty": args.difficulty},
        "cpu": cpu_model(),
        "cpu_native_bf16": cpu_bf16_support(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        f"mean_loss_last_{tail}": mean,
        "loss_gap_relative": {name: (mean[name] - mean["fp32"]) / mean["fp32"] for name in RUNS},
        "speedup_wall": {
            name: runs["fp32"]["seconds_per_step"] / r["seconds_per_step"] for name, r in runs.items()
        },
        "speedup_process_cpu": {
            name: runs["fp32"]["process_cpu_seconds_per_step"] / r["process_cpu_seconds_per_step"]
            for name, r in runs.items()
        },
        "runs": runs,
    }
    for name, r in runs.items():
        print(f"{name}: {r['seconds_per_step']:.3f} s/step, {r['process_cpu_seconds_per_step']:.3f} CPU s/step, "
              f"mean loss of the last {tail} steps {mean[name]:.4f} ({r['reason']}; backbone "
              f"{r['backbone_precision']}); against fp32: {report['speedup_wall'][name]:.2f}x wall, "
              f"{report['speedup_process_cpu'][name]:.2f}x CPU time, loss {100 * report['loss_gap_relative'][name]:+.1f}%")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
