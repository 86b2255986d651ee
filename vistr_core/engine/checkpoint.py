"""Moved to :mod:`vistr_core.checkpoint_io` (below both ``model/`` and ``engine/``); this name
stays so that existing imports keep working."""

from __future__ import annotations

from ..checkpoint_io import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_SCHEMA,
    is_vistr_checkpoint,
    read_checkpoint,
    write_checkpoint,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_SCHEMA",
    "is_vistr_checkpoint",
    "read_checkpoint",
    "write_checkpoint",
]
