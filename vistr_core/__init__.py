"""vistr_core: VisTR video instance segmentation as a library.

The library never prints and never parses argv; progress goes through callbacks
(:mod:`vistr_core.progress`) and user mistakes raise :class:`vistr_core.errors.VistrError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import VistrError
from .version import __version__

if TYPE_CHECKING:
    from .engine.trainer import TrainSummary
    from .model.vistr import VisTR


def load_model(path: Any, *, num_frames: int | None = None, device: Any = "cpu") -> VisTR:
    """Load a `vistr train` checkpoint or an official VisTR release file; see
    :func:`vistr_core.model.loading.load_model`."""
    from .model.loading import load_model as _load_model

    return _load_model(path, num_frames=num_frames, device=device)


def train(data_root: Any, **kwargs: Any) -> TrainSummary:
    """Train VisTR (``vistr train``): :func:`vistr_core.engine.trainer.train` with the keyword
    arguments given, evaluating ``eval_split`` every ``eval_every`` steps with the YouTube-VIS metric
    (:func:`vistr_core.inference.split.score_split`) unless another ``evaluator`` is passed."""
    from .engine.trainer import train as _train
    from .inference.split import score_split

    kwargs.setdefault("evaluator", score_split)
    return _train(data_root, **kwargs)


__all__ = ["VistrError", "__version__", "load_model", "train"]
