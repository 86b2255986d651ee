"""How fast overlays are drawn and written: 1280×720, 10 tracks, the `vistr render` pipeline.

Ten objects are smooth blobs (unions of three ellipses with wobbly outlines) of very different
sizes (≈40 to ≈420 px across) drifting through the frame, stored as compressed-RLE strings like a
results file; the frame is a textured picture (blurred noise + gradients). Measured:

1. ``draw``: masks + contours + labels from already-decoded crops (:func:`draw_crops`).
2. ``decode_draw``: + decoding each frame's RLEs into crops (:func:`crops_from_rles`), i.e. all
   of the per-frame work of `vistr render` before encoding.
3. ``draw_encode``: decode + draw + H.264 encode through :class:`OverlayWriter` (encoding on its
   background thread, libx264 ``superfast`` crf 23) into an .mp4: what `vistr render` costs when the
   source frames are already decoded.
4. ``render_end_to_end``: :func:`render_overlay` from an H.264 source video file (source decode on
   the prefetch thread + everything above).
For reference, ``pycocotools_full_decode``: the cost of decoding the 10 full-frame masks per frame
with ``pycocotools.mask.decode`` (what ``crops_from_rles`` avoids).

The machine may be shared: each figure is reported from wall time (median of repeats) and from
this process's CPU time (user + sys, all threads) per frame, with the load average.

    python benchmarks/render.py [--frames 150] [--repeats 3]

Prints the figures and writes benchmarks/results/render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
from pycocotools import mask as mask_utils

from vistr_core.ops.masks import encode_masks
from vistr_core.render import (
    OverlayStyle,
    OverlayWriter,
    crops_from_rles,
    draw_crops,
    render_overlay,
    video_encoder,
)
from vistr_core.render.draw import format_label

H, W, TRACKS = 720, 1280, 10
NAMES = ["person", "dog", "car", "horse", "skateboard", "cat", "bird", "truck", "duck", "zebra"]


def scene(frames: int, seed: int) -> tuple[np.ndarray, list[list[dict]]]:
    """A background picture and, per frame, the 10 tracks' compressed RLEs."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 6)
    ramp = np.linspace(0, 80, W, dtype=np.float32)[None, :, None]
    background = np.clip(noise.astype(np.float32) * 0.7 + ramp, 0, 255).astype(np.uint8)
    sizes = np.geomspace(20, 210, TRACKS)  # radii: small to very large objects
    starts = rng.uniform([0.15 * W, 0.15 * H], [0.85 * W, 0.85 * H], (TRACKS, 2))
    velocity = rng.uniform(-3, 3, (TRACKS, 2))
    parts = rng.uniform(-0.5, 0.5, (TRACKS, 3, 2))
    per_frame = []
    for t in range(frames):
        masks = np.zeros((TRACKS, H, W), np.uint8)
        for k in range(TRACKS):
            cx, cy = starts[k] + velocity[k] * t
            r = sizes[k] * (1 + 0.1 * np.sin(t / 9 + k))
            for j in range(3):
                ox, oy = parts[k, j] * r
                axes = (int(r * (0.6 + 0.1 * j)), int(r * (0.45 + 0.15 * j)))
                angle = (30 * j + 2 * t + 17 * k) % 180
                cv2.ellipse(masks[k], (int(cx + ox), int(cy + oy)), axes, angle, 0, 360, 1, -1)
        per_frame.append(encode_masks(masks))
    return background, per_frame


def _time(run, frames: int, repeats: int) -> dict[str, float]:
    walls, cpus, mains = [], [], []
    for _ in range(repeats):
        cpu0, main0, wall0 = os.times(), time.thread_time(), time.perf_counter()
        run()
        wall, main, cpu1 = time.perf_counter() - wall0, time.thread_time() - main0, os.times()
        walls.append(wall)
        mains.append(main)
        cpus.append((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system))
    wall, cpu, main = statistics.median(walls), statistics.median(cpus), statistics.median(mains)
    return {
        "fps_wall": round(frames / wall, 1),
        "fps_best_wall": round(frames / min(walls), 1),
        "ms_per_frame_wall": round(1000 * wall / frames, 2),
        "cpu_ms_per_frame_all_threads": round(1000 * cpu / frames, 2),
        "cpu_ms_per_frame_main_thread": round(1000 * main / frames, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frames, repeats = args.frames, args.repeats
    before = [round(v, 2) for v in os.getloadavg()]
    background, rles = scene(frames, args.seed)
    images = [np.roll(background, 3 * t, axis=1) for t in range(frames)]
    ids = list(range(1, TRACKS + 1))
    labels = [format_label(NAMES[k], 0.5 + 0.05 * k, k + 1) for k in range(TRACKS)]
    style = OverlayStyle()  # masks (alpha 0.5) + contours + labels
    crops = [crops_from_rles(r) for r in rles]
    coverage = [sum((c.box[2] - c.box[0]) * (c.box[3] - c.box[1]) for c in cs if c) / (H * W) for cs in crops]

    def draw_only() -> None:
        for t in range(frames):
            draw_crops(images[t], crops[t], ids, labels, style=style)

    def decode_draw() -> None:
        for t in range(frames):
            draw_crops(images[t], crops_from_rles(rles[t]), ids, labels, style=style)

    def full_decode() -> None:
        for t in range(frames):
            mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles[t]])

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "overlay.mp4"

        def draw_encode() -> None:
            with OverlayWriter(out, width=W, height=H, fps=30.0, style=style, force=True) as writer:
                for t in range(frames):
                    writer.write(images[t], crops_from_rles(rles[t]), ids, labels, index=t)

        source = Path(tmp) / "source.mp4"
        with OverlayWriter(
            source, width=W, height=H, fps=30.0, style=OverlayStyle(alpha=0, contours=False, labels=False)
        ) as writer:
            for t in range(frames):
                writer.write(images[t], [None] * TRACKS, ids)
        results_list = [
            {"video_id": 1, "category_id": k + 1, "score": 0.5 + 0.05 * k, "track_id": k + 1,
             "segmentations": [rles[t][k] for t in range(frames)]}
            for k in range(TRACKS)
        ]  # fmt: skip
        categories = {k + 1: NAMES[k] for k in range(TRACKS)}

        def end_to_end() -> None:
            render_overlay(
                results_list,
                source,
                out,
                style=OverlayStyle(score_thr=0.0),
                categories=categories,
                force=True,
            )

        draw_only()  # warm up (label patch cache, allocator)
        for name, run in [
            ("draw", draw_only),
            ("decode_draw", decode_draw),
            ("draw_encode", draw_encode),
            ("render_end_to_end", end_to_end),
            ("pycocotools_full_decode", full_decode),
        ]:
            results[name] = _time(run, frames, repeats)
            print(f"{name:>24}: {results[name]}", flush=True)
        with av.open(str(out)) as container:
            written = container.streams.video[0].frames
        megabits_per_s = out.stat().st_size * 8 / 1e6 / (frames / 30.0)
    report = {
        "resolution": f"{W}x{H}",
        "tracks": TRACKS,
        "frames": frames,
        "repeats": repeats,
        "style": "alpha 0.5 + contours + labels (class, score, #track)",
        "mean_box_coverage_of_frame": round(float(np.mean(coverage)), 3),
        "encoder": video_encoder(),
        "frames_written_end_to_end": written,
        "overlay_bitrate_mbit_s": round(megabits_per_s, 2),
        "load_average_before": before,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "pyav": av.__version__,
            "cv2_threads": cv2.getNumThreads(),
        },
        "targets": {"draw_fps": 75, "draw_encode_fps": 30},
    }
    path = Path(__file__).parent / "results" / "render.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
