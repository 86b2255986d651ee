"""The state of one training run on this rank, shared by the trainer, checkpoint saving and the
periodic evaluation (its own module so that none of them imports another to name it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..progress import ProgressCallback

if TYPE_CHECKING:
    from ..categories import CategoryMap
    from ..config import DataConfig, ModelConfig, TrainConfig
    from ..losses import SetCriterion
    from .device import PrecisionChoice
    from .distributed import DistContext
    from .feed import TrainFeed
    from .run_dir import MetricsLog
    from .train_state import Position

#: Scores a model on a split: ``(model, data_root, split, progress) -> {statistic: value}``. The
#: model is the trainer's bare module with ``.categories`` and ``.data_config`` set; an evaluator
#: that switches it to eval mode puts it back in its previous mode.
Evaluator = Callable[[nn.Module, Path, str, ProgressCallback], Mapping[str, float]]


@dataclass
class TrainingRun:
    """The mutable state of one training run on this rank."""

    ctx: DistContext
    run_dir: Path
    preset: str
    model_config: ModelConfig
    data_config: DataConfig
    config: TrainConfig
    categories: CategoryMap
    model: nn.Module  # the DDP wrapper when distributed
    module: nn.Module
    criterion: SetCriterion
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: PrecisionChoice  # chosen once from --amp and the device
    backbone_precision: PrecisionChoice  # what the (frozen) backbone computes in
    scaler: torch.amp.GradScaler | None
    feed: TrainFeed
    position: Position
    data_root: Path
    split: str
    eval_split: str
    progress: ProgressCallback
    metrics: MetricsLog | None
    losses: dict[str, float] = field(default_factory=dict)
    shown: dict[str, float] = field(default_factory=dict)  # what the progress bar shows
    saved: Position | None = None  # the position last.pt holds
    evaluations: dict[int, dict[str, float]] = field(default_factory=dict)
    evaluator: Evaluator | None = None  # the periodic evaluation (``eval_every``)

    @property
    def total_steps(self) -> int:
        scheduled = self.config.epochs * self.feed.steps_per_epoch
        return scheduled if self.config.max_iters is None else min(scheduled, self.config.max_iters)
