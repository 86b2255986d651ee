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
    description="ResNet-18, d=192, 2+2 layers, 4-frame clips, 192-pixel frames: CPU tests and the quickstart",
    model=ModelConfig(
        backbone="resnet18",
        hidden_dim=192,
        nheads=8,
        enc_layers=2,
        dec_layers=2,
        dim_feedforward=512,
        dropout=0.0,
        num_frames=4,
        num_instances=5,
        num_classes=1,
        # Mask-head init for training from scratch (reference init: 1.0 / None). Measured on one
        # fixed batch of two easy clips, binary mask IoU after 150 steps: 0.65 with the reference
        # init (every slot segmented all the objects at once), 0.96 with these.
        mask_attention_gain=32.0,
        mask_prior=0.1,
        # The position encoding added to the encoder's input tokens too: a random backbone's
        # features say little about where a token is. Quickstart recipe, two seeds, held-out AP /
        # AP50 on 120 other clips: 0.518 / 0.832 and 0.499 / 0.838, against 0.455 / 0.809 and
        # 0.483 / 0.833 without (README: "Several objects from scratch").
        position_in_memory=True,
    ),
    # 192-pixel frames: at stride 32 that is 6x8 tokens a frame. At 96 pixels (3x4 tokens) an
    # object covers one or two tokens and two objects often share one (README: "Several objects
    # from scratch" has the measurements behind this recipe).
    # copy_paste: a quarter of the training clips get one more object, usually of a class the clip
    # already has. Slots specialise by class, so two objects of one class often shared one slot;
    # with it, held-out AP 0.50 -> 0.54 and same-class objects found 29 % -> 50 % (quickstart data,
    # 2040 steps; 0.5 instead of 0.25 scored lower: 0.39).
    data=DataConfig(
        short_side=192,
        max_size=320,
        train_scales=(176, 192, 208),
        train_max_size=352,
        crop_range=None,
        max_stride=2,
        copy_paste=0.25,
    ),
    # Trained from scratch on a CPU in minutes (no pretrained weights can be downloaded):
    # - the backbone stays at its random initialization (lr_backbone 0): random ResNet features
    #   already separate colored shapes, and skipping its backward makes a step ~1.7x cheaper;
    # - its frozen BatchNorm statistics are set from the first training clips (calibrate_backbone):
    #   at the default (identity) statistics its features are dominated by a per-channel constant
    #   and the decoder's outputs hardly depend on the image (measured: valid AP 0.22 vs 0.11 after
    #   800 steps on the quickstart data; a trainable backbone gave the same AP per step at 1.6x
    #   the cost, and without calibration it diverged at lr 3e-4);
    # - the class terms weigh 4x / 2x more than in the paper: measured on the synthetic set, the
    #   paper's weights left every slot predicting the class prior for 600+ steps, these learn
    #   the classes within ~150 steps;
    # - the encoder memory gets dense class and box losses (loss_memory, loss_memory_box;
    #   training-only): without them the encoder overwrites its tokens with position-only content
    #   within a few hundred steps and every video gets the same slots. Multi-object held-out AP
    #   after 1200 steps: 0.09 without, 0.34 with the class loss, 0.42 with both (and eos 0.3).
    train=TrainConfig(
        lr=3e-4,
        lr_backbone=0.0,
        calibrate_backbone=True,
        loss_ce=4.0,
        cost_class=2.0,
        loss_memory=10.0,
        loss_memory_box=2.0,
        eos_coef=0.3,
        batch_size=2,
        epochs=200,
        lr_drop=160,
        # Frames load in the training process: its threads already hold every core of a small
        # CPU, and a worker process takes time slices from them, so they wait at every op's
        # barrier. Measured on 2 cores (quickstart data, 100 steps, interleaved, 3 runs each):
        # 49.9 s with 0 workers, 53.9 s with 1 (52.0 s with the worker at nice 19). The batches
        # are the same for any number of workers.
        workers=0,
        checkpoint_every=250,
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (VISTR_R50, VISTR_R101, TINY)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a :class:`ConfigError` listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
