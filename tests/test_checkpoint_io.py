"""Checkpoint reading: layering, the reference/DETR file format, and code that must never run."""

from __future__ import annotations

import subprocess
import sys


def test_checkpoint_io_sits_below_model_and_engine():
    code = (
        "import sys, vistr_core.checkpoint_io; "
        "print(sorted(m for m in sys.modules if m.startswith(('vistr_core.model', 'vistr_core.engine'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
