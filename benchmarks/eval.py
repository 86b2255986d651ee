"""How long `vistr eval` takes to score a YouTube-VIS-sized split.

Synthetic but realistic: 300 videos × 36 frames at 1280×720, ~5 ground-truth tracks per video
(smoothly moving blobs with wobbly outlines, some absent frames, uncompressed-RLE ground truth
like the official files) and ~15 predictions per video (good, shifted and duplicate copies of the
objects, confusions with another category, and spurious blobs; compressed-RLE strings like a real
results file). Both are written to JSON and scored end to end from the files, as the CLI does.

    python benchmarks/eval.py [--videos 300] [--frames 36] [--seed 0]

Prints the timings and writes benchmarks/results/eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from vistr_core.eval import evaluate_ytvis

H, W = 720, 1280
NUM_CATEGORIES = 40


def blob_runs(cy: float, cx: float, ry: float, rx: float, wobble: np.ndarray) -> list[int]:
    """Uncompressed column-major RLE counts of a blob: an ellipse whose top and bottom edges are
    displaced by a smooth per-column ``wobble``; one foreground run per covered column."""
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, W)
    xs = np.arange(x0, x1)
    half = ry * np.sqrt(np.clip(1 - ((xs - cx) / max(rx, 1)) ** 2, 0, 1))
    wob = np.interp(xs, np.linspace(x0, x1, len(wobble)), wobble) * half
    top = np.clip(np.round(cy - half + wob), 1, H - 1).astype(np.int64)
    bottom = np.clip(np.round(cy + half + wob), 1, H - 1).astype(np.int64)
    keep = bottom > top
    starts, ends = xs[keep] * H + top[keep], xs[keep] * H + bottom[keep]
    if starts.size == 0:
        return [H * W]
    bounds = np.empty(2 * starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, H * W
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    return np.diff(bounds).tolist()


def compressed(runs: list[int]) -> dict:
    rle = mask_utils.frPyObjects({"size": [H, W], "counts": runs}, H, W)
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def object_path(rng: np.random.Generator, frames: int) -> list[tuple[float, float, float, float, np.ndarray]]:
    """Per-frame blob parameters of one object moving and breathing smoothly."""
    ry, rx = rng.uniform(20, 220), rng.uniform(20, 380)
    cy, cx = rng.uniform(ry, H - ry), rng.uniform(rx, W - rx)
    vy, vx = rng.normal(0, 4), rng.normal(0, 6)
    wobble = rng.normal(0, 0.15, 8)
    out = []
    for t in range(frames):
        scale = 1 + 0.1 * np.sin(t / 6)
        out.append((cy + vy * t, cx + vx * t, ry * scale, rx * scale, wobble + 0.05 * np.sin(t / 4)))
    return out


def synth(num_videos: int, frames: int, seed: int) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    videos, annotations, results = [], [], []
    for v in range(1, num_videos + 1):
        videos.append(
            {
                "id": v,
                "height": H,
                "width": W,
                "length": frames,
                "file_names": [f"{v:010x}/{5 * t:05d}.jpg" for t in range(frames)],
            }
        )
        objects = []
        for _ in range(int(rng.integers(3, 8))):  # ~5 tracks
            cat = int(rng.integers(1, NUM_CATEGORIES + 1))
            path = object_path(rng, frames)
            absent = rng.random(frames) < 0.05
            runs = [None if absent[t] else blob_runs(*path[t]) for t in range(frames)]
            areas = [None if r is None else int(sum(r[1::2])) for r in runs]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": v,
                    "category_id": cat,
                    "iscrowd": 0,
                    "height": H,
                    "width": W,
                    "length": 1,
                    "segmentations": [None if r is None else {"size": [H, W], "counts": r} for r in runs],
                    "areas": areas,
                    "bboxes": [None] * frames,
                }
            )
            objects.append((cat, path))
        for _ in range(int(rng.integers(12, 19))):  # ~15 predictions
            kind = rng.random()
            cat, path = objects[int(rng.integers(0, len(objects)))]
            if kind < 0.65:  # the object, shifted and resized a little (duplicates included)
                dy, dx, s = rng.normal(0, 6), rng.normal(0, 8), rng.uniform(0.85, 1.15)
                params = [(cy + dy, cx + dx, ry * s, rx * s, wob) for cy, cx, ry, rx, wob in path]
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, NUM_CATEGORIES + 1))  # confused category
            else:  # a spurious blob
                params = object_path(rng, frames)
            masks = [compressed(blob_runs(*p)) for p in params]
            results.append(
                {"video_id": v, "category_id": cat, "score": float(rng.random()), "segmentations": masks}
            )
    categories = [
        {"id": c, "name": f"class{c}", "supercategory": "object"} for c in range(1, NUM_CATEGORIES + 1)
    ]
    return {"videos": videos, "categories": categories, "annotations": annotations}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval.json")
    args = parser.parse_args()

    t0 = time.perf_counter()
    gt, results = synth(args.videos, args.frames, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(results))
        sizes = gt_path.stat().st_size, res_path.stat().st_size
        generate_s = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        result = evaluate_ytvis(gt_path, res_path)
        total_s, total_cpu = time.perf_counter() - t1, time.process_time() - c1
        t2, c2 = time.perf_counter(), time.process_time()
        json.loads(gt_path.read_text()), json.loads(res_path.read_text())
        parse_s, parse_cpu = time.perf_counter() - t2, time.process_time() - c2
    t3, c3 = time.perf_counter(), time.process_time()
    evaluate_ytvis(gt, results)
    in_memory_s, in_memory_cpu = time.perf_counter() - t3, time.process_time() - c3

    figures = {
        "benchmark": "eval",
        "videos": args.videos,
        "frames": args.frames,
        "resolution": f"{W}x{H}",
        "gt_tracks": len(gt["annotations"]),
        "predictions": len(results),
        "gt_json_mb": round(sizes[0] / 1e6, 1),
        "results_json_mb": round(sizes[1] / 1e6, 1),
        "seconds_from_files": round(total_s, 2),
        "cpu_seconds_from_files": round(total_cpu, 2),
        "seconds_json_parse_only": round(parse_s, 2),
        "cpu_seconds_json_parse_only": round(parse_cpu, 2),
        "seconds_in_memory": round(in_memory_s, 2),
        "cpu_seconds_in_memory": round(in_memory_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "AP": result.stats["AP"],
        "generate_seconds": round(generate_s, 1),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    print(
        f"scored {figures['predictions']} predictions against {figures['gt_tracks']} tracks in "
        f"{args.videos} videos × {args.frames} frames at {W}x{H}: {total_s:.2f} s from JSON files "
        f"(CPU {total_cpu:.2f} s, of which JSON parsing ~{parse_cpu:.2f} s; {in_memory_s:.2f} s, CPU "
        f"{in_memory_cpu:.2f} s from loaded lists); AP {result.stats['AP']:.4f}; "
        f"load average {figures['load_average_1min']} on {os.cpu_count()} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
