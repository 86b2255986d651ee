"""The VisTR model: ``build_vistr(config)``, ``load_model(path)`` and checkpoint helpers."""

from __future__ import annotations

from .loading import LoadReport, init_from_detr, load_model, model_checkpoint_payload
from .vistr import VisTR, build_vistr

__all__ = ["LoadReport", "VisTR", "build_vistr", "init_from_detr", "load_model", "model_checkpoint_payload"]
