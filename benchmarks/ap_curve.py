"""The held-out AP curve of training runs: every numbered checkpoint (``ckpt_NNNNNN.pt``) and
``last.pt`` of each run folder, scored on one split with the official YouTube-VIS metric, in step
order. The same predictions and scores as ``vistr eval --data DIR --checkpoint CKPT`` with the
same inference options.

    python benchmarks/ap_curve.py RUN [RUN ...] --data DIR [--split valid]
        [--dedup-iou 0.5] [--merge-iou 0.1] [--precision auto] [--out benchmarks/results/ap_curve.json]

Prints one line per checkpoint and a table (steps down, runs across) and writes the JSON report
with the CPU model. Run folders need ``vistr train --checkpoint-every N`` (the ``tiny`` preset keeps
one every 250 steps).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from vistr_core.checkpoint_io import read_checkpoint
from vistr_core.config import InferConfig
from vistr_core.eval.ytvis_eval import evaluate_ytvis
from vistr_core.inference.split import predict_split

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_info, write_report  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "ap_curve.json"
NUMBERED = re.compile(r"ckpt_(\d+)\.pt")


def run_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of ``run_dir``'s numbered checkpoints and its ``last.pt``, by step; ``last.pt``
    is left out where it is a numbered one's step (a run that ended on a multiple of N)."""
    found = {
        int(match.group(1)): path
        for path in run_dir.glob("ckpt_*.pt")
        if (match := NUMBERED.fullmatch(path.name))
    }
    last = run_dir / "last.pt"
    if last.is_file():
        found.setdefault(int(read_checkpoint(last)["step"]), last)
    if not found:
        raise SystemExit(f"{run_dir}: no ckpt_NNNNNN.pt or last.pt; train with --checkpoint-every N")
    return sorted(found.items())


def score(checkpoint: Path, data_root: Path, split: str, infer: InferConfig) -> dict[str, float]:
    """AP and AP50 of one checkpoint on ``split`` (rounded to 4 digits, as the reports quote them)."""
    results, ground_truth = predict_split(data_root, split, checkpoint, infer=infer)
    stats = evaluate_ytvis(ground_truth, results).stats
    return {"AP": round(stats["AP"], 4), "AP50": round(stats["AP50"], 4)}


def table(curves: dict[str, list[dict]]) -> str:
    """Markdown: one row per step, one ``AP / AP50`` column per run ("–" where a run has none)."""
    steps = sorted({point["step"] for points in curves.values() for point in points})
    at = {run: {p["step"]: p for p in points} for run, points in curves.items()}
    lines = ["| step | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for step in steps:
        cells = [
            f"{at[run][step]['AP']:.3f} / {at[run][step]['AP50']:.3f}" if step in at[run] else "–"
            for run in curves
        ]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="vistr train run folders")
    parser.add_argument("--data", type=Path, required=True, help="dataset with the held-out split")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--dedup-iou", type=float, default=None)
    parser.add_argument("--merge-iou", type=float, default=None)
    parser.add_argument(
        "--precision", default="auto", help="as vistr eval's (auto: bf16 where the CPU has it)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    infer = InferConfig(precision=args.precision, dedup_iou=args.dedup_iou, merge_iou=args.merge_iou)
    checkpoints = {str(run): run_checkpoints(run) for run in args.runs}  # every folder checked first
    curves: dict[str, list[dict]] = {}
    for run, points in checkpoints.items():
        curves[run] = []
        for step, path in points:
            point = {"step": step, "checkpoint": str(path), **score(path, args.data, args.split, infer)}
            curves[run].append(point)
            print(f"{run} step {step}: AP {point['AP']:.4f} AP50 {point['AP50']:.4f}", flush=True)
    print(table(curves))
    write_report(
        args.out,
        {
            "data": str(args.data),
            "split": args.split,
            "dedup_iou": args.dedup_iou,
            "merge_iou": args.merge_iou,
            "precision": args.precision,
            "torch": torch.__version__,
            "cpu": cpu_info(),
            "curves": curves,
        },
    )


if __name__ == "__main__":
    main()
