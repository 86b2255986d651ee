"""What bf16 (or fp16) costs in accuracy against fp32, measured rather than assumed.

Two sources, each run in fp32 and in the low precision on the same machine:

- ``parity``: the seeded-weights R50 parity fixture (``tests/fixtures/parity``, T=3, n=4, 96x128),
  whose fp32 outputs equal the official implementation's.
- ``dataset`` (with ``--checkpoint`` and ``--data``): a trained checkpoint on a YouTube-VIS split:
  the official AP of ``vistr eval --data`` in both precisions, and the raw window outputs compared.

Per source: class-argmax agreement (over every slot and frame, and over the slots whose fp32 score
is >= 0.5), mask agreement (fraction of all mask pixels equal, and IoU of the foregrounds: the
pixels either precision calls foreground), the largest score difference, and on a dataset the AP
difference. ``vistr_core.engine.device.AUTO_CPU_BF16`` follows from these: ``auto`` keeps fp32 if
bf16 costs more than 0.01 AP on the quickstart's held-out split.

    python benchmarks/precision_accuracy.py                                   # parity fixture only
    python benchmarks/precision_accuracy.py --checkpoint quickstart-out/run/last.pt \\
        --data quickstart-out/shapes --split valid

Prints a table and writes benchmarks/results/precision_accuracy.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from model_forward import cpu_model  # noqa: E402

from vistr_core import load_model  # noqa: E402
from vistr_core.config import InferConfig  # noqa: E402
from vistr_core.data.transforms import preprocess_frames  # noqa: E402
from vistr_core.data.ytvis import load_ytvis, read_rgb  # noqa: E402
from vistr_core.engine.device import cpu_bf16_support, resolve_precision, select_device  # noqa: E402
from vistr_core.eval import evaluate_ytvis  # noqa: E402
from vistr_core.inference.predictor import WindowPredictor  # noqa: E402
from vistr_core.inference.split import predict_split  # noqa: E402

PARITY = Path(__file__).parent.parent / "tests" / "fixtures" / "parity"


class Agreement:
    """Running counts of how often the low precision agrees with fp32."""

    def __init__(self) -> None:
        self.slots = self.same_class = self.confident = self.same_confident = 0
        self.pixels = self.same_pixels = self.union = self.intersection = 0
        self.max_score_diff = 0.0

    def add(self, scores: tuple[torch.Tensor, torch.Tensor], labels: tuple[torch.Tensor, torch.Tensor],
            masks: tuple[torch.Tensor, torch.Tensor]) -> None:  # fmt: skip
        """Each pair is (fp32, low): scores/labels [n, T], mask logits [n, T, h, w]."""
        same = labels[0] == labels[1]
        confident = scores[0] >= 0.5
        self.slots += same.numel()
        self.same_class += int(same.sum())
        self.confident += int(confident.sum())
        self.same_confident += int((same & confident).sum())
        self.max_score_diff = max(self.max_score_diff, float((scores[0] - scores[1]).abs().max()))
        a, b = masks[0] > 0, masks[1] > 0
        self.pixels += a.numel()
        self.same_pixels += int((a == b).sum())
        self.union += int((a | b).sum())
        self.intersection += int((a & b).sum())

    def summary(self) -> dict[str, float | int | None]:
        return {
            "class_argmax_agreement": self.same_class / max(self.slots, 1),
            "class_argmax_agreement_confident": self.same_confident / self.confident
            if self.confident
            else None,
            "confident_slot_frames": self.confident,
            "mask_pixel_agreement": self.same_pixels / max(self.pixels, 1),
            "mask_foreground_iou": self.intersection / self.union if self.union else None,
            "max_score_difference": self.max_score_diff,
        }


def _compare(model: torch.nn.Module, device: torch.device, dtype: torch.dtype, clips: list[torch.Tensor],
             agreement: Agreement) -> None:  # fmt: skip
    """Run every clip [T, 3, H, W] in fp32 and in ``dtype`` and add their agreement."""
    fp32, low = WindowPredictor(model, device=device), WindowPredictor(model, device=device, dtype=dtype)
    for clip in clips:
        a, b = fp32(clip[None])[0], low(clip[None])[0]
        agreement.add((a.scores, b.scores), (a.labels, b.labels), (a.mask_logits.cpu(), b.mask_logits.cpu()))


def parity_source(device: torch.device, dtype: torch.dtype) -> dict:
    """The seeded R50 parity fixture (its fp32 outputs are the official implementation's)."""
    spec = importlib.util.spec_from_file_location("seeded_weights", PARITY / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = torch.load(PARITY / "case_resnet50_T3_n4_96x128.pt", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "official_T3_n4.pth"
        torch.save(
            {"model": module.seeded_state_dict(PARITY / "case_resnet50_T3_n4.tsv", case["seed"])}, path
        )
        model = load_model(path, num_frames=case["T"], device=str(device))
    agreement = Agreement()
    _compare(model, device, dtype, [case["input"]], agreement)
    return {"source": "parity fixture (seeded R50, T=3, n=4, 96x128)", **agreement.summary()}


def _dataset_clips(model: torch.nn.Module, data: Path, split: str) -> list[torch.Tensor]:
    """Every video of the split cut into windows of T frames (the last padded by repetition)."""
    index = load_ytvis(data, split)
    t = int(model.config.num_frames)
    clips = []
    for video in index.videos:
        frames = np.stack([read_rgb(index.frame_path(video, i)) for i in range(video.length)])
        frames = preprocess_frames(frames, model.data_config)
        for start in range(0, len(frames), t):
            window = frames[start : start + t]
            pad = window[-1:].expand(t - len(window), *window.shape[1:])
            clips.append(torch.cat([window, pad]))
    return clips


def dataset_source(
    checkpoint: Path, data: Path, split: str, device: torch.device, precision: str, dtype: torch.dtype
) -> dict:
    model = load_model(checkpoint, device=str(device))
    stats, seconds = {}, {}
    for name in ("fp32", precision):
        start = time.perf_counter()
        results, gt = predict_split(data, split, model=model, infer=InferConfig(precision=name))
        seconds[name] = time.perf_counter() - start
        print(f"predicted {split} in {name}: {seconds[name]:.0f} s", flush=True)
        stats[name] = evaluate_ytvis(gt, results).stats
    agreement = Agreement()
    _compare(model, device, dtype, _dataset_clips(model, data, split), agreement)
    return {
        "source": f"{checkpoint} on {data} ({split})",
        "AP_fp32": stats["fp32"]["AP"],
        "AP_low": stats[precision]["AP"],
        "AP_difference": stats[precision]["AP"] - stats["fp32"]["AP"],
        "stats_fp32": stats["fp32"],
        "stats_low": stats[precision],
        "predict_seconds": seconds,
        **agreement.summary(),
    }


def _print(row: dict, precision: str) -> None:
    print(f"\n{row['source']}: {precision} vs fp32")
    for key, value in row.items():
        if key != "source" and not isinstance(value, dict):
            print(f"  {key:36s} {value if not isinstance(value, float) else f'{value:.6f}'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint (with --data)")
    parser.add_argument("--data", type=Path, help="a YouTube-VIS dataset folder with ground truth")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity fixture")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is steadier on a busy machine)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "precision_accuracy.json"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    dtype = resolve_precision(args.precision, device).dtype
    rows = [] if args.no_parity else [parity_source(device, dtype)]
    if args.checkpoint is not None and args.data is not None:
        rows.append(dataset_source(args.checkpoint, args.data, args.split, device, args.precision, dtype))
    for row in rows:
        _print(row, args.precision)
    report = {
        "benchmark": "precision_accuracy",
        "precision": args.precision,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_native_bf16": cpu_bf16_support(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
