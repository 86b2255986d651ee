"""Named configurations: the paper's models and a small CPU model for tests and the demo."""

from __future__ import annotations

from .config import DataConfig, ModelConfig, Preset, TrainConfig
from .errors import ConfigError

VISTR_R50 = Preset(
    name="vistr_r50",
    description="The paper's ResNet-50 model: T=36, 10 instances/frame, d=384 (36.2 AP on YouTube-VIS 2019)",
    model=ModelConfig(backbone="resnet50"),
    data=DataConfig(short_side=300, max_size=540),
)

VISTR_R101 = Preset(
    name="vistr_r101",
    description="The paper's ResNet-101 model (40.1 AP on YouTube-VIS 2019); trained at short side 280, max 504",
    model=ModelConfig(backbone="resnet101"),
    data=DataConfig(short_side=280, max_size=504),
)

TINY = Preset(
    name="tiny",
    description="ResNet-18, d=192, 2+2 layers, 6-frame clips, small frames: CPU tests and the quickstart",
    model=ModelConfig(
        backbone="resnet18",
        hidden_dim=192,
        nheads=8,
        enc_layers=2,
        dec_layers=2,
        dim_feedforward=512,
        dropout=0.0,
        num_frames=6,
        num_instances=5,
        num_classes=1,
    ),
    data=DataConfig(
        short_side=128,
        max_size=224,
        train_scales=(112, 128, 144),
        train_max_size=256,
        crop_range=None,
        max_stride=2,
    ),
    train=TrainConfig(lr=2e-4, lr_backbone=2e-5, epochs=20, lr_drop=15, workers=2, checkpoint_every=200),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (VISTR_R50, VISTR_R101, TINY)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a :class:`ConfigError` listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
