"""`vistr eval`: the official YouTube-VIS metric on a results file, or on a checkpoint's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vistr_cli.console import print_table, stdout_console
from vistr_cli.errors import reports_errors, stderr
from vistr_cli.options import (
    AmpOpt,
    CheckpointOpt,
    ColourWeightOpt,
    CoveragePowerOpt,
    DedupOpt,
    DeviceOpt,
    ForceOpt,
    LinkIouOpt,
    MergeColourOpt,
    MergeOpt,
    PrecisionOpt,
    RelinkColourOpt,
    SlotBonusOpt,
    ThreadsOpt,
    precision_choice,
)
from vistr_cli.progress import RichProgress
from vistr_core.atomic import atomic_write_json, refuse_overwrite
from vistr_core.config import InferConfig
from vistr_core.errors import ConfigError, VistrError

if TYPE_CHECKING:
    from vistr_core.eval import EvalResult

USAGE = "give --gt GT.json --results RESULTS.json, or --data DIR --checkpoint CKPT [--split valid]"


@reports_errors
def evaluate(
    gt: Annotated[
        Path | None,
        typer.Option(
            "--gt", help="Ground-truth YouTube-VIS JSON (videos, categories, annotations with masks)."
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results", "-r", help="YouTube-VIS results JSON list (or a submission .zip) to score."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset root: predict --split with --checkpoint, then score."),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Split of --data to predict and score (default: valid).")
    ] = None,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    amp: AmpOpt = None,
    threads: ThreadsOpt = None,
    link_iou: LinkIouOpt = InferConfig.link_iou,
    slot_bonus: SlotBonusOpt = InferConfig.slot_bonus,
    dedup_iou: DedupOpt = None,
    merge_iou: MergeOpt = None,
    merge_colour: MergeColourOpt = InferConfig.merge_colour,
    colour_weight: ColourWeightOpt = InferConfig.colour_weight,
    relink_colour: RelinkColourOpt = InferConfig.relink_colour,
    coverage_power: CoveragePowerOpt = InferConfig.coverage_power,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the 12 statistics and per-category AP here. With --data, results.json goes beside it "
            "(default with --data: <checkpoint folder>/eval_<split>/metrics.json).",
            dir_okay=False,
        ),
    ] = None,
    per_video: Annotated[
        Path | None,
        typer.Option(
            "--per-video", help="Write a CSV row per (video, category) to find bad videos.", dir_okay=False
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Score video instance segmentation with the official YouTube-VIS metric (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l).

    Score a file: vistr eval --gt valid.json --results results.json --json metrics.json

    Predict and score: vistr eval --data ytvis/ --split valid --checkpoint runs/r50/last.pt
    """
    file_mode = gt is not None or results is not None
    model_mode = data is not None or checkpoint is not None or split is not None
    if file_mode and model_mode:
        raise ConfigError(f"--gt/--results score a file, --data/--checkpoint/--split run a model; {USAGE}")
    if file_mode:
        if gt is None or results is None:
            raise ConfigError(f"--gt and --results go together; {USAGE}")
        model_options = (precision, amp, threads, dedup_iou, merge_iou)
        if (
            device != "auto"
            or link_iou != InferConfig.link_iou
            or slot_bonus != InferConfig.slot_bonus
            or coverage_power != InferConfig.coverage_power
            or merge_colour != InferConfig.merge_colour
            or colour_weight != InferConfig.colour_weight
            or relink_colour != InferConfig.relink_colour
            or any(option is not None for option in model_options)
        ):
            raise ConfigError(
                "--device, --precision, --amp, --threads, --link-iou, --slot-bonus, --dedup-iou, --merge-iou, "
                "--merge-colour, --colour-weight, --relink-colour and --coverage-power "
                "only apply with --data/--checkpoint; drop them to score a file"
            )
        _refuse_outputs([json_out, per_video], force)
        from vistr_core.eval import evaluate_ytvis

        with RichProgress(transient=True) as progress:
            result = evaluate_ytvis(gt, results, per_video=per_video is not None, progress=progress)
    elif model_mode:
        result, json_out = _predict_and_score(
            data,
            split or "valid",
            checkpoint,
            device,
            InferConfig(
                precision=precision_choice(precision, amp),
                link_iou=link_iou,
                slot_bonus=slot_bonus,
                dedup_iou=dedup_iou,
                merge_iou=merge_iou,
                merge_colour=merge_colour,
                colour_weight=colour_weight,
                relink_colour=relink_colour,
                coverage_power=coverage_power,
            ),
            json_out,
            per_video,
            force,
            threads,
        )
    else:
        raise ConfigError(f"nothing to score; {USAGE}")

    _print_report(result)
    _write_outputs(result, json_out, per_video)


def _refuse_outputs(paths: list[Path | None], force: bool) -> None:
    for path in paths:
        if path is not None:
            refuse_overwrite(path, force=force, what="output")


def _predict_and_score(
    data: Path | None,
    split: str,
    checkpoint: Path | None,
    device: str,
    infer: InferConfig,
    json_out: Path | None,
    per_video: Path | None,
    force: bool,
    threads: int | None,
) -> tuple[EvalResult, Path]:
    """Run the checkpoint over the split (the `vistr segment` predictor), keep results.json beside the
    metrics JSON, score it. Returns the result and the metrics path."""
    if data is None or checkpoint is None:
        raise ConfigError(f"--data and --checkpoint go together; {USAGE}")
    metrics_path = json_out or checkpoint.parent / f"eval_{split}" / "metrics.json"
    results_path = metrics_path.parent / "results.json"
    if metrics_path.name == results_path.name:
        raise ConfigError(
            f"--json {metrics_path}: that name is taken by the predictions; choose e.g. metrics.json"
        )
    _refuse_outputs([metrics_path, results_path, per_video], force)
    try:
        from vistr_core.inference.split import predict_split
    except ImportError as err:
        raise VistrError(
            f"evaluating a checkpoint needs vistr_core.inference.split, which this build lacks ({err}); "
            "run vistr segment and score with --gt/--results"
        ) from None
    from vistr_core.engine.device import resolve_precision, select_device
    from vistr_core.engine.threads import thread_setting
    from vistr_core.eval import evaluate_ytvis

    cpu_threads = thread_setting(threads)
    with RichProgress() as progress:
        predictions, ground_truth = predict_split(
            data, split, checkpoint, device=device, infer=infer, progress=progress, threads=cpu_threads
        )
        # Written before scoring: the predictions are a complete, reusable file on their own.
        atomic_write_json(results_path, predictions)
        result = evaluate_ytvis(ground_truth, predictions, per_video=per_video is not None, progress=progress)
    used = resolve_precision(infer.precision, select_device(device))
    stderr.print(f"predicted in {used.name} ({escape(used.reason)}); wrote {escape(str(results_path))}")
    return result, metrics_path


def _value(value: float) -> str:
    return "[dim]n/a[/]" if value < 0 else f"{value:.4f}"


def _print_report(result: EvalResult) -> None:
    from vistr_core.eval.params import STAT_DEFINITIONS, STAT_NAMES

    console = stdout_console()
    for note in result.warnings:
        stderr.print(f"[yellow]warning:[/] {escape(note)}")
    title = (
        f"YouTube-VIS metric: {result.num_predictions} predictions, {result.num_videos} videos, "
        f"{result.num_gt_tracks} ground-truth tracks"
    )
    table = Table()
    for column, justify in (
        ("metric", "left"),
        ("value", "right"),
        ("IoU", "left"),
        ("area", "left"),
        ("maxDets", "right"),
    ):
        table.add_column(column, justify=justify)
    for name in STAT_NAMES:
        _, iou, area, max_det = STAT_DEFINITIONS[name]
        table.add_row(
            name, _value(result.stats[name]), ".50:.95" if iou is None else f"{iou:.2f}", area, str(max_det)
        )
    print_table(console, title, table)

    cats = Table()
    for column, justify in (
        ("id", "right"),
        ("category", "left"),
        ("AP", "right"),
        ("GT tracks", "right"),
        ("predictions", "right"),
    ):
        cats.add_column(column, justify=justify)
    for cid, row in result.per_category.items():
        cats.add_row(
            str(cid), escape(str(row["name"])), _value(row["AP"]), str(row["num_gt"]), str(row["num_dt"])
        )
    print_table(console, "per-category AP (IoU .50:.95, area all, maxDets 100)", cats)


def _write_outputs(result: EvalResult, json_out: Path | None, per_video: Path | None) -> None:
    written: list[Any] = []
    if json_out is not None:
        atomic_write_json(json_out, result.to_json(), indent=2)
        written.append(json_out)
    if per_video is not None and result.units is not None:
        from vistr_core.eval import write_per_video_csv

        write_per_video_csv(result.units, per_video)
        written.append(per_video)
    for path in written:
        stderr.print(f"wrote {escape(str(path))}")
