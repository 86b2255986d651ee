"""Forward speed of VisTR models: seconds per clip, frames/s, peak memory, time per stage.

    python benchmarks/model_forward.py                       # vistr_r50 and tiny, 36 x 300 x 540
    python benchmarks/model_forward.py --size 150x270 --repeat 3
    python benchmarks/model_forward.py --models vistr_r50 --frames 36 --device cuda   # AMP on CUDA

fp32 on CPU, autocast (bf16/fp16) on CUDA. Weights are random (speed does not depend on them).
Prints a table and writes benchmarks/results/model_forward.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from vistr_core.engine.device import amp_dtype, autocast, select_device
from vistr_core.model import build_vistr
from vistr_core.model.cpu_memory import keep_freed_memory
from vistr_core.presets import get_preset

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


def bench_model(
    name: str, frames: int | None, size: tuple[int, int], repeat: int, device: torch.device
) -> dict:
    cfg = get_preset(name).model
    if frames is not None:
        cfg = dataclasses.replace(cfg, num_frames=frames)
    torch.manual_seed(0)
    model = build_vistr(cfg).to(device).eval()
    clip = torch.randn(1, cfg.num_frames, 3, *size, device=device)
    use_amp = device.type == "cuda"
    with torch.inference_mode(), autocast(device, use_amp):
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
    best = min(walls)
    return {
        "model": name,
        "frames": cfg.num_frames,
        "height": size[0],
        "width": size[1],
        "precision": str(amp_dtype(device)).replace("torch.", "") if use_amp else "fp32",
        "seconds_per_clip": best,
        "seconds_per_clip_all": walls,
        "process_cpu_seconds_all": cpus,
        "frames_per_second": cfg.num_frames / best,
        "peak_memory_mb": peak_memory_mb(device),
        "stage_seconds_mean": {k: v / repeat for k, v in stages.items()},
        "stage_process_cpu_seconds_mean": {k: v / repeat for k, v in stages_cpu.items()},
    }


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
        r = bench_model(name, args.frames, size, args.repeat, device)
        results.append(r)
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["stage_seconds_mean"].items())
        print(
            f"{name:10s} T={r['frames']} {r['height']}x{r['width']} {r['precision']}: "
            f"{r['seconds_per_clip']:.2f} s/clip, {r['frames_per_second']:.2f} frames/s, "
            f"process CPU {min(r['process_cpu_seconds_all']):.1f} s, peak {r['peak_memory_mb']:.0f} MB | {stages}"
        )
    report = {
        "benchmark": "model_forward",
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "malloc_keeps_freed_memory": malloc_tuned,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
