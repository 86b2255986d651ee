"""`vistr render` end to end against the same job written with supervision, process start-up included.

The job: 90 frames of a 1280x720 H.264 video with 10 tracks in a YouTube-VIS results file (the
scene of ``benchmarks/render.py``: smooth blobs from ≈40 to ≈420 px), drawn as translucent masks
(opacity 0.5), outlines and a label per instance ("class score #track"), written as H.264.

- ``vistr``: ``python -m vistr_cli render results.json -o overlay.mp4 --score-thr 0`` (meta.json
  beside the results names the source video and the category names, as `vistr segment` writes it).
- ``supervision``: ``python benchmarks/render_vs_supervision.py --supervision ...``: PyAV decodes the
  source; per frame pycocotools decodes the 10 RLEs; ``sv.Detections`` (boxes from ``mask_to_xyxy``,
  track ids) go through ``MaskAnnotator`` + ``PolygonAnnotator`` + ``LabelAnnotator``, colour by
  track; PyAV encodes with libx264 at vistr's settings (preset superfast, crf 23), so the encoder
  is the same on both sides.

Each side is a fresh process timed from launch to exit; the two alternate, repeats times, and the
medians give the ratio. supervision is a benchmark-only dependency: ``pip install -e .[bench]``.

    python benchmarks/render_vs_supervision.py [--frames 90] [--repeats 3]

Prints the figures and writes benchmarks/results/render_vs_supervision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["person", "dog", "car", "horse", "skateboard", "cat", "bird", "truck", "duck", "zebra"]
FPS = 30


def supervision_pipeline(results_path: Path, source: Path, output: Path) -> int:
    """The supervision version of `vistr render`; returns the frames written."""
    import av
    import numpy as np
    import supervision as sv
    from pycocotools import mask as mask_utils

    results = json.loads(results_path.read_text())
    names = json.loads(results_path.with_name("meta.json").read_text())["categories"]
    lookup = sv.ColorLookup.TRACK
    masks_annotator = sv.MaskAnnotator(opacity=0.5, color_lookup=lookup)
    outline_annotator = sv.PolygonAnnotator(color_lookup=lookup)
    label_annotator = sv.LabelAnnotator(color_lookup=lookup)
    labels = [f"{names[str(r['category_id'])]} {r['score']:.2f} #{r['track_id']}" for r in results]
    written = 0
    with av.open(str(source)) as src, av.open(str(output), "w") as dst:
        stream = dst.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "superfast", "crf": "23"}
        for t, frame in enumerate(src.decode(video=0)):
            image = frame.to_ndarray(format="bgr24")
            present = [k for k, r in enumerate(results) if r["segmentations"][t] is not None]
            rles = [{**results[k]["segmentations"][t]} for k in present]
            for rle in rles:
                rle["counts"] = rle["counts"].encode()
            masks = np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)
            detections = sv.Detections(
                xyxy=sv.mask_to_xyxy(masks).astype(np.float32),
                mask=masks,
                class_id=np.array([results[k]["category_id"] for k in present]),
                tracker_id=np.array([results[k]["track_id"] for k in present]),
            )
            image = masks_annotator.annotate(image, detections)
            image = outline_annotator.annotate(image, detections)
            image = label_annotator.annotate(image, detections, labels=[labels[k] for k in present])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                dst.mux(packet)
            written += 1
        for packet in stream.encode():
            dst.mux(packet)
    return written


def make_job(folder: Path, frames: int, seed: int) -> tuple[Path, Path]:
    """Source video, results.json and meta.json (source, fps, categories) in ``folder``."""
    import av
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from render import TRACKS, scene  # benchmarks/render.py: the same blobs and background

    background, rles = scene(frames, seed)
    source = folder / "source.mp4"
    with av.open(str(source), "w") as dst:
        stream = dst.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        for t in range(frames):
            image = np.ascontiguousarray(np.roll(background, 3 * t, axis=1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    results = [
        {"video_id": 1, "category_id": k + 1, "score": round(0.5 + 0.05 * k, 2), "track_id": k + 1,
         "segmentations": [rles[t][k] for t in range(frames)]}
        for k in range(TRACKS)
    ]  # fmt: skip
    results_path = folder / "results.json"
    results_path.write_text(json.dumps(results))
    meta = {"source": str(source), "fps": FPS, "width": 1280, "height": 720, "num_frames": frames}
    meta["categories"] = {str(k + 1): NAMES[k] for k in range(TRACKS)}
    (folder / "meta.json").write_text(json.dumps(meta))
    return results_path, source


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds of the process, and its CPU seconds (user + sys, all threads)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supervision", nargs=3, metavar=("RESULTS", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.supervision:  # the child process of the supervision side
        supervision_pipeline(*map(Path, args.supervision))
        return
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results, source = make_job(folder, args.frames, args.seed)
        out_vistr, out_sv = folder / "vistr.mp4", folder / "supervision.mp4"
        commands = {
            "vistr": [sys.executable, "-m", "vistr_cli", "render", str(results), "-o", str(out_vistr)]
            + ["--score-thr", "0", "--force"],
            "supervision": [
                sys.executable,
                __file__,
                "--supervision",
                str(results),
                str(source),
                str(out_sv),
            ],
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                wall, cpu = timed(command)
                walls[name].append(wall)
                cpus[name].append(cpu)
        written = {"vistr": frames_in(out_vistr), "supervision": frames_in(out_sv)}
        sizes = {"vistr": out_vistr.stat().st_size, "supervision": out_sv.stat().st_size}
    medians = {name: statistics.median(w) for name, w in walls.items()}
    ratio = medians["supervision"] / medians["vistr"]
    cpu = {name: statistics.median(c) for name, c in cpus.items()}
    for name in commands:
        runs = [round(w, 2) for w in walls[name]]
        print(f"{name:>12}: median {medians[name]:.2f} s (CPU {cpu[name]:.2f} s)  runs {runs}")
    print(f"vistr is {ratio:.2f}x supervision end to end (target 1.5x)")
    import supervision

    report = {
        "benchmark": "render_vs_supervision",
        "job": f"{args.frames} frames 1280x720, 10 tracks, masks + outlines + labels, H.264",
        "repeats": args.repeats,
        "wall_s_median": {k: round(v, 3) for k, v in medians.items()},
        "wall_s_runs": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        # user + sys of the whole process: less sensitive to a busy machine than wall time
        "cpu_s_median": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ratio_supervision_over_vistr": round(cpu["supervision"] / cpu["vistr"], 3),
        "speedup_vistr_over_supervision": round(ratio, 3),
        "frames_written": written,
        "output_bytes": sizes,
        "supervision": supervision.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    path = Path(__file__).parent / "results" / "render_vs_supervision.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
