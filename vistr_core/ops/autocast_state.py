"""The autocast state active now, read the same way on every supported torch (2.1-2.14)."""

from __future__ import annotations

import torch


def current_autocast(device_type: str) -> tuple[bool, torch.dtype]:
    """(enabled, dtype) of the autocast state active now on ``device_type`` ("cpu", "cuda")."""
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
