"""How useful `vistr review`'s ranking is: recall of the erroneous tracks in its top k.

Two sources of imperfect predictions on synthetic videos with ground truth:

- ``model``: a checkpoint (e.g. the tiny model after a few steps) segments every video of a split
  exactly as `vistr segment` does (links and per-frame scores recorded in meta.json);
- ``perturbed``: ground truth with injected mistakes (:mod:`vistr_core.review.perturb`), several
  seeds, no model.

Each predicted track is labelled correct / false positive / fragment / id switch / wrong class
against the ground truth (official video IoU 0.5, greedy matching by score); tracks are pooled
over the videos and ranked by review severity; k = the number of erroneous tracks.

    python benchmarks/review.py --data DATA [--split valid] [--checkpoint RUN/last.pt] [--seeds 5]

DATA: a `vistr data synth` folder (made with --difficulty easy or harder for several objects).
Prints the figures and writes benchmarks/results/review.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vistr_core.data.ytvis import load_ytvis
from vistr_core.inference.segment import segment_videos
from vistr_core.review.perturb import perturbed_predictions
from vistr_core.review.usefulness import measure


def ground_truth(
    data: Path, split: str
) -> tuple[list[tuple[str, list[tuple[int, np.ndarray]]]], list[int], Path]:
    """[(video folder name, [(category_id, masks [L, H, W])])], category ids, the frames' root."""
    index = load_ytvis(data, split)
    videos = []
    for video in index.videos:
        masks, tracks = index.decode_masks(video, list(range(video.length)))
        name = Path(video.file_names[0]).parent.name
        videos.append((name, [(t.category_id, m) for t, m in zip(tracks, masks, strict=True)]))
    return videos, [c["id"] for c in index.categories], index.image_root


def model_figures(checkpoint: Path, data: Path, split: str, device: str) -> dict[str, Any]:
    videos, _, image_root = ground_truth(data, split)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        summary = segment_videos(
            [image_root / name for name, _ in videos], out, checkpoint=checkpoint, device=device
        )
        seconds = time.perf_counter() - started
        if not summary.ok:
            raise SystemExit(f"segmentation failed: {[v.message for v in summary.failed]}")
        pooled = []
        for name, truth in videos:
            results = json.loads((out / name / "results.json").read_text())
            meta = json.loads((out / name / "meta.json").read_text())
            pooled.append((results, meta, truth))
        figures = measure(pooled)
    return {"videos": len(videos), "segment_seconds": round(seconds, 1), **figures.to_json()}


def perturbed_figures(data: Path, split: str, seeds: int) -> dict[str, Any]:
    videos, categories, _ = ground_truth(data, split)
    runs = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        pooled = []
        for _, truth in videos:
            results, meta = perturbed_predictions(truth, categories, rng)
            pooled.append((results, meta, truth))
        runs.append(measure(pooled).to_json())
    recalls = [r["recall_at_k"] for r in runs]
    flags = [r["false_flag_share"] for r in runs]
    return {
        "videos": len(videos),
        "seeds": seeds,
        "recall_at_k_mean": round(float(np.mean(recalls)), 4),
        "recall_at_k_min": round(float(np.min(recalls)), 4),
        "false_flag_share_mean": round(float(np.mean(flags)), 4),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "review.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"data": str(args.data), "split": args.split, "machine": platform.machine()}
    report["perturbed"] = perturbed_figures(args.data, args.split, args.seeds)
    p = report["perturbed"]
    print(
        f"perturbed ground truth, {p['videos']} videos x {p['seeds']} seeds: recall@k {p['recall_at_k_mean']:.3f} "
        f"(min {p['recall_at_k_min']:.3f}), correct tracks flagged {p['false_flag_share_mean']:.3f}"
    )
    if args.checkpoint is not None:
        report["model"] = m = model_figures(args.checkpoint, args.data, args.split, args.device)
        print(
            f"model {args.checkpoint}: {m['tracks']} tracks, {m['erroneous']} erroneous {m['labels']}; "
            f"recall@k {m['recall_at_k']:.3f} {m['recall_by_label']}, correct tracks flagged {m['false_flag_share']:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
