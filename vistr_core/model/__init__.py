"""The VisTR model: ``build_vistr(config)`` and ``load_model(path)``."""

from __future__ import annotations

from .vistr import VisTR, build_vistr

__all__ = ["VisTR", "build_vistr"]
