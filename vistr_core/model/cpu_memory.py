"""Keeping freed CPU memory for reuse (glibc), a large speed-up for VisTR on CPU.

A 36-frame clip at 300x540 allocates and frees tens of GB of activations per forward, in
tensors of tens to hundreds of MB. glibc serves every allocation above 32 MB with a fresh
``mmap`` and returns it with ``munmap`` on free, so each such tensor is page-faulted in (and
zeroed by the kernel) again: about 4 million page faults and a fifth of the CPU time of a
forward. With mmap disabled and trimming off, freed blocks stay in the heap and are reused.
The cost: memory freed by this process is not given back to the OS until it exits (peak RSS
stays reserved), which suits a command-line run and a script that runs the model.

:func:`vistr_core.model.build_vistr` (so also ``load_model``) applies it, so library users get the
CLI's speed without an extra call; ``VISTR_KEEP_FREED_MEMORY=0`` in the environment keeps the
system's malloc behaviour (e.g. a long-lived service that builds a model once and must shrink).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
OPT_OUT = "VISTR_KEEP_FREED_MEMORY"
_applied: bool | None = None  # the outcome of the first call (mallopt is process-wide)


def keep_freed_memory() -> bool:
    """Make glibc malloc reuse freed memory instead of unmapping it (process-wide).

    Returns whether malloc keeps freed memory now: False where it does not apply (not Linux/glibc)
    or when the environment sets ``VISTR_KEEP_FREED_MEMORY=0``. Only the first call acts; later ones
    return its outcome. Call it before the large allocations (``build_vistr`` does).
    """
    global _applied
    if _applied is None:
        _applied = os.environ.get(OPT_OUT, "1").strip() != "0" and _tune_malloc()
    return _applied


def _tune_malloc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_MAX, 0)  # large blocks from the heap, not fresh mmaps
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # never shrink the heap on free
    ok &= mallopt(_M_TOP_PAD, 256 << 20)  # grow it in 256 MB steps
    return bool(ok)
