"""Seconds per training iteration on the CPU, split into its stages.

For each configuration one clip per step (batch 1, fp32) goes through exactly what the trainer
does, timed stage by stage:

1. ``data``: the next batch from the training loader (decode JPEGs, sample a window, augment,
   build targets; ``workers=0`` so the cost is visible rather than hidden behind workers);
2. ``forward``: the model in train mode (with the auxiliary decoder outputs);
3. ``match_loss``: the sequence matcher (final + auxiliary layers) and the set criterion;
4. ``backward_step``: backward, gradient clipping, AdamW step.

Configurations: ``tiny`` (its own preset: T=6, n=5, ResNet-18, d=192, 128-px short side) and
``vistr_r50`` at T=6, n=10, 192x256 frames (the reference's architecture, smaller clips). The
reference needs ~13 s per step for the r50 setting on this kind of machine (its Python loops over
frames and instances and its pure-PyTorch deformable convolution); the target is <= 4.3 s.

The machine may be shared: per stage, the median wall time and the median CPU time of this process
(all threads; about threads x wall on an idle machine) are reported, with the load average.

Each configuration runs twice: as the trainer does (masks computed after matching, for the matched
slots only: ``defer_masks=True``) and as before that (``<name>_all_slot_masks``: every slot's masks
in the forward), so the saving is a ratio measured in one run.

    python benchmarks/train_step.py [--steps 5] [--only tiny|vistr_r50]

Prints the figures and writes benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from vistr_core.config import DataConfig, Preset, TrainConfig
from vistr_core.data.loader import build_train_loader
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.engine.optim import build_optimizer
from vistr_core.losses import build_criterion
from vistr_core.model import build_vistr
from vistr_core.presets import get_preset

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info  # noqa: E402

STAGES = ("data", "forward", "match_loss", "backward_step")


def r50_small() -> Preset:
    """vistr_r50 at T=6, n=10, 192x256 frames (no crop, so every clip has that size)."""
    r50 = get_preset("vistr_r50")
    return dataclasses.replace(
        r50,
        model=dataclasses.replace(r50.model, num_frames=6, num_instances=10),
        data=DataConfig(
            short_side=192, max_size=256, train_scales=(192,), train_max_size=256, crop_range=None
        ),
    )


def configurations() -> dict[str, tuple[Preset, tuple[int, int]]]:
    """name -> (preset, synthetic frame size)."""
    return {"tiny": (get_preset("tiny"), (128, 160)), "vistr_r50": (r50_small(), (192, 256))}


class Clock:
    """Per-stage wall time and process CPU time (all threads) of one step."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.times[stage] = now[0] - self._last[0]
        self.cpu[stage] = now[1] - self._last[1]
        self._last = now


def measure(preset: Preset, size: tuple[int, int], steps: int, workdir: Path, *, defer_masks: bool) -> dict:
    data_root = workdir / f"data_{size[0]}x{size[1]}"
    if not data_root.exists():
        generate_synthetic(
            data_root, videos=8, valid_videos=1, frames=12, size=size, seed=0, difficulty="medium"
        )
    loader = build_train_loader(data_root, preset=preset, batch_size=1, workers=0, seed=0, pin_memory=False)
    categories = loader.dataset.category_map
    torch.manual_seed(0)
    model = build_vistr(dataclasses.replace(preset.model, num_classes=categories.num_classes)).train()
    config = TrainConfig()
    criterion = build_criterion(categories.num_classes, config)
    optimizer = build_optimizer(model, config)
    batches = _epochs(loader)  # 8 clips an epoch: --steps beyond that start another
    rows, cpu_rows = [], []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        clock = Clock()
        batch = next(batches)
        clock.lap("data")
        outputs = model(batch.frames, batch.pad_mask, defer_masks=defer_masks)
        clock.lap("forward")
        losses = criterion(outputs, batch.targets)
        clock.lap("match_loss")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_max_norm)
        optimizer.step()
        clock.lap("backward_step")
        rows.append(clock.times)
        cpu_rows.append(clock.cpu)
    median, cpu_median = _medians(rows[1:]), _medians(cpu_rows[1:])
    return {
        "frames": list(batch.frames.shape),
        "num_frames": preset.model.num_frames,
        "num_instances": preset.model.num_instances,
        "backbone": preset.model.backbone,
        "hidden_dim": preset.model.hidden_dim,
        "steps": steps,
        "defer_masks": defer_masks,
        "seconds_per_step": {k: round(v, 4) for k, v in median.items()},
        "cpu_seconds_per_step": {k: round(v, 4) for k, v in cpu_median.items()},
        "params": sum(p.numel() for p in model.parameters()),
    }


def _epochs(loader: Iterable) -> Iterator:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def _medians(rows: list[dict[str, float]]) -> dict[str, float]:
    median = {stage: statistics.median(r[stage] for r in rows) for stage in STAGES}
    median["total"] = statistics.median(sum(r.values()) for r in rows)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--only", choices=sorted(configurations()), default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (preset, size) in configurations().items():
            if args.only and name != args.only:
                continue
            for key, defer in ((name, True), (f"{name}_all_slot_masks", False)):
                load_before = os.getloadavg()[0]
                results[key] = measure(preset, size, args.steps, Path(tmp), defer_masks=defer)
                results[key]["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                for kind in ("seconds_per_step", "cpu_seconds_per_step"):
                    split = "  ".join(f"{k} {v:.3f}s" for k, v in results[key][kind].items())
                    print(f"{key:24s} {kind:22s} {split}")
                print(
                    f"{key:24s} frames {results[key]['frames']}, load average {results[key]['load_average']}"
                )
    out = Path(__file__).parent / "results" / "train_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() and args.only else {}
    report = {
        **previous,
        "machine": {
            **cpu_info(),
            "threads": torch.get_num_threads(),
        },
        "torch": torch.__version__,
        "reference_r50_seconds_per_step": 13.0,
        "target_r50_seconds_per_step": 4.3,
        **results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
