"""The reference's optimization recipe: AdamW with a slower backbone, step decay, clipping."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters split into the backbone's (``lr_backbone``) and the rest (``lr``).

    A parameter belongs to the backbone when its name contains "backbone" (as in the reference,
    so official parameter names select the same groups).
    """
    backbone, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if "backbone" in name else rest).append(param)
    groups = [{"params": rest, "lr": config.lr}]
    if backbone and config.lr_backbone > 0:
        groups.append({"params": backbone, "lr": config.lr_backbone})
    elif backbone:
        for param in backbone:  # lr_backbone = 0 freezes the backbone, as in the reference
            param.requires_grad_(False)
    return groups


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`, fused where PyTorch has the kernel (CPU and CUDA).

    Why fused: one pass over all parameters instead of a dozen ``foreach`` passes; a tiny-preset
    step on the CPU 2-5 % faster (the optimizer itself 7.0 -> 2.4 ms).
    """
    groups = parameter_groups(model, config)
    settings = {"lr": config.lr, "weight_decay": config.weight_decay}
    if all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"]):
        try:
            return torch.optim.AdamW(groups, **settings, fused=True)
        except RuntimeError:  # torch < 2.4 has no fused kernel for the CPU
            pass
    return torch.optim.AdamW(groups, **settings)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.StepLR:
    """Multiply every learning rate by ``lr_gamma`` every ``lr_drop`` epochs (stepped per epoch)."""
    return torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=drop_interval(config.lr_drop), gamma=config.lr_gamma
    )


def drop_interval(lr_drop: int) -> int:
    """Epochs between learning-rate drops (an ``lr_drop`` below 1 drops after every epoch)."""
    return max(1, lr_drop)


def same_rates_so_far(lr_drop: int, new_lr_drop: int, epoch: int) -> bool:
    """Whether epochs 0..``epoch`` ran at the same learning rates under both drop intervals: then a
    resumed run with the new one continues exactly the run that had it from the start (how a
    schedule is shortened or lengthened from a checkpoint taken before its drop)."""
    old, new = drop_interval(lr_drop), drop_interval(new_lr_drop)
    return all(e // old == e // new for e in range(epoch + 1))
