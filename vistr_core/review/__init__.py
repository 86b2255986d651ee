"""Ranking a segment output for human review: what to check first, and why (``vistr review``).

The names below load their modules (and numpy) on first use, so that importing
``vistr_core.review.config`` for the CLI's option defaults stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import ReviewConfig

_LAZY = {
    "WEIGHTS": ".rank",
    "ReviewItem": ".rank",
    "ReviewReport": ".report",
    "load_review": ".report",
    "load_segment_output": ".report",
    "review_output": ".report",
    "review_results": ".report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ReviewConfig", *_LAZY]
