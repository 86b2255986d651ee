"""`vistr train`: train VisTR on a YouTube-VIS-format dataset (one process, or DDP under torchrun)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from vistr_cli.errors import EXIT_INTERRUPTED, reports_errors, stderr
from vistr_cli.options import DeviceOpt, ForceOpt, PresetOpt, ThreadsOpt
from vistr_cli.progress import RichProgress
from vistr_core.progress import no_progress

if TYPE_CHECKING:
    from vistr_core.engine.trainer import TrainSummary


def _overrides(**values: Any) -> dict[str, Any]:
    """TrainConfig (and data augmentation) fields the user set (None = keep the preset's / the
    checkpoint's)."""
    return {name: value for name, value in values.items() if value is not None}


@reports_errors
def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data", "-d", help="Dataset folder (YouTube-VIS 2019/2021, OVIS or `vistr data synth` output)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder: checkpoints, metrics.jsonl, config.json.")
    ],
    preset: PresetOpt = "vistr_r50",
    split: Annotated[str, typer.Option(help="Split to train on.")] = "train",
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (one epoch = clips_per_video clips of every video).")
    ] = None,
    max_iters: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    copy_paste: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Probability that a training clip gets one object of another video pasted on top "
            "(preferably of a class the clip has). Default: the preset's (tiny 0.25, the paper presets 0).",
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per step per process.")] = None,
    accumulate: Annotated[
        int | None, typer.Option(help="Batches accumulated into one optimizer step.")
    ] = None,
    num_frames: Annotated[
        int | None, typer.Option(help="T, frames per clip (default: the preset's).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate (the backbone's is set by the preset).")
    ] = None,
    lr_backbone: Annotated[float | None, typer.Option(help="Backbone learning rate (0 freezes it).")] = None,
    lr_drop: Annotated[
        int | None,
        typer.Option(
            help="Divide the learning rates by 10 every N epochs (may change on resume while no rate differs)."
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Start from these weights (COCO DETR-384, official VisTR, or a run).",
            dir_okay=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out exactly (from OUT/last.pt).")
    ] = False,
    resume_from: Annotated[
        Path | None,
        typer.Option("--resume-from", help="Continue exactly from this checkpoint.", dir_okay=False),
    ] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="Mixed precision: on CUDA bf16 where supported, else fp16 with loss scaling; on a CPU with "
            "native bf16 (AMX or AVX512-BF16) bf16; elsewhere fp32 (the report says why).",
        ),
    ] = None,
    backbone_precision: Annotated[
        str | None,
        typer.Option(
            "--backbone-precision",
            help="What a frozen backbone (--lr-backbone 0) computes in when training in fp32: auto (bf16 "
            "where the device has native bf16), fp32 or bf16. Default: the run's setting (auto).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Data loading worker processes per training process.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (data order, augmentation, initialization).")
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Evaluate on --eval-split every N steps (0 = never).")
    ] = None,
    eval_split: Annotated[str, typer.Option(help="Split with ground truth for --eval-every.")] = "valid",
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Also keep OUT/ckpt_NNNNNN.pt every N steps (0 = only last.pt).")
    ] = None,
    log_every: Annotated[int | None, typer.Option(help="Write metrics.jsonl every N steps.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    force: ForceOpt = False,
) -> None:
    """Train VisTR; Ctrl-C saves OUT/last.pt and stops cleanly, --resume continues exactly.

    Examples:

      vistr train --data shapes/ --preset tiny --out runs/tiny --max-iters 2000

      torchrun --nproc_per_node 8 -m vistr_cli train --data ytvis/ --preset vistr_r50 --out runs/r50 --amp
    """
    from vistr_core import train as run_training
    from vistr_core.engine.threads import thread_setting

    overrides = _overrides(
        epochs=epochs, max_iters=max_iters, batch_size=batch_size, accumulate=accumulate, lr=lr,
        lr_backbone=lr_backbone, lr_drop=lr_drop, amp=amp, backbone_precision=backbone_precision,
        workers=workers, seed=seed, eval_every=eval_every, checkpoint_every=checkpoint_every,
        log_every=log_every, copy_paste=copy_paste,
    )  # fmt: skip
    cpu_threads = thread_setting(threads)
    main_process = os.environ.get("RANK", "0") == "0"
    show = main_process and not quiet
    with RichProgress() if show else contextlib.nullcontext(no_progress) as progress:
        summary = run_training(
            data, split=split, preset=preset, out_dir=out, overrides=overrides, num_frames=num_frames,
            resume=resume_from if resume_from is not None else resume, init_from=init_from,
            device=device, force=force, eval_split=eval_split, progress=progress, threads=cpu_threads,
        )  # fmt: skip
    if main_process:
        _report(summary)
    if summary.interrupted:
        raise typer.Exit(_interrupted_exit_code(summary.stop_signal))


def _interrupted_exit_code(signal_name: str) -> int:
    """128 + the signal number, as a shell reports a process killed by it (130 SIGINT, 143 SIGTERM),
    so `vistr train ... && vistr eval ...` and schedulers tell a stopped run from a finished one."""
    if signal_name in signal.Signals.__members__:
        return 128 + signal.Signals[signal_name].value
    return EXIT_INTERRUPTED


def _report(summary: TrainSummary) -> None:
    state = "interrupted" if summary.interrupted else "finished"
    losses = "  ".join(
        f"{k.removeprefix('loss_')} {v:.4f}" for k, v in summary.losses.items() if not k[-1].isdigit()
    )
    stderr.print(f"[bold]{state}[/] after {summary.steps} steps ({summary.seconds:.0f} s): {losses}")
    stderr.print(f"precision: {summary.precision.name} ({escape(summary.precision.reason)})")
    backbone = summary.backbone_precision
    if backbone.name != summary.precision.name:
        stderr.print(f"backbone precision: {backbone.name} ({escape(backbone.reason)})")
    for step, metrics in sorted(summary.evaluations.items()):
        stderr.print(f"eval at step {step}: " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    typer.echo(str(summary.last_checkpoint))
    if summary.interrupted:
        stderr.print(f"continue with: vistr train ... --out {summary.run_dir} --resume")
