"""Typed, frozen configuration objects.

Configs stop at ``build_*`` functions: modules take plain constructor arguments, and only the
builders read these dataclasses. Every config round-trips through JSON (``to_dict``/``from_dict``)
so checkpoints can embed the exact settings they were trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError

_C = TypeVar("_C")

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
    """Rebuild ``cls`` from :func:`config_to_dict` output; unknown keys are an error."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
    kwargs = {}
    for key, value in data.items():
        default = getattr(cls, key, None)
        kwargs[key] = tuple(value) if isinstance(value, list) and isinstance(default, tuple) else value
    return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    """The VisTR architecture (defaults: the paper's R50 model, vistr-facts.md section 1).

    ``num_classes`` counts real classes K; the class head has K + 1 outputs, the last one being
    "no object". The official checkpoints have K = 41 with index 0 unused.
    Mask-head widths derive from ``hidden_dim`` (d/2, d/4, d/8, d/16), GroupNorm group counts are
    gcd(8, channels) (gcd(4, channels) in the 3-D head), so every preset is the same architecture.
    """

    backbone: str = "resnet50"
    dilation: bool = False
    hidden_dim: int = 384
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_frames: int = 36
    num_instances: int = 10
    num_classes: int = 41
    aux_loss: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.hidden_dim % 3 or (self.hidden_dim // 3) % 2:
            raise ConfigError(
                f"hidden_dim {self.hidden_dim} must be divisible by 6 "
                "(the 3-D sine encoding gives d/3 sin-cos channels each to t, y, x)"
            )
        if self.hidden_dim % self.nheads:
            raise ConfigError(f"hidden_dim {self.hidden_dim} must be divisible by nheads {self.nheads}")
        if self.hidden_dim % 32:
            raise ConfigError(
                f"hidden_dim {self.hidden_dim} must be divisible by 32 (mask head widths d/16, d/32)"
            )
        for name in ("num_frames", "num_instances", "num_classes", "enc_layers", "dec_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def num_queries(self) -> int:
        """n * T learned queries (frame-major in the reference: query t*n + i)."""
        return self.num_instances * self.num_frames


@dataclass(frozen=True)
class DataConfig:
    """Frame preprocessing. Eval: resize the short side to ``short_side``, long side at most
    ``max_size``. Train: flip, multi-scale resize, random crop, then the eval resize."""

    short_side: int = 300
    max_size: int = 540
    train_scales: tuple[int, ...] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768)
    train_max_size: int = 800
    crop_range: tuple[int, int] | None = (384, 600)
    flip_prob: float = 0.5
    photometric: bool = True
    max_stride: int = 1
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """Optimization, matching and loss settings (defaults: the reference's main.py)."""

    epochs: int = 18
    max_iters: int | None = None
    batch_size: int = 1
    accumulate: int = 1
    lr: float = 1e-4
    lr_backbone: float = 1e-5
    weight_decay: float = 1e-4
    lr_drop: int = 12
    lr_gamma: float = 0.1
    clip_max_norm: float = 0.1
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_iou: float = 2.0
    loss_ce: float = 1.0
    loss_bbox: float = 5.0
    loss_giou: float = 2.0
    loss_mask: float = 1.0
    loss_dice: float = 1.0
    eos_coef: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    seed: int = 42
    workers: int = 2
    amp: bool = False
    checkpoint_every: int = 1000
    eval_every: int = 0


@dataclass(frozen=True)
class InferConfig:
    """How ``vistr segment`` windows a video and turns model outputs into tracks."""

    overlap: int | None = None
    score_thr: float = 0.0
    mask_thr: float = 0.5
    max_tracks: int | None = None
    min_track_len: int = 1
    window_batch: int = 1
    amp: bool = False


@dataclass(frozen=True)
class Preset:
    """A named bundle: architecture, preprocessing and training recipe."""

    name: str
    description: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
