"""Reading and writing checkpoint files safely.

Reading always uses ``torch.load(weights_only=True)``: a checkpoint is untrusted input. Besides
tensors and plain containers, exactly one class may be unpickled: ``argparse.Namespace``, because
the reference VisTR code and DETR save their command-line options as one under ``"args"`` (it
only stores attributes; building it runs no code). Anything else that names a Python global (a
class, a function: code) is refused with an explanation, never executed. A raw pickle (not a
``torch.save`` file) is refused before any unpickler sees it. Writing is atomic (temp file + rename).

Our own checkpoints are dicts with ``"format": "vistr"`` and an integer ``"schema"``; the
configuration and the category map are embedded as JSON strings. Official VisTR release files and
the reference/DETR training checkpoints are dicts with a ``"model"`` state dict and no ``"format"``
key (the latter also ``optimizer``, ``lr_scheduler``, ``epoch`` and ``args``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch.serialization import MAGIC_NUMBER

from .atomic import atomic_open
from .errors import CheckpointError

CHECKPOINT_FORMAT = "vistr"
# 2: ModelConfig gained mask_attention_gain and mask_prior (schema-1 files load with their defaults;
# an older vistr refuses schema 2 with "upgrade vistr" instead of a confusing config error).
CHECKPOINT_SCHEMA = 2

#: The only classes a checkpoint may hold besides tensors and containers (see the module doc).
SAFE_GLOBALS = (argparse.Namespace,)

_ZIP_MAGIC = b"PK\x03\x04"
# torch.save(..., _use_new_zipfile_serialization=False) files start with this pickled number.
_LEGACY_MAGIC = pickle.dumps(MAGIC_NUMBER, protocol=2)
_HINT = "pass a file written by `vistr train`, vistr_r50.pth / vistr_r101.pth or a reference/DETR checkpoint"


def read_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint dict without executing code from it.

    Raises:
        CheckpointError: the file is missing, a raw pickle or no PyTorch file, truncated, needs
            unsafe unpickling, or does not hold a dict.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; {_HINT}")
    _check_container(p)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch says "Weights only load failed" both for a pickle that names a global (code) and
        # for bytes its restricted unpickler cannot follow.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            raise CheckpointError(
                f"checkpoint {p} contains pickled Python objects beyond tensors ({found.group(1)}), "
                "which could run code; refused. Re-save only its tensors "
                "(e.g. torch.save({'model': ckpt['model']}, 'clean.pth')) in a trusted session"
            ) from None
        raise CheckpointError(
            f"checkpoint {p} is truncated or damaged (unreadable pickle); {_HINT}"
        ) from None
    except Exception:  # noqa: BLE001 - any failure past a valid header means a damaged file
        # Truncation surfaces as RuntimeError (zip central directory), EOFError, IndexError...
        raise CheckpointError(
            f"checkpoint {p} is truncated or damaged ({p.stat().st_size} bytes); copy or download it again"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {p} holds a {type(obj).__name__}, not a dict with a 'model' state dict"
        )
    return obj


def _check_container(path: Path) -> None:
    """Refuse what is no ``torch.save`` file before torch sees it (a raw pickle would reach the
    restricted unpickler and torch's two-line protocol warning)."""
    with open(path, "rb") as fh:
        head = fh.read(len(_LEGACY_MAGIC))
    if head.startswith(_ZIP_MAGIC) or head == _LEGACY_MAGIC:
        return
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty; {_HINT}")
    if head[:1] == b"\x80":  # the PROTO opcode every pickle since protocol 2 starts with
        raise CheckpointError(
            f"checkpoint {path} is a raw Python pickle, not a torch.save file; refused (unpickling it "
            f"could run code). {_HINT[0].upper()}{_HINT[1:]}"
        )
    raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint; {_HINT}")


def checkpoint_args(obj: dict[str, Any]) -> dict[str, Any]:
    """The reference/DETR ``args`` Namespace of a checkpoint as a dict ({} when there is none)."""
    args = obj.get("args")
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else {}


def write_checkpoint(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Save ``obj`` with :func:`torch.save` atomically: readers see the old file or the new one."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def is_vistr_checkpoint(obj: dict[str, Any]) -> bool:
    """True for files written by ``vistr train`` (as opposed to official VisTR release files)."""
    return obj.get("format") == CHECKPOINT_FORMAT
