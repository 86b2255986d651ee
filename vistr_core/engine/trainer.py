"""Training VisTR: ``train(data_root, preset=..., out_dir=...) -> TrainSummary``.

One optimizer step ("iteration") consumes ``accumulate`` batches of ``batch_size`` clips per rank.
The loop is deterministic given the seed: clip ``i`` of epoch ``e`` is a pure function of
(seed, e, i) and the epoch's order of clips is drawn from seed + e, so a resumed run skips the
batches its epoch already consumed and continues exactly (same weights as an uninterrupted run).

See :mod:`vistr_core.engine.run_dir` for what a run folder holds and
:mod:`vistr_core.engine.train_state` for the checkpoint keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint_io import read_checkpoint
from ..config import DataConfig, ModelConfig, Preset, TrainConfig
from ..data.clip import ClipBatch
from ..errors import ConfigError, VistrError
from ..losses import build_criterion
from ..presets import get_preset
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from .device import PrecisionChoice, autocast, frozen_backbone_precision, training_precision
from .distributed import DistContext, cleanup_distributed, global_any, global_mean, init_distributed
from .feed import TrainFeed, build_feed
from .interrupt import stop_on_signals
from .optim import build_optimizer, build_scheduler, drop_interval, same_rates_so_far
from .rng import restore_rng_state, seed_everything
from .run_dir import LAST, METRICS, MetricsLog, RunFolderGuard, prepare_run_dir, write_run_config
from .run_state import Evaluator, TrainingRun
from .saving import save_checkpoint
from .threads import ThreadGovernor, ThreadSetting
from .train_state import Position, SavedRun, read_saved_run, restore_training_state

#: Settings that may change when resuming (they do not alter the optimization trajectory).
RESUMABLE_SETTINGS = frozenset(
    {"epochs", "max_iters", "checkpoint_every", "eval_every", "workers", "log_every"}
)
# lr_drop too, while every epoch so far keeps its learning rate under the new interval
# (optim.same_rates_so_far).

#: DataConfig fields that ``overrides`` may set too (training augmentation, not preprocessing: a
#: model's inference preprocessing stays its preset's).
DATA_SETTINGS = frozenset({"copy_paste", "copy_paste_same_class"})

#: Training clips whose frames set the backbone's BN statistics (``calibrate_backbone``).
_CALIBRATION_CLIPS = 8


class TrainingDivergedError(VistrError):
    """A loss term became NaN or infinite; nothing was saved after the last good checkpoint."""


@dataclass(frozen=True)
class TrainSummary:
    """What a :func:`train` call did.

    Attributes:
        run_dir: the run folder. last_checkpoint: ``RUN/last.pt``.
        steps: optimizer steps done in total (including those before a resume).
        epoch: the epoch in progress (== epochs when training finished its schedule).
        losses: the loss terms of the last step (averaged over ranks).
        interrupted: stopped early by SIGINT/SIGTERM (``last.pt`` holds the position).
        stop_signal: the signal that stopped it ("SIGINT", "SIGTERM"; "" when it finished or,
            under DDP, on a rank told to stop by another).
        resumed_from: the checkpoint a resumed run started from.
        seconds: wall time of this call.
        evaluations: step -> metrics of the periodic evaluations.
        precision: what the model ran in (``--amp`` and the device decide; the reason says why).
        backbone_precision: what the backbone ran in (``backbone_precision``, the device and
            whether it is frozen decide).
    """

    run_dir: Path
    last_checkpoint: Path
    steps: int
    epoch: int
    losses: dict[str, float]
    interrupted: bool = False
    stop_signal: str = ""
    resumed_from: Path | None = None
    seconds: float = 0.0
    evaluations: dict[int, dict[str, float]] = field(default_factory=dict)
    precision: PrecisionChoice = PrecisionChoice("fp32", "--amp not set")
    backbone_precision: PrecisionChoice = PrecisionChoice("fp32", "--amp not set")


def train(
    data_root: str | Path,
    *,
    split: str = "train",
    preset: str | Preset = "vistr_r50",
    out_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    num_frames: int | None = None,
    resume: bool | str | Path = False,
    init_from: str | Path | None = None,
    device: str = "auto",
    force: bool = False,
    eval_split: str = "valid",
    evaluator: Evaluator | None = None,
    progress: ProgressCallback = no_progress,
    threads: ThreadSetting = None,
) -> TrainSummary:
    """Train (or continue training) VisTR on a YouTube-VIS-format dataset.

    Args:
        data_root: the dataset folder (any layout :func:`vistr_core.data.ytvis.resolve_split` knows).
        preset: a preset name or :class:`Preset`; its ModelConfig's ``num_classes`` is replaced by
            the dataset's category count.
        out_dir: the run folder (refused when non-empty unless ``resume`` or ``force``).
        overrides: TrainConfig fields to change (``{"lr": 2e-4, "max_iters": 100}``), and the
            :data:`DATA_SETTINGS` fields of the DataConfig (``{"copy_paste": 0.5}``).
        num_frames: T, if not the preset's.
        resume: True for ``out_dir/last.pt``, or a checkpoint path; the run continues exactly.
        init_from: initial weights (DETR / VisTR / ``vistr train`` checkpoint) for a new run.
        device: ``auto|cpu|cuda|cuda:N``; under torchrun each rank uses ``cuda:LOCAL_RANK``.
        eval_split: the split evaluated every ``eval_every`` steps.
        threads: CPU threads: ``"auto"`` (the free cores, re-checked during the run; see
            :mod:`vistr_core.engine.threads`), a fixed count, or None to leave torch's setting.
            Bit-exact resume needs the same fixed count in both runs.
        evaluator: scores the model on ``eval_split`` (needed when ``eval_every`` is set);
            :func:`vistr_core.train` passes the YouTube-VIS metric
            (:func:`vistr_core.inference.split.score_split`). Training never imports inference.
    Raises:
        TrainingDivergedError: a loss became NaN/inf (the message names the step and the term).
    """
    started = time.perf_counter()
    ctx = init_distributed(device)
    try:
        with RunFolderGuard(Path(out_dir)) as guard, ThreadGovernor(threads) as governor:
            run, resumed_from = _prepare(
                ctx, Path(data_root), split, preset, guard, dict(overrides or {}),
                num_frames, resume, init_from, force, eval_split, evaluator, progress,
            )  # fmt: skip
            stop_signal = _fit(run, governor)
    finally:
        cleanup_distributed(ctx)
    return TrainSummary(
        run_dir=run.run_dir,
        last_checkpoint=run.run_dir / LAST,
        steps=run.position.step,
        epoch=run.position.epoch,
        losses=dict(run.losses),
        interrupted=stop_signal is not None,
        stop_signal=stop_signal or "",
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
        evaluations=dict(run.evaluations),
        precision=run.precision,
        backbone_precision=run.backbone_precision,
    )


# --------------------------------------------------------------------------------------------------
# Setting up


def _resolve_preset(preset: str | Preset) -> Preset:
    return get_preset(preset) if isinstance(preset, str) else preset


def _resume_path(resume: bool | str | Path, out_dir: Path) -> Path | None:
    if resume is False or resume is None:
        return None
    if resume is True and not (out_dir / LAST).is_file():
        raise ConfigError(
            f"--resume: {out_dir} has no {LAST} to continue; drop --resume to start a new run there"
        )
    return out_dir / LAST if resume is True else Path(resume)


def _settings(
    preset: Preset, overrides: dict[str, Any], num_frames: int | None, saved: SavedRun | None
) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The run's configs: the preset with overrides, or the saved run's with resumable overrides."""
    data_overrides = {k: v for k, v in overrides.items() if k in DATA_SETTINGS}
    overrides = {k: v for k, v in overrides.items() if k not in DATA_SETTINGS}
    if saved is None:
        model = (
            preset.model if num_frames is None else dataclasses.replace(preset.model, num_frames=num_frames)
        )
        data = dataclasses.replace(preset.data, **data_overrides)
        return model, data, _replace_train(preset.train, overrides)
    changed = sorted(
        k
        for k, v in overrides.items()
        if k not in RESUMABLE_SETTINGS
        and getattr(saved.train, k, v) != v
        and not (k == "lr_drop" and same_rates_so_far(saved.train.lr_drop, v, saved.position.epoch))
    ) + sorted(k for k, v in data_overrides.items() if getattr(saved.data, k) != v)
    if changed or (num_frames is not None and num_frames != saved.model.num_frames):
        what = ", ".join(changed) or "num_frames"
        raise ConfigError(
            f"cannot change {what} when resuming (the run would no longer continue exactly); "
            "start a new run with --init-from the checkpoint instead"
        )
    return saved.model, saved.data, _replace_train(saved.train, overrides)


def _replace_train(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}")
    return dataclasses.replace(config, **overrides)


def _prepare(
    ctx: DistContext,
    data_root: Path,
    split: str,
    preset_arg: str | Preset,
    guard: RunFolderGuard,
    overrides: dict[str, Any],
    num_frames: int | None,
    resume: bool | str | Path,
    init_from: str | Path | None,
    force: bool,
    eval_split: str,
    evaluator: Evaluator | None,
    progress: ProgressCallback,
) -> tuple[TrainingRun, Path | None]:
    """Everything a run needs, from scratch or from a checkpoint; checks come before any write."""
    run_dir = guard.run_dir
    preset = _resolve_preset(preset_arg)
    resume_path = _resume_path(resume, run_dir)
    if resume_path is not None and init_from is not None:
        raise ConfigError("--init-from starts a new run; it cannot be combined with --resume")
    checkpoint = read_checkpoint(resume_path) if resume_path is not None else None
    saved = read_saved_run(checkpoint, resume_path) if checkpoint is not None else None
    model_config, data_config, config = _settings(preset, overrides, num_frames, saved)
    if config.eval_every:
        from .periodic_eval import check_eval_split

        check_eval_split(data_root, eval_split, evaluator)
    if ctx.is_main:
        prepare_run_dir(run_dir, resume=resume_path is not None, force=force)
        guard.owned = True
    feed = build_feed(data_root, split, ctx, model_config.num_frames, data_config, config, saved)
    categories = saved.categories if saved is not None else feed.categories
    model_config = dataclasses.replace(model_config, num_classes=categories.num_classes)
    module = _build_model(model_config, config.seed, init_from, ctx)
    if config.calibrate_backbone and init_from is None and checkpoint is None:
        _calibrate_backbone(module, feed, ctx.device)
    optimizer = build_optimizer(module, config)
    precision = training_precision(config.amp, ctx.device)
    backbone = module.vistr.backbone[0]
    backbone_precision = frozen_backbone_precision(
        config.backbone_precision,
        frozen=not any(p.requires_grad for p in backbone.parameters()),
        run=precision,
        device=ctx.device,
    )
    backbone.compute_dtype = backbone_precision.dtype if precision.name == "fp32" else None
    run = TrainingRun(
        ctx=ctx, run_dir=run_dir, preset=saved.preset if saved and saved.preset else preset.name,
        model_config=model_config, data_config=data_config, config=config, categories=categories,
        model=module, module=module, criterion=build_criterion(
            categories.num_classes, config, memory_stride=module.memory_stride
        ).to(ctx.device),
        optimizer=optimizer, scheduler=build_scheduler(optimizer, config),
        precision=precision, backbone_precision=backbone_precision,
        scaler=_grad_scaler(ctx.device, precision), feed=feed, position=Position(),
        data_root=data_root, split=split, eval_split=eval_split,
        progress=progress if ctx.is_main else no_progress, metrics=None,
        evaluator=evaluator,
    )  # fmt: skip
    if checkpoint is not None:
        _restore(run, checkpoint, saved.position)
    run.model = _wrap_ddp(module, ctx)
    if ctx.is_main:
        run.metrics = MetricsLog(run_dir / METRICS, resume_step=run.position.step if saved else None)
        write_run_config(run_dir, run.module, data_config, config, run.preset, categories)
    return run, resume_path


def _restore(run: TrainingRun, checkpoint: dict[str, Any], position: Position) -> None:
    restore_training_state(
        checkpoint, model=run.module, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler
    )
    # The saved schedule carries its own interval; a resume may have moved the drop (_settings).
    run.scheduler.step_size = drop_interval(run.config.lr_drop)
    run.position = position
    _restore_rank_rng(checkpoint, run.ctx, run.config.seed, position.step)


def _build_model(config: ModelConfig, seed: int, init_from: str | Path | None, ctx: DistContext) -> nn.Module:
    """The same initial weights on every rank (seeded alike); then per-rank seeds for the rest."""
    from ..model import build_vistr
    from ..model.loading import init_from_detr

    seed_everything(seed)
    model = build_vistr(config)
    if init_from is not None:
        init_from_detr(model, init_from)
    seed_everything(seed + ctx.rank)
    return model.to(ctx.device).train()


def _calibrate_backbone(module: nn.Module, feed: TrainFeed, device: torch.device) -> None:
    """Frozen-BN statistics from the first clips of the training set (the same on every rank:
    dataset item i without an epoch seed is a fixed draw), before the first step."""
    dataset = feed.loader.dataset
    clips = [dataset[i][0].to(device) for i in range(min(_CALIBRATION_CLIPS, len(dataset)))]
    module.vistr.backbone[0].calibrate_batchnorm(clips)


def _grad_scaler(device: torch.device, precision: PrecisionChoice) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling; bf16 (and fp32) do not."""
    if precision.name == "fp16":
        return torch.amp.GradScaler(device.type)
    return None


def _restore_rank_rng(checkpoint: dict[str, Any], ctx: DistContext, seed: int, step: int) -> None:
    states = checkpoint.get("rng") or []
    if len(states) == ctx.world_size:
        restore_rng_state(states[ctx.rank])
    else:  # a different world size cannot continue bit-exactly; stay deterministic at least
        seed_everything(seed + ctx.rank + 1000003 * step)


def _wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # 1x1 convolutions get gradients whose (meaningless) strides on size-1 dims differ from DDP's
    # bucket views; PyTorch warns on every rank although nothing is wrong.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(module, device_ids=device_ids)


# --------------------------------------------------------------------------------------------------
# The loop


def _fit(run: TrainingRun, governor: ThreadGovernor) -> str | None:
    """Train until the schedule ends; the stop signal's name ("" from another rank) if stopped.
    ``governor`` follows co-tenants between steps."""
    meter = _Meter()
    with stop_on_signals() as stop:
        while run.position.step < run.total_steps and run.position.epoch < run.config.epochs:
            for group, data_seconds in run.feed.epoch_groups(run.position.epoch, run.position.epoch_batches):
                _step(run, group, meter, data_seconds)
                _after_step(run, meter)
                governor.update()
                if global_any(stop.requested, run.ctx.device):
                    save_checkpoint(run, numbered=False)
                    return stop.signal_name
                if run.position.step >= run.total_steps:
                    break
            else:
                _end_epoch(run)
    save_checkpoint(run, numbered=False)
    run.progress(
        ProgressUpdate("iterations", run.position.step, run.total_steps, done=True, info=_short(run.losses))
    )
    return None


def _end_epoch(run: TrainingRun) -> None:
    """Step the schedule; save ``last.pt`` unless the epoch was short (tiny datasets would write a
    checkpoint every few steps): then the periodic checkpoints cover it."""
    run.scheduler.step()
    run.position = Position(run.position.step, run.position.epoch + 1, 0)
    since_save = run.position.step - (run.saved.step if run.saved is not None else 0)
    if run.config.checkpoint_every == 0 or since_save >= run.config.checkpoint_every:
        save_checkpoint(run, numbered=False)


def _step(run: TrainingRun, group: list[ClipBatch], meter: _Meter, data_seconds: float) -> None:
    """One optimizer step over ``group`` (``accumulate`` batches)."""
    run.optimizer.zero_grad(set_to_none=True)
    totals: dict[str, Tensor] = {}
    for i, batch in enumerate(group):
        last = i == len(group) - 1
        sync = contextlib.nullcontext() if last or not run.ctx.distributed else run.model.no_sync()
        with sync:
            losses = _forward_losses(run, batch.to(run.ctx.device, non_blocking=True))
            _check_finite(losses, run.position.step + 1)
            loss = losses["loss"] / len(group)
            (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0) + value.detach() / len(group)
    _optimizer_step(run)
    run.position = Position(
        run.position.step + 1, run.position.epoch, run.position.epoch_batches + len(group)
    )
    meter.record(data_seconds, totals)


def _forward_losses(run: TrainingRun, batch: ClipBatch) -> dict[str, Tensor]:
    # Masks are computed after matching, for the matched slots only (what the losses read; the
    # mask cost of cost_mask > 0 needs every slot's, so they are computed up front then).
    with autocast(run.ctx.device, run.precision.dtype):
        outputs = run.model(batch.frames, batch.pad_mask, defer_masks=run.config.cost_mask == 0)
    # The criterion runs outside autocast: matching costs and losses in float32 (deferred masks
    # re-enter the forward's autocast).
    return run.criterion(outputs, batch.targets)


def _check_finite(losses: dict[str, Tensor], step: int) -> None:
    """Stop before a non-finite loss reaches the weights (and on every rank together)."""
    bad = [name for name, value in losses.items() if not bool(torch.isfinite(value))]
    if global_any(bool(bad), losses["loss"].device):
        term = next((n for n in bad if n != "loss"), bad[0]) if bad else "on another rank"
        value = f" = {losses[term].item()}" if bad else ""
        raise TrainingDivergedError(
            f"training diverged at step {step}: loss term {term}{value} is not finite; nothing was saved "
            "after the last checkpoint (last.pt). Start a new run with --init-from last.pt and a lower --lr, "
            "or (with --amp) --resume with --no-amp"
        )


def _optimizer_step(run: TrainingRun) -> None:
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.config.clip_max_norm > 0:
        nn.utils.clip_grad_norm_(run.module.parameters(), run.config.clip_max_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()


def _after_step(run: TrainingRun, meter: _Meter) -> None:
    step, config = run.position.step, run.config
    if step % config.log_every == 0 or step == run.total_steps:
        _log(run, meter)
    else:
        run.progress(
            ProgressUpdate("iterations", step, run.total_steps, f"epoch {run.position.epoch}", run.shown)
        )
    if config.checkpoint_every and step % config.checkpoint_every == 0:
        save_checkpoint(run, numbered=True)
    if config.eval_every and step % config.eval_every == 0:
        from .periodic_eval import evaluate_run

        run.evaluations[step] = evaluate_run(run)


def _log(run: TrainingRun, meter: _Meter) -> None:
    """Average the window's losses over ranks; rank 0 writes metrics.jsonl and reports progress."""
    names, values = meter.mean_losses()
    values = global_mean(values).tolist()
    run.losses = dict(zip(names, values, strict=True))
    lr = run.optimizer.param_groups[0]["lr"]
    its, data_time = meter.rates()
    record = {
        "step": run.position.step,
        "epoch": run.position.epoch,
        **run.losses,
        "lr": lr,
        "it_s": its,
        "data_s": data_time,
    }
    if run.metrics is not None:
        run.metrics.write(record)
    info = {**_short(run.losses), "lr": lr, "it/s": its}
    run.progress(
        ProgressUpdate("iterations", run.position.step, run.total_steps, f"epoch {run.position.epoch}", info)
    )
    meter.reset()


def _short(losses: Mapping[str, float]) -> dict[str, float]:
    """The terms worth showing beside a progress bar (the last decoder layer's and the total)."""
    return {
        k.removeprefix("loss_") if k != "loss" else k: v for k, v in losses.items() if not k[-1].isdigit()
    }


class _Meter:
    """Losses and timings accumulated between two log lines."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.steps = 0
        self.data_seconds = 0.0
        self.started = time.perf_counter()

    def record(self, data_seconds: float, losses: dict[str, Tensor]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.steps += 1
        self.data_seconds += data_seconds

    def mean_losses(self) -> tuple[list[str], Tensor]:
        names = sorted(self.sums)
        return names, torch.stack([self.sums[n] / max(self.steps, 1) for n in names]).float()

    def rates(self) -> tuple[float, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        steps = max(self.steps, 1)
        return self.steps / elapsed, self.data_seconds / steps


__all__ = ["DATA_SETTINGS", "RESUMABLE_SETTINGS", "TrainSummary", "TrainingDivergedError", "train"]
