"""Forward speed of VisTR models: seconds per clip, frames/s, peak memory, time per stage.

    python benchmarks/model_forward.py                       # vistr_r50 and tiny, 36 x 300 x 540
    python benchmarks/model_forward.py --size 150x270 --repeat 3
    python benchmarks/model_forward.py --models vistr_r50 --precision fp32 bf16   # same run, both
    python benchmarks/model_forward.py --models vistr_r50 --device cuda --precision fp32 tf32 bf16 \
        --window-batch 1 4

``--precision`` takes one or more of fp32, tf32 (CUDA: fp32 tensors, TF32 matrix units), bf16,
fp16 (CUDA) and auto (what ``vistr segment`` would pick here); each model runs in each, one after
the other, and bf16/fp16 report their speed-up over fp32 of the same run. ``--window-batch B``
puts B clips through at once (``vistr segment --window-batch``). Weights are random (speed does
not depend on them). Prints a table and writes benchmarks/results/model_forward.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from vistr_core.engine.device import autocast, cpu_bf16_support, resolve_precision, select_device
from vistr_core.model import build_vistr
from vistr_core.model.cpu_memory import keep_freed_memory
from vistr_core.presets import get_preset

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

STAGES = {
    "backbone": "vistr.backbone.0",
    "position_encoding": "vistr.backbone.1",
    "transformer": "vistr.transformer",
    "attention_maps": "bbox_attention",
    "mask_head": "mask_head",
    "sequence_head_3d": "insmask_head",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def stage_timer(
    model: torch.nn.Module, device: torch.device, totals: dict[str, float], cpu: dict[str, float]
):
    """Accumulate wall and process-CPU time per top-level stage with forward pre/post hooks."""
    handles, starts = [], {}
    for stage, path in STAGES.items():
        module = model.get_submodule(path)

        def pre(_m, _a, stage=stage):
            _sync(device)
            starts[stage] = (time.perf_counter(), time.process_time())

        def post(_m, _a, _o, stage=stage):
            _sync(device)
            wall, proc = starts[stage]
            totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - wall
            cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - proc

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@contextmanager
def tf32(enabled: bool):
    """TF32 matrix units for fp32 matmuls and convolutions on CUDA (no effect on the CPU)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def bench_model(
    name: str,
    frames: int | None,
    size: tuple[int, int],
    repeat: int,
    device: torch.device,
    precision: str = "fp32",
    window_batch: int = 1,
) -> dict:
    cfg = get_preset(name).model
    if frames is not None:
        cfg = dataclasses.replace(cfg, num_frames=frames)
    torch.manual_seed(0)
    model = build_vistr(cfg).to(device).eval()
    clip = torch.randn(window_batch, cfg.num_frames, 3, *size, device=device)
    choice = resolve_precision("fp32" if precision == "tf32" else precision, device)
    with torch.inference_mode(), autocast(device, choice.dtype), tf32(precision == "tf32"):
        model(clip)  # warm-up (allocator, oneDNN/cuDNN kernel selection)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        walls, cpus, stages, stages_cpu = [], [], {}, {}
        for _ in range(repeat):
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            with stage_timer(model, device, stages, stages_cpu):
                model(clip)
            _sync(device)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    best = min(walls) / window_batch
    return {
        "model": name,
        "frames": cfg.num_frames,
        "height": size[0],
        "width": size[1],
        "window_batch": window_batch,
        "precision": "tf32" if precision == "tf32" else choice.name,
        "precision_reason": choice.reason,
        "seconds_per_clip": best,
        "seconds_per_forward_all": walls,
        "process_cpu_seconds_all": cpus,
        "frames_per_second": cfg.num_frames / best,
        "peak_memory_mb": peak_memory_mb(device),
        "stage_seconds_mean": {k: v / repeat for k, v in stages.items()},
        "stage_process_cpu_seconds_mean": {k: v / repeat for k, v in stages_cpu.items()},
    }


def cpu_model() -> str:
    """The CPU's model name (platform.processor() is often empty on Linux)."""
    return cpu_info()["model"]


def _print_row(r: dict) -> None:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["stage_seconds_mean"].items())
    speedup = f" ({r['speedup_over_fp32']:.2f}x fp32)" if "speedup_over_fp32" in r else ""
    print(
        f"{r['model']:10s} T={r['frames']} {r['height']}x{r['width']} B={r['window_batch']} {r['precision']}: "
        f"{r['seconds_per_clip']:.2f} s/clip{speedup}, {r['frames_per_second']:.2f} frames/s, "
        f"process CPU {min(r['process_cpu_seconds_all']):.1f} s, peak {r['peak_memory_mb']:.0f} MB | {stages}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vistr_r50", "tiny"])
    parser.add_argument("--frames", type=int, default=36, help="clip length T for every model (default 36)")
    parser.add_argument("--size", default="300x540", help="HxW of the frames (default 300x540)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="timed runs after one warm-up; the best is reported"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--precision", nargs="+", default=["fp32"], choices=["fp32", "tf32", "bf16", "fp16", "auto"]
    )
    parser.add_argument("--window-batch", nargs="+", type=int, default=[1], help="clips per forward")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's malloc as is (default: keep freed memory, see vistr_core.model.cpu_memory)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_forward.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if args.system_malloc:  # build_vistr would tune malloc otherwise
        os.environ["VISTR_KEEP_FREED_MEMORY"] = "0"
    malloc_tuned = keep_freed_memory()
    size = tuple(int(s) for s in args.size.lower().split("x"))
    results = []
    for name in args.models:
        for batch in args.window_batch:
            fp32 = None
            for precision in args.precision:
                r = bench_model(name, args.frames, size, args.repeat, device, precision, batch)
                fp32 = r["seconds_per_clip"] if r["precision"] == "fp32" and fp32 is None else fp32
                if fp32 is not None and r["precision"] != "fp32":
                    r["speedup_over_fp32"] = fp32 / r["seconds_per_clip"]
                results.append(r)
                _print_row(r)
    report = {
        "benchmark": "model_forward",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_native_bf16": cpu_bf16_support(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "malloc_keeps_freed_memory": malloc_tuned,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    write_report(Path(args.out), report)


if __name__ == "__main__":
    main()
