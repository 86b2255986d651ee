"""Speed of the 3-D mask head's dilated convolutions on the training path: the sub-grids folded
into one 2-D convolution (frames <= ``MAX_FOLDED_FRAMES`` sub-grid frames, the default) against
the same sub-grids through the 3-D kernel (the path before, and the one for longer clips).

Shapes are the tiny preset's (T = 4 frames, so sub-grids of 2 frames; N = matched objects x 2
clips; C = 12 -> 6 -> 6 channels at 1/4 of the frame) and one vistr_r50-like clip of 6 frames
(sub-grids of 3 frames: the 3-D kernel either way since folding them, the 2-D weight with a zero
block, measured 1.02x in fp32 and 0.93x in bf16). Forward + backward (input, weight
and bias gradients), fp32 and under bf16 autocast, the two paths interleaved; medians of
``--repeat`` runs after two warm-ups.

    python benchmarks/head_conv3d.py [--repeat 10] [--out benchmarks/results/head_conv3d.json]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

import vistr_core.model.segmentation as segmentation
from vistr_core.model.cpu_memory import keep_freed_memory
from vistr_core.model.segmentation import SubgridDilatedConv3d

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

# (name, N, Cin, Cout, T, H, W): the conv's input [N, Cin, T, H, W]
SHAPES = (
    ("tiny, 2 objects, 192x256 frames, first conv", 4, 12, 6, 4, 48, 64),
    ("tiny, 2 objects, 192x256 frames, second conv", 4, 6, 6, 4, 48, 64),
    ("tiny, 6 objects, largest scale, first conv", 12, 12, 6, 4, 52, 70),
    ("tiny, 6 objects, largest scale, second conv", 12, 6, 6, 4, 52, 70),
    ("r50-like, 2 objects, 6 frames", 2, 24, 12, 6, 48, 64),
)


def _seconds(conv: SubgridDilatedConv3d, x: torch.Tensor, grad: torch.Tensor, amp: bool) -> float:
    leaf = x.detach().clone().requires_grad_()
    conv.zero_grad(set_to_none=True)
    cast = torch.autocast("cpu", torch.bfloat16) if amp else contextlib.nullcontext()
    start = time.perf_counter()
    with cast:
        out = conv(leaf)
    out.float().backward(grad)
    return time.perf_counter() - start


def _compare(shape: tuple[int, ...], amp: bool, repeat: int) -> dict[str, float]:
    n, cin, cout, t, h, w = shape
    g = torch.Generator().manual_seed(0)
    conv = SubgridDilatedConv3d(cin, cout, 3, padding=2, dilation=2)
    x = torch.randn(n, cin, t, h, w, generator=g).contiguous(memory_format=torch.channels_last_3d)
    grad = torch.randn(n, cout, t, h, w, generator=g)
    times: dict[str, list[float]] = {"folded": [], "conv3d": []}
    default = segmentation.MAX_FOLDED_FRAMES
    try:
        for i in range(repeat + 2):
            for path, limit in (("folded", default), ("conv3d", 0)):
                segmentation.MAX_FOLDED_FRAMES = limit
                seconds = _seconds(conv, x, grad, amp)
                if i >= 2:
                    times[path].append(seconds)
    finally:
        segmentation.MAX_FOLDED_FRAMES = default
    return {f"{path}_ms": round(1e3 * statistics.median(ts), 2) for path, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "head_conv3d.json")
    args = parser.parse_args()
    keep_freed_memory()
    rows = []
    for name, *shape in SHAPES:
        for amp in (False, True):
            row = {"shape": name, "n_cin_cout_t_h_w": shape, "precision": "bf16" if amp else "fp32"}
            row |= _compare(tuple(shape), amp, args.repeat)
            row["speedup"] = round(row["conv3d_ms"] / row["folded_ms"], 2)
            rows.append(row)
            print(
                f"{name:46s} {row['precision']}: folded {row['folded_ms']:7.2f} ms, "
                f"3-D kernel {row['conv3d_ms']:7.2f} ms ({row['speedup']:.2f}x)"
            )
    machine = cpu_info() | {"threads": torch.get_num_threads()}
    print(f"{machine['model']} {' '.join(machine['flags'])}, {machine['threads']} threads")
    write_report(
        args.out, {"machine": machine, "torch": torch.__version__, "repeat": args.repeat, "rows": rows}
    )


if __name__ == "__main__":
    main()
