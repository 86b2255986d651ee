"""What every benchmark records about the machine it ran on (its figures mean little without it)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """CPU model, the SIMD flags that matter to torch's kernels, CPU counts."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": model,
        "flags": [f for f in FLAGS if f in flags],
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "platform": platform.platform(),
    }


def write_report(out: Path, report: dict) -> None:
    """Write a benchmark's JSON report (creating its folder) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
