"""What a training checkpoint holds beyond the model, and how it is put back.

A ``vistr train`` checkpoint is :func:`vistr_core.model.loading.model_checkpoint_payload` (format,
schema, config JSON, categories JSON, model weights; enough for ``vistr_core.load_model``) plus:

- ``optimizer``, ``scheduler``: state dicts; ``scaler``: the fp16 GradScaler's state or None;
- ``rng``: one :func:`~vistr_core.engine.rng.capture_rng_state` per rank (index = rank);
- ``step``: optimizer steps done; ``epoch``: the epoch in progress; ``epoch_batches``: batches of
  that epoch already consumed (so a resume skips exactly those); ``world_size``.

All of it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..categories import CategoryMap
from ..checkpoint_io import is_vistr_checkpoint
from ..config import DataConfig, ModelConfig, TrainConfig, config_from_dict
from ..errors import CheckpointError, ConfigError

TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "rng", "step", "epoch", "epoch_batches", "world_size")


@dataclass(frozen=True)
class Position:
    """Where training stands: ``step`` optimizer steps done, in ``epoch`` after ``epoch_batches``."""

    step: int = 0
    epoch: int = 0
    epoch_batches: int = 0


@dataclass(frozen=True)
class SavedRun:
    """The settings of a run read back from its checkpoint."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    preset: str | None
    categories: CategoryMap
    position: Position


def training_payload(
    model_payload: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    rng_states: list[dict[str, Any]],
    position: Position,
) -> dict[str, Any]:
    """The model payload extended with everything needed to continue exactly."""
    return {
        **model_payload,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_states,
        "step": position.step,
        "epoch": position.epoch,
        "epoch_batches": position.epoch_batches,
        "world_size": len(rng_states),
    }


def read_saved_run(obj: dict[str, Any], path: Path) -> SavedRun:
    """The configs, categories and position of a training checkpoint (``CheckpointError`` if it is
    not one, e.g. an official release file or an inference-only export)."""
    missing = [k for k in TRAINING_KEYS if k not in obj]
    if not is_vistr_checkpoint(obj) or missing:
        raise CheckpointError(
            f"checkpoint {path} is not a resumable `vistr train` checkpoint (missing {', '.join(missing) or 'format'}); "
            "use --init-from to start a new run from its weights"
        )
    try:
        config = json.loads(obj["config"])
        return SavedRun(
            model=config_from_dict(ModelConfig, config["model"]),
            data=config_from_dict(DataConfig, config["data"]),
            train=config_from_dict(TrainConfig, config["train"]),
            preset=config.get("preset"),
            categories=CategoryMap.from_json(json.loads(obj["categories"])),
            position=Position(int(obj["step"]), int(obj["epoch"]), int(obj["epoch_batches"])),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(
            f"checkpoint {path} has a damaged config ({type(err).__name__}: {err}); resume from another checkpoint"
        ) from None


def restore_training_state(
    obj: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Load weights, optimizer, scheduler and scaler state from a training checkpoint."""
    model.load_state_dict(obj["model"], strict=True)
    optimizer.load_state_dict(obj["optimizer"])
    scheduler.load_state_dict(obj["scheduler"])
    if scaler is not None and scaler.is_enabled() and obj.get("scaler") is not None:
        scaler.load_state_dict(obj["scaler"])
