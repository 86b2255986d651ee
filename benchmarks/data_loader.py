"""Training data throughput: 36-frame clips through the full pipeline (JPEG decode, RLE decode,
clip-consistent augmentation to ~300x540, normalization, collation).

A synthetic YouTube-VIS dataset (``medium`` difficulty, 36 frames per video) is generated in a
temporary folder at the source resolution (default 720x1280, YouTube-VIS's most common size), then
``build_train_loader`` runs with the ``vistr_r50`` preset (flip, multi-scale, crop, final resize to
short side 300 / long side <= 540, photometric jitter) and, for comparison, the evaluation resize
only. Worker start-up is excluded (the first batch is not timed).

    python benchmarks/data_loader.py [--source 720x1280] [--videos 3] [--clips 24] [--workers 0 2]

Prints the figures and writes benchmarks/results/data_loader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from vistr_core.config import DataConfig
from vistr_core.data.loader import build_train_loader
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.presets import get_preset


def measure(root: Path, *, workers: int, clips: int, train: bool, data_config: DataConfig) -> dict:
    loader = build_train_loader(
        root, preset="vistr_r50", data_config=data_config, batch_size=1, workers=workers, seed=0, train=train
    )
    done, shapes, instances = 0, [], 0
    epoch = 0
    start = None
    while done < clips + 1:
        loader.set_epoch(epoch)
        for batch in loader:
            if start is None:
                start = time.perf_counter()  # after the first batch: workers are up
            else:
                done += 1
                shapes.append(tuple(batch.frames.shape[-2:]))
                instances += sum(t.num_instances for t in batch.targets)
            if done >= clips:
                break
        epoch += 1
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "augment": train,
        "clips": clips,
        "seconds": round(seconds, 3),
        "clips_per_s": round(clips / seconds, 3),
        "frames_per_s": round(36 * clips / seconds, 1),
        "mean_output_hw": [
            round(sum(s[0] for s in shapes) / len(shapes)),
            round(sum(s[1] for s in shapes) / len(shapes)),
        ],
        "mean_instances_per_clip": round(instances / clips, 2),
    }


def cpu_cost(root: Path, *, clips: int, train: bool, data_config: DataConfig) -> dict:
    """CPU seconds per clip in this process (one thread): a figure that other jobs on a shared
    machine do not distort, unlike wall-clock throughput."""
    torch.set_num_threads(1)
    loader = build_train_loader(
        root, preset="vistr_r50", data_config=data_config, workers=0, seed=0, train=train
    )
    dataset = loader.dataset
    dataset[(0, 0, 0)]  # warm up
    start = time.process_time()
    for i in range(clips):
        dataset[(i, 1, 0)]
    per_clip = (time.process_time() - start) / clips
    return {
        "augment": train,
        "cpu_seconds_per_clip": round(per_clip, 3),
        "clips_per_s_per_free_core": round(1 / per_clip, 2),
        "clips_per_s_on_2_free_cores": round(2 / per_clip, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="720x1280", help="source frame size HxW")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--clips", type=int, default=24, help="timed clips per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_loader.json")
    args = parser.parse_args()
    height, width = (int(v) for v in args.source.split("x"))
    data_config = get_preset("vistr_r50").data
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shapes"
        t0 = time.perf_counter()
        generate_synthetic(
            root, videos=args.videos, valid_videos=0, frames=36, size=(height, width), difficulty="medium"
        )
        generation = time.perf_counter() - t0
        print(f"generated {args.videos} videos x 36 frames at {height}x{width} in {generation:.1f} s")
        costs = []
        for train in (True, False):
            cost = cpu_cost(root, clips=args.clips, train=train, data_config=data_config)
            costs.append(cost)
            kind = "train augmentation" if train else "eval resize only  "
            print(
                f"{kind} CPU cost: {cost['cpu_seconds_per_clip']:.3f} s/clip -> "
                f"{cost['clips_per_s_on_2_free_cores']:.2f} clips/s on 2 free cores"
            )
        torch.set_num_threads(os.cpu_count() or 1)
        for train in (True, False):
            for workers in args.workers:
                result = measure(
                    root, workers=workers, clips=args.clips, train=train, data_config=data_config
                )
                runs.append(result)
                kind = "train augmentation" if train else "eval resize only  "
                print(
                    f"{kind} workers={workers}: {result['clips_per_s']:.2f} clips/s "
                    f"({result['frames_per_s']:.0f} frames/s), output ~{result['mean_output_hw'][0]}x{result['mean_output_hw'][1]}"
                )
    report = {
        "benchmark": "data_loader",
        "source_hw": [height, width],
        "frames_per_clip": 36,
        "preset": "vistr_r50",
        "batch_size": 1,
        "cpu_cost": costs,
        "runs": runs,
        "load_average_at_end": list(os.getloadavg()),
        "generation_seconds": round(generation, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "note": (
            "runs = wall-clock DataLoader throughput on a shared 2-core machine (other jobs running: see "
            "load_average_at_end); cpu_cost = CPU time per clip, independent of that load"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
