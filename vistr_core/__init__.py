"""vistr_core: VisTR video instance segmentation as a library.

The library never prints and never parses argv; progress goes through callbacks
(:mod:`vistr_core.progress`) and user mistakes raise :class:`vistr_core.errors.VistrError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import VistrError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .model.vistr import VisTR


def load_model(path: Any, *, num_frames: int | None = None, device: Any = "cpu") -> VisTR:
    """Load a `vistr train` checkpoint or an official VisTR release file; see
    :func:`vistr_core.model.loading.load_model`."""
    from .model.loading import load_model as _load_model

    return _load_model(path, num_frames=num_frames, device=device)


__all__ = ["VistrError", "__version__", "load_model"]
