"""Speed of the CPU deformable convolution against torchvision's CPU kernel.

For each shape (the mask head's: N = slots x frames, Cin = d/8, Cout = d/16, H x W = frame / 4):

- ``train``: forward + backward with gradients for input, offsets and weight (the trainer's case);
- ``infer``: forward without gradients (``vistr segment``'s case).

Offsets are random (scale 2 pixels), weights and gradients too. Median of ``--repeat`` runs after
one warm-up run.

    python benchmarks/deform_conv.py [--repeat 5] [--out benchmarks/results/deform_conv.json]

To compare with another version of vistr_core, run this file with that checkout first on
PYTHONPATH (``PYTHONPATH=../old python benchmarks/deform_conv.py --out before.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

import vistr_core
from vistr_core.ops.deform_conv import deform_conv2d_cpu

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

# (name, N, Cin, Cout, H, W)
SHAPES = (
    ("tiny train, 192x256 frames", 24, 24, 12, 48, 64),
    ("tiny train, largest scale", 32, 24, 12, 52, 70),
    ("tiny segment, 20 slot-frames", 20, 24, 12, 48, 64),
    ("r50 train (2 objects x 6 frames)", 12, 48, 24, 48, 64),
    ("r50 segment (10 slots x 6 frames)", 60, 48, 24, 48, 64),
)


def _inputs(n: int, cin: int, cout: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, cin, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    offset = 2.0 * torch.randn(n, 18, h, w, generator=g)
    weight = torch.randn(cout, cin, 3, 3, generator=g) / (cin * 9) ** 0.5
    grad = torch.randn(n, cout, h, w, generator=g)
    return x, offset, weight, grad


def _train_seconds(fn, x, offset, weight, grad) -> float:
    leaves = [t.detach().clone().requires_grad_() for t in (x, offset, weight)]
    start = time.perf_counter()
    out = fn(*leaves)
    torch.autograd.grad(out, leaves, grad)
    return time.perf_counter() - start


def _infer_seconds(fn, x, offset, weight, grad) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        fn(x, offset, weight)
        return time.perf_counter() - start


def _median(measure, fn, inputs, repeat: int) -> float:
    measure(fn, *inputs)  # warm-up
    return statistics.median(measure(fn, *inputs) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "deform_conv.json")
    args = parser.parse_args()

    def ours(x, o, w):
        return deform_conv2d_cpu(x, o, w, padding=1)

    def theirs(x, o, w):
        return torchvision.ops.deform_conv2d(x, o, w, padding=(1, 1))

    rows = []
    for name, *shape in SHAPES:
        inputs = _inputs(*shape)
        row = {"shape": name, "n_cin_cout_h_w": shape}
        for mode, measure in (("train", _train_seconds), ("infer", _infer_seconds)):
            row[f"{mode}_ms"] = round(1e3 * _median(measure, ours, inputs, args.repeat), 1)
            row[f"{mode}_torchvision_ms"] = round(1e3 * _median(measure, theirs, inputs, args.repeat), 1)
        rows.append(row)
        print(
            f"{name:32s} train {row['train_ms']:7.1f} ms (torchvision {row['train_torchvision_ms']:7.1f})"
            f"   infer {row['infer_ms']:7.1f} ms (torchvision {row['infer_torchvision_ms']:7.1f})"
        )
    machine = cpu_info() | {"threads": torch.get_num_threads()}
    print(f"{machine['model']} {' '.join(machine['flags'])}, {machine['threads']} threads")
    report = {
        "machine": machine,
        "torch": torch.__version__,
        "vistr_core": str(Path(vistr_core.__file__).parent),
        "repeat": args.repeat,
        "rows": rows,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
