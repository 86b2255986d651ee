"""Library users get the CLI's malloc tuning from `build_vistr` / `load_model` (fresh processes).

Observed through glibc's own accounting (``mallinfo2().hblkhd``, bytes in mmapped blocks): with the
tuning a large tensor comes from the heap, without it from a fresh mmap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import ctypes, ctypes.util, json, sys
import torch
from vistr_core.model import build_vistr
from vistr_core.model.cpu_memory import keep_freed_memory
from vistr_core.presets import get_preset

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2

def mmapped_growth():
    mapped = libc.mallinfo2().hblkhd
    big = torch.empty(64 << 20, dtype=torch.uint8)  # 64 MB: above glibc's largest mmap threshold
    return libc.mallinfo2().hblkhd - mapped

imported = mmapped_growth()  # vistr_core imported, nothing built yet
build_vistr(get_preset("tiny").model)
print(json.dumps({"imported": imported, "built": mmapped_growth(), "applied": keep_freed_memory()}))
"""


def _has_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(
            ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"
        )
    except OSError:
        return False


def _child(opt_out: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VISTR_KEEP_FREED_MEMORY", None)
    if opt_out is not None:
        env["VISTR_KEEP_FREED_MEMORY"] = opt_out
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_build_vistr_keeps_large_blocks_in_the_heap_unless_opted_out():
    tuned, system = _child(None), _child("0")
    # Importing vistr_core changes nothing process-wide: the tensor is still mmapped.
    assert tuned["imported"] >= 64 << 20 and system["imported"] >= 64 << 20
    assert tuned["applied"] is True and tuned["built"] == 0
    assert system["applied"] is False and system["built"] >= 64 << 20
