"""Loading VisTR weights: our checkpoints, the official release files, DETR initializations.

Every file goes through :func:`vistr_core.checkpoint_io.read_checkpoint` (``weights_only``),
so a checkpoint never runs code. Anything that does not fit raises a one-line
:class:`CheckpointError` naming the file, the offending keys and shapes, and what to pass instead.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..categories import CategoryMap
from ..checkpoint_io import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_SCHEMA,
    checkpoint_args,
    is_vistr_checkpoint,
    read_checkpoint,
)
from ..config import DataConfig, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from ..errors import CheckpointError, ConfigError, VistrWarning
from ..presets import get_preset
from .vistr import VisTR, build_vistr

OFFICIAL_NUM_FRAMES = 36
_BODY = "vistr.backbone.0.body."
# DETR segmentation keys that VisTR does not have (its mask head stops at the deformable conv).
_DETR_ONLY = ("mask_head.lay5.", "mask_head.out_lay.")
_CLASS_HEAD = ("vistr.class_embed.",)
_QUERIES = ("vistr.query_embed.",)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`init_from_detr` did: keys loaded, skipped (key, reason), missing from the file."""

    loaded: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    missing: tuple[str, ...]

    def summary(self) -> str:
        return f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, {len(self.missing)} not in the file"


def load_model(
    path: str | os.PathLike[str], *, num_frames: int | None = None, device: str | torch.device = "cpu"
) -> VisTR:
    """A VisTR in eval mode from a ``vistr train`` checkpoint or an official release file.

    ``num_frames`` (T) applies to official files, whose n*T queries do not say T (default 36);
    for our checkpoints it must equal the trained T if given. The model carries ``.config``,
    ``.categories`` (CategoryMap) and ``.data_config`` (the eval resize to use).
    """
    p = Path(path)
    obj = read_checkpoint(p)
    if is_vistr_checkpoint(obj):
        model = _load_vistr_checkpoint(p, obj, num_frames)
    else:
        model = _load_official(p, obj, num_frames)
    return model.to(device).eval()


def model_checkpoint_payload(
    model: nn.Module,
    *,
    data_config: DataConfig,
    train_config: TrainConfig | None = None,
    preset: str | None = None,
    categories: CategoryMap,
) -> dict[str, Any]:
    """The model part of a ``vistr train`` checkpoint: format, schema, config and category JSON, weights.

    ``model`` may be wrapped (DDP): its ``.module`` is saved. The trainer adds optimizer state etc.
    """
    inner = getattr(model, "module", model)
    config = getattr(inner, "config", None)
    if not isinstance(config, ModelConfig):
        raise ConfigError("model has no ModelConfig in .config; build it with build_vistr(config)")
    if categories.num_classes != config.num_classes:
        raise ConfigError(
            f"category map has {categories.num_classes} classes but the model has {config.num_classes}"
        )
    return {
        "format": CHECKPOINT_FORMAT,
        "schema": CHECKPOINT_SCHEMA,
        "config": json.dumps(
            {
                "model": config_to_dict(config),
                "data": config_to_dict(data_config),
                "train": config_to_dict(train_config) if train_config is not None else None,
                "preset": preset,
            }
        ),
        "categories": json.dumps(categories.to_json()),
        "model": {k: v.detach().clone() for k, v in inner.state_dict().items()},
    }


def _load_vistr_checkpoint(path: Path, obj: dict[str, Any], num_frames: int | None) -> VisTR:
    schema = obj.get("schema")
    if not isinstance(schema, int) or schema > CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"checkpoint {path} has schema {schema!r}, this vistr reads schema {CHECKPOINT_SCHEMA}; "
            "upgrade vistr to load it"
        )
    try:
        config = json.loads(obj["config"])
        model_cfg = config_from_dict(ModelConfig, config["model"])
        data_cfg = config_from_dict(DataConfig, config["data"]) if config.get("data") else DataConfig()
        categories = CategoryMap.from_json(json.loads(obj["categories"]))
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(
            f"checkpoint {path} has a damaged config or category entry ({type(err).__name__}: {err}); "
            "re-save it with `vistr train` or pass another checkpoint"
        ) from None
    if num_frames is not None and num_frames != model_cfg.num_frames:
        raise CheckpointError(
            f"checkpoint {path} was trained on {model_cfg.num_frames}-frame clips; "
            f"pass num_frames={model_cfg.num_frames} or leave it unset (got {num_frames})"
        )
    state = _state_dict_of(path, obj)
    model = build_vistr(model_cfg)
    _load_strict(model, state, path)
    model.categories = categories
    model.data_config = data_cfg
    return model


def _load_official(path: Path, obj: dict[str, Any], num_frames: int | None) -> VisTR:
    """An official release file or a reference training checkpoint; the latter's ``args`` say T
    (used when ``num_frames`` is not given and it fits) and are compared with the tensors."""
    state = _state_dict_of(path, obj)
    args = checkpoint_args(obj)
    queries = state.get("vistr.query_embed.weight")
    said_t = args.get("num_frames")
    if num_frames is None and isinstance(said_t, int) and queries is not None and said_t > 0:
        num_frames = said_t if queries.shape[0] % said_t == 0 else None
    model = model_from_official_state(state, num_frames=num_frames, path=path)
    warn_args_disagree(path, args, model.config)
    return model


#: ``args`` fields of the reference/DETR checkpoints that the tensors also say.
_ARGS_CHECKED = ("backbone", "num_frames", "hidden_dim")


def warn_args_disagree(
    path: Path | str, args: dict[str, Any], config: ModelConfig, *, against: str = "the weights give"
) -> None:
    """A :class:`VistrWarning` naming what a checkpoint's ``args`` say that its tensors (or the
    model they go into, ``config``) contradict; the tensors win."""
    differ = [
        (name, args[name], getattr(config, name))
        for name in _ARGS_CHECKED
        if name in args and args[name] != getattr(config, name)
    ]
    if differ:
        said = ", ".join(f"{n}={a!r}" for n, a, _ in differ)
        used = ", ".join(f"{n}={c!r}" for n, _, c in differ)
        warnings.warn(
            f"checkpoint {path}: its args say {said}, but {against} {used}; using the weights",
            VistrWarning,
            stacklevel=2,
        )


def model_from_official_state(
    state: dict[str, Tensor], *, num_frames: int | None = None, path: Path | str = "<state dict>"
) -> VisTR:
    """A VisTR holding an official-layout state dict (config inferred, keys checked strictly)."""
    detr_keys = [k for k in state if k.startswith(_DETR_ONLY)]
    if detr_keys:
        raise CheckpointError(
            f"checkpoint {path} is a DETR segmentation initialization (has {detr_keys[0]}), not a VisTR model; "
            "use it to start training (vistr train --init ...) and load a trained checkpoint instead"
        )
    config = infer_official_config(state, num_frames=num_frames, path=path)
    model = build_vistr(config)
    _load_strict(model, state, path)
    k_plus_1 = config.num_classes + 1
    model.categories = (
        CategoryMap.ytvis2019_official() if k_plus_1 == 42 else CategoryMap.generic(config.num_classes)
    )
    preset = "vistr_r101" if config.backbone == "resnet101" else "vistr_r50"
    model.data_config = get_preset(preset).data
    return model.eval()


def infer_official_config(
    state: dict[str, Tensor], *, num_frames: int | None = None, path: Path | str = "<state dict>"
) -> ModelConfig:
    """The ModelConfig of an official-layout state dict, read from its tensor shapes."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(
                f"checkpoint {path} has no {key}; it is not a VisTR model "
                "(pass vistr_r50.pth / vistr_r101.pth or a `vistr train` checkpoint)"
            )
        return tuple(state[key].shape)

    d = shape("vistr.input_proj.weight")[0]
    k_plus_1 = shape("vistr.class_embed.weight")[0]
    queries = shape("vistr.query_embed.weight")[0]
    ffn = shape("vistr.transformer.encoder.layers.0.linear1.weight")[0]
    nheads = shape("mask_head.lay1.weight")[1] - d
    blocks = _count(state, _BODY + r"layer3\.(\d+)\.")
    bottleneck = f"{_BODY}layer3.0.conv3.weight" in state
    depths = {(True, 6): "resnet50", (True, 23): "resnet101", (False, 2): "resnet18", (False, 6): "resnet34"}
    backbone = depths.get((bottleneck, blocks))
    if backbone is None:
        raise CheckpointError(
            f"checkpoint {path} has a backbone with {blocks} layer3 blocks "
            f"({'bottleneck' if bottleneck else 'basic'}), not ResNet-18/34/50/101"
        )
    frames = OFFICIAL_NUM_FRAMES if num_frames is None else num_frames
    if frames < 1 or queries % frames:
        divisors = [t for t in range(2, min(queries, 64) + 1) if queries % t == 0]
        raise CheckpointError(
            f"checkpoint {path} has {queries} queries, which {frames} frames do not divide; "
            f"pass --num-frames (num_frames=) with a divisor of {queries}: {', '.join(map(str, divisors)) or '1'}"
        )
    try:
        return ModelConfig(
            backbone=backbone,
            hidden_dim=d,
            nheads=nheads,
            enc_layers=_count(state, r"vistr\.transformer\.encoder\.layers\.(\d+)\."),
            dec_layers=_count(state, r"vistr\.transformer\.decoder\.layers\.(\d+)\."),
            dim_feedforward=ffn,
            num_frames=frames,
            num_instances=queries // frames,
            num_classes=k_plus_1 - 1,
        )
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path} does not describe a valid VisTR: {err}") from None


def _count(state: dict[str, Tensor], pattern: str) -> int:
    """Number of distinct indices captured by ``pattern`` among the keys."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def _state_dict_of(path: Path, obj: dict[str, Any]) -> dict[str, Tensor]:
    """The state dict inside a checkpoint (``obj["model"]``, or ``obj`` itself if it is one)."""
    state = obj.get("model", obj if obj and all(isinstance(v, Tensor) for v in obj.values()) else None)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"checkpoint {path} has no 'model' state dict (top-level keys: {', '.join(map(str, list(obj)[:6]))}); "
            "pass a `vistr train` checkpoint or vistr_r50.pth / vistr_r101.pth"
        )
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: model entry {bad[0]!r} is not a tensor; the file is damaged"
        )
    return state


def _load_strict(model: nn.Module, state: dict[str, Tensor], path: Path | str) -> None:
    """Load with exact key and shape checking; one-line error listing the first few problems."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model ({'; '.join(problems)}); "
            "pass the checkpoint for this architecture (for official files: vistr_r50.pth / vistr_r101.pth)"
        )
    model.load_state_dict(state, strict=True)


def init_from_detr(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Initialize ``model`` for training from a COCO-pretrained 384-d DETR segmentation checkpoint
    (the authors' ``384_coco_r50.pth`` layout), an official VisTR file or a ``vistr train`` checkpoint.

    Every tensor whose key and shape fit is copied. DETR's class head and query embedding are
    always left at their fresh initialization (its classes are COCO's, its queries DETR's); from
    VisTR checkpoints they are kept when the shapes fit (same class count, same n*T). DETR-only
    keys (``mask_head.lay5``, ``out_lay``) are ignored.
    """
    p = Path(path)
    obj = read_checkpoint(p)
    state = _state_dict_of(p, obj)
    inner = getattr(model, "module", model)
    if isinstance(getattr(inner, "config", None), ModelConfig):
        warn_args_disagree(p, checkpoint_args(obj), inner.config, against="the model being trained has")
    is_detr = any(k.startswith(_DETR_ONLY) for k in state)
    target = inner.state_dict()
    loaded, skipped = [], []
    for key, tensor in state.items():
        if key not in target:
            skipped.append((key, "not in this model"))
        elif is_detr and key.startswith(_CLASS_HEAD + _QUERIES):
            skipped.append((key, "re-initialized (DETR's classes and queries do not carry over)"))
        elif tensor.shape != target[key].shape:
            skipped.append((key, f"shape {tuple(tensor.shape)} vs model {tuple(target[key].shape)}"))
        else:
            loaded.append(key)
    with torch.no_grad():
        for key in loaded:
            target[key].copy_(state[key])
    if not loaded:
        raise CheckpointError(
            f"checkpoint {p} shares no tensor with this model; pass a DETR/VisTR checkpoint of the same architecture"
        )
    missing = tuple(k for k in target if k not in state)
    return LoadReport(loaded=tuple(loaded), skipped=tuple(skipped), missing=missing)
