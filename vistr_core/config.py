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
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKBONE_PRECISIONS = ("auto", "fp32", "bf16")


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

    ``mask_attention_gain`` and ``mask_prior`` only change the *initialization* of the mask head
    (for training without pretrained weights; loaded checkpoints are unaffected). The defaults are
    the reference's init. See :class:`~vistr_core.model.segmentation.MaskHeadSmallConv` and
    :class:`~vistr_core.model.segmentation.InstanceSequenceHead`.

    ``position_in_memory`` (not in the paper; off for the official weights) adds the position
    encoding to the encoder's input tokens as well as to its queries and keys, so every memory token
    carries where it is (see :class:`~vistr_core.model.transformer.Transformer`).
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
    mask_attention_gain: float = 1.0
    mask_prior: float | None = None
    position_in_memory: bool = False

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
        if not self.mask_attention_gain > 0:
            raise ConfigError(f"mask_attention_gain must be positive, got {self.mask_attention_gain}")
        if self.mask_prior is not None and not 0 < self.mask_prior < 1:
            raise ConfigError(f"mask_prior must be a probability in (0, 1) or None, got {self.mask_prior}")

    @property
    def num_queries(self) -> int:
        """n * T learned queries (frame-major in the reference: query t*n + i)."""
        return self.num_instances * self.num_frames


@dataclass(frozen=True)
class DataConfig:
    """Frame preprocessing (details: :mod:`vistr_core.data.transforms`).

    Eval: resize the short side to ``short_side``, long side at most ``max_size``, normalize.
    Train, one geometric draw per clip: flip (``flip_prob``); resize the short side to one of
    ``train_scales`` (long side <= ``train_max_size``); if ``crop_range`` is set, a random crop of
    ``crop_range`` pixels per side at that scale followed by the eval resize (the reference recipe),
    otherwise the multi-scale size is the final size. Then photometric jitter (one draw per clip) and
    normalization. Clips use temporal strides 1..``max_stride``; an epoch is ``clips_per_video`` clips
    of every video. ``antialias``: bilinear resizing with antialiasing, like the reference's PIL
    resize. ``reduced_decode``: when a clip is downscaled by 2x or more, decode its JPEGs at 1/2,
    1/4 or 1/8 size (libjpeg DCT scaling), several times faster. ``copy_paste``: the probability that
    a training clip gets one object of another video pasted on top (:mod:`vistr_core.data.copy_paste`),
    of a class the clip already has when ``copy_paste_same_class`` and the donor has one.
    """

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
    antialias: bool = True
    clips_per_video: int = 1
    reduced_decode: bool = True
    copy_paste: float = 0.0
    copy_paste_same_class: bool = True

    def __post_init__(self) -> None:
        if self.short_side < 1 or self.max_size < self.short_side:
            raise ConfigError(f"need 1 <= short_side <= max_size, got {self.short_side} and {self.max_size}")
        if not self.train_scales or min(self.train_scales) < 1:
            raise ConfigError("train_scales must list at least one positive size")
        if self.crop_range is not None and not 1 <= self.crop_range[0] <= self.crop_range[1]:
            raise ConfigError(f"crop_range must be (min, max) with 1 <= min <= max, got {self.crop_range}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if not 0.0 <= self.copy_paste <= 1.0:
            raise ConfigError(f"copy_paste must be a probability in [0, 1], got {self.copy_paste}")
        if self.max_stride < 1 or self.clips_per_video < 1:
            raise ConfigError("max_stride and clips_per_video must be at least 1")


@dataclass(frozen=True)
class TrainConfig:
    """Optimization, matching and loss settings (defaults: the reference's main.py).

    ``calibrate_backbone``: for a backbone without pretrained weights (no ``--init-from``), set its
    frozen BatchNorm statistics from the first training clips before the first step
    (:meth:`vistr_core.model.backbone.Backbone.calibrate_batchnorm`).
    ``cost_mask``: weight of a dice term on the predicted masks in the matching cost
    (:func:`vistr_core.matcher.mask_dice_cost`); 0, the paper's recipe, matches on class and box.
    ``loss_memory``: weight of the training-only dense class loss on the encoder memory
    (:func:`vistr_core.losses.memory_class_loss`); 0, the paper's recipe, skips it.
    ``loss_memory_box``: likewise for the dense box loss (:func:`vistr_core.losses.memory_box_loss`).
    ``backbone_precision``: what a frozen backbone (``lr_backbone`` 0) computes in when the run is
    fp32: "auto" (bf16 where the device has native bf16, else fp32), "fp32" or "bf16"
    (:func:`vistr_core.engine.device.frozen_backbone_precision`). With ``amp`` the whole model,
    backbone included, follows the run's precision.
    """

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
    calibrate_backbone: bool = False
    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_iou: float = 2.0
    cost_mask: float = 0.0
    loss_ce: float = 1.0
    loss_bbox: float = 5.0
    loss_giou: float = 2.0
    loss_mask: float = 1.0
    loss_dice: float = 1.0
    loss_memory: float = 0.0
    loss_memory_box: float = 0.0
    eos_coef: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    seed: int = 42
    workers: int = 2
    amp: bool = False
    backbone_precision: str = "auto"
    checkpoint_every: int = 1000
    eval_every: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_iters is not None and self.max_iters < 1:
            raise ConfigError(f"max_iters must be at least 1, got {self.max_iters}")
        for name in ("lr", "lr_backbone", "weight_decay", "clip_max_norm", "eos_coef", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.workers < 0 or self.eval_every < 0:
            raise ConfigError("workers and eval_every must not be negative")
        if self.backbone_precision not in BACKBONE_PRECISIONS:
            raise ConfigError(
                f"backbone_precision (--backbone-precision) must be one of {', '.join(BACKBONE_PRECISIONS)}, "
                f"got {self.backbone_precision!r}"
            )


# A track's score is its mean per-frame score. Below this a track is "low-score": `vistr render`
# hides it by default and `vistr segment` counts it in its summary. Segment still keeps it by
# default (score_thr 0): the YouTube-VIS AP ranks every prediction, so a full list scores higher,
# and the official VisTR inference keeps them all too.
LOW_SCORE = 0.5


# Measured on held-out long videos, four sets (README "Long videos"): resuming on boxes a little
# apart (GIoU -0.2 instead of box IoU 0.1) and a colour penalty of up to 0.3 (full at 64 levels
# apart) raised long-video AP with the quickstart's model; 0.5 and 1.0 scored lower.
RESUME_GIOU = -0.2
COLOUR_WEIGHT = 0.3
# Two slots on one object differ in colour by a few levels (partial masks, edges); look-alikes of
# one class in the synthetic data by 10-90. At 5 merging kept the quickstart's held-out AP50 above
# 0.8; at 8 and 12 it fell below (README "Long videos").
MERGE_COLOUR = 5.0
# Re-linking after the video (README "Long videos", six sets): cutting at colour steps of 20 levels
# and joining pieces within 20 raised long-video AP 0.328 -> 0.422 and clip AP 0.487 -> 0.491 with
# the quickstart's model (at 30: 0.401; at 15: as at 20).
RELINK_COLOUR = 20.0


@dataclass(frozen=True)
class InferConfig:
    """How ``vistr segment`` windows a video and turns model outputs into tracks.

    ``overlap``: frames shared by consecutive windows (None = T // 4, see
    ``vistr_core.inference.windows``). ``score_thr``/``min_track_len``/``max_tracks`` filter the
    final tracks (mean score, frames with a non-empty mask, best-scoring K). ``mask_thr`` thresholds
    sigmoid mask probabilities. ``link_iou`` is the smallest mask IoU over the shared frames (minus
    ``class_penalty`` when the majority classes differ) that links two windows' instances into one
    track; ``slot_bonus`` favours, among the candidate links, those between the same query slot of
    both windows (it steers the assignment, never lowers ``link_iou``; 0 = masks and classes only,
    see :mod:`vistr_core.inference.tracker`). An instance left unlinked may instead resume a track
    whose mask vanished at most ``max_gap`` frames before its own first mask (None = max(T, 24)
    frames, 0 = never) when the boxes of the track's last mask and the instance's first one have a
    generalized box IoU (GIoU, in [-1, 1]; negative for boxes apart, by how much of their enclosing
    box they leave empty) of at least ``resume_iou`` (minus ``class_penalty`` across classes and the
    colour penalty). ``colour_weight``: a link between a track and an instance whose colours (the
    median RGB under the masks, :mod:`vistr_core.inference.appearance`) differ by d loses
    ``colour_weight * min(d / colour_scale, 1)`` of affinity (0 = masks, classes and slots only).
    A track's score is its mean per-frame
    score times (share of the video's frames where it has a mask) ** ``coverage_power`` (0 = the
    plain mean of the official inference; a one-window video's tracks keep the plain mean anyway).
    ``dedup_iou`` (None = off, as the reference):
    within a window, drop an instance whose masks overlap a higher-scoring one's by more than this
    video IoU (:func:`vistr_core.inference.tracker.suppress_duplicates`); for models that still
    give one object to several slots. ``merge_iou`` (None = off, as the reference): within a
    window, fold instances of one class whose masks overlap by more than this video IoU into the
    best-scoring one, which takes the union of their masks
    (:func:`vistr_core.inference.tracker.merge_copies`); applied before ``dedup_iou``. Copies of one
    object have one colour: instances whose colours differ by more than ``merge_colour`` (RGB
    distance, 0-255 per channel; inf = any) are never merged, so that two look-alikes side by side
    stay two. For models that split one object over several slots (README "Long videos").
    ``relink_colour`` (None or 0 = off): once the video is done, cut each track where its colour changes
    by this many RGB levels for good, and join the pieces whose colours, classes and places continue
    each other (:mod:`vistr_core.inference.relink`): undoes switches between look-alikes that the
    window-by-window rule could not see.
    ``window_batch`` windows go through the model at once. ``precision``: "fp32" (the default here:
    reproducible, what the parity tests use), "bf16", "fp16" (CUDA only) or "auto" (bf16 on CUDA
    devices and CPUs with native bf16, else fp32: :func:`vistr_core.engine.device.resolve_precision`;
    the CLI's default).
    """

    overlap: int | None = None
    score_thr: float = 0.0
    mask_thr: float = 0.5
    max_tracks: int | None = None
    min_track_len: int = 1
    window_batch: int = 1
    precision: str = "fp32"
    # 0.3, not 0.5: measured on held-out multi-object videos (README, "Several objects from scratch"),
    # clip and long-video AP are higher at 0.3 for every model tried.
    link_iou: float = 0.3
    class_penalty: float = 0.5
    # 0.3: on held-out long videos (4 sets) long-video AP 0.245 -> 0.298 with the quickstart's model
    # and 0.263 -> 0.348 with one trained twice as long, no change with a third (README "Long
    # videos"); the masks still decide whenever their IoUs differ by more than this.
    slot_bonus: float = 0.3
    max_gap: int | None = None
    resume_iou: float = RESUME_GIOU
    coverage_power: float = 0.25
    dedup_iou: float | None = None
    merge_iou: float | None = None
    merge_colour: float = MERGE_COLOUR
    colour_weight: float = COLOUR_WEIGHT
    colour_scale: float = 64.0
    relink_colour: float | None = RELINK_COLOUR

    def __post_init__(self) -> None:
        checks = (
            (self.overlap is None or self.overlap >= 0, f"--overlap must be >= 0, got {self.overlap}"),
            (0.0 <= self.score_thr <= 1.0, f"--score-thr must be in [0, 1], got {self.score_thr}"),
            (0.0 < self.mask_thr < 1.0, f"--mask-thr must be in (0, 1), got {self.mask_thr}"),
            (
                self.max_tracks is None or self.max_tracks >= 1,
                f"--max-tracks must be >= 1, got {self.max_tracks}",
            ),
            (self.min_track_len >= 1, f"--min-track-len must be >= 1, got {self.min_track_len}"),
            (self.window_batch >= 1, f"--window-batch must be >= 1, got {self.window_batch}"),
            (0.0 <= self.link_iou <= 1.0, f"--link-iou must be in [0, 1], got {self.link_iou}"),
            (self.class_penalty >= 0.0, f"--class-penalty must be >= 0, got {self.class_penalty}"),
            (self.slot_bonus >= 0.0, f"--slot-bonus must be >= 0, got {self.slot_bonus}"),
            (self.max_gap is None or self.max_gap >= 0, f"--max-gap must be >= 0, got {self.max_gap}"),
            (-1.0 <= self.resume_iou <= 1.0, f"--resume-iou must be in [-1, 1], got {self.resume_iou}"),
            (self.coverage_power >= 0.0, f"--coverage-power must be >= 0, got {self.coverage_power}"),
            (
                self.dedup_iou is None or 0.0 < self.dedup_iou < 1.0,
                f"--dedup-iou must be in (0, 1), got {self.dedup_iou}",
            ),
            (
                self.merge_iou is None or 0.0 < self.merge_iou < 1.0,
                f"--merge-iou must be in (0, 1), got {self.merge_iou}",
            ),
            (self.merge_colour >= 0.0, f"--merge-colour must be >= 0, got {self.merge_colour}"),
            (self.colour_weight >= 0.0, f"--colour-weight must be >= 0, got {self.colour_weight}"),
            (self.colour_scale > 0.0, f"colour_scale must be > 0, got {self.colour_scale}"),
            (
                self.relink_colour is None or self.relink_colour >= 0.0,
                f"--relink-colour must be >= 0 (0 = off), got {self.relink_colour}",
            ),
            (
                self.precision in PRECISIONS,
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.relink_colour == 0.0:  # as on the command line: 0 turns re-linking off
            object.__setattr__(self, "relink_colour", None)


@dataclass(frozen=True)
class Preset:
    """A named bundle: architecture, preprocessing and training recipe."""

    name: str
    description: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
