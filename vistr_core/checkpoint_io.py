"""Reading and writing checkpoint files safely.

Reading always uses ``torch.load(weights_only=True)``: a checkpoint is untrusted input, and a file
that needs arbitrary unpickling (a pickled ``argparse.Namespace``, custom classes, code) is refused
with an explanation rather than executed. Writing is atomic (temp file + rename).

Our own checkpoints are dicts with ``"format": "vistr"`` and an integer ``"schema"``; the
configuration and the category map are embedded as JSON strings. Official VisTR release files are
dicts with a ``"model"`` state dict and no ``"format"`` key.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_open
from .errors import CheckpointError

CHECKPOINT_FORMAT = "vistr"
# 2: ModelConfig gained mask_attention_gain and mask_prior (schema-1 files load with their defaults;
# an older vistr refuses schema 2 with "upgrade vistr" instead of a confusing config error).
CHECKPOINT_SCHEMA = 2


def read_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint dict without executing code from it.

    Raises:
        CheckpointError: the file is missing, not a PyTorch file, truncated, needs unsafe
            unpickling, or does not hold a dict.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint {p} not found; pass a file written by `vistr train` or vistr_r50.pth / vistr_r101.pth"
        )
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch reports both cases as "Weights only load failed": a pickle that names a global
        # (a class or function, i.e. code) versus bytes that are no pickle at all.
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"checkpoint {p} contains pickled Python objects beyond tensors, which could run code; refused. "
                "Re-save only its tensors (e.g. torch.save({'model': ckpt['model']}, 'clean.pth')) in a trusted session"
            ) from None
        raise CheckpointError(
            f"checkpoint {p} is not a PyTorch checkpoint (or is truncated); "
            "pass a file written by `vistr train` or vistr_r50.pth / vistr_r101.pth"
        ) from None
    except Exception as err:  # noqa: BLE001 - any failure to parse means "not a usable checkpoint"
        # Garbage input surfaces as RuntimeError, EOFError, BadZipFile, KeyError... from torch.load.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {p} could not be read ({reason[:120]}); the file is truncated or not a PyTorch checkpoint"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {p} holds a {type(obj).__name__}, not a dict with a 'model' state dict"
        )
    return obj


def write_checkpoint(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Save ``obj`` with :func:`torch.save` atomically: readers see the old file or the new one."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def is_vistr_checkpoint(obj: dict[str, Any]) -> bool:
    """True for files written by ``vistr train`` (as opposed to official VisTR release files)."""
    return obj.get("format") == CHECKPOINT_FORMAT
