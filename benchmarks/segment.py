"""How fast `vistr segment` runs end to end, how much of it is the model, and whether memory stays flat.

1. Throughput, per preset (``tiny`` and ``vistr_r50``, random weights saved as a `vistr train`
   checkpoint): a generated 640×360 H.264 video is segmented through :func:`segment_videos` exactly
   as the CLI does (decode → preprocess → model → post-process → RLE → spool → results.json), after
   one warm-up video. The model's own forward time is measured inside the same run (hooks around
   ``model.forward``), so "overhead" = everything but the model, in the same conditions.
2. Peak memory against video length: the ``tiny`` model on a 45-frame and a 360-frame video, each in
   a fresh subprocess (its peak resident set, ``VmHWM``), same resolution.

    python benchmarks/segment.py [--presets tiny vistr_r50] [--frames-r50 72] [--skip-rss]

Prints the figures and writes benchmarks/results/segment.json (rows of presets not run this time,
and the memory figures when ``--skip-rss``, are kept from the previous file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import write_checkpoint
from vistr_core.config import InferConfig
from vistr_core.inference.segment import segment_videos
from vistr_core.model import build_vistr
from vistr_core.model.loading import model_checkpoint_payload
from vistr_core.presets import get_preset

RESULTS = Path(__file__).parent / "results" / "segment.json"
WIDTH, HEIGHT = 640, 360


def write_video(path: Path, count: int, *, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Moving coloured discs on a gradient: H.264 in mp4, 25 fps."""
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], -1).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(25), options={"crf": "18", "preset": "veryfast"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(count):
            image = background.copy()
            for k, color in enumerate(((230, 40, 40), (40, 220, 60), (50, 60, 230))):
                cx = (t * (3 + 2 * k) + 97 * k) % width
                cy = height * (k + 1) // 4
                image[(xx - cx) ** 2 + (yy - cy) ** 2 < (height // 8) ** 2] = color
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def save_random_checkpoint(preset_name: str, path: Path) -> Path:
    preset = get_preset(preset_name)
    torch.manual_seed(0)
    model = build_vistr(preset.model)
    categories = (
        CategoryMap.ytvis2019_official()
        if preset.model.num_classes == 41
        else CategoryMap.generic(preset.model.num_classes)
    )
    write_checkpoint(
        model_checkpoint_payload(model, data_config=preset.data, categories=categories, preset=preset_name),
        path,
    )
    return path


class ForwardTimer:
    """Accumulates wall time spent inside ``model.forward``."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds, self.calls, self._start = 0.0, 0, 0.0
        model.register_forward_pre_hook(self._before)
        model.register_forward_hook(self._after)

    def _before(self, *_: object) -> None:
        self._start = time.perf_counter()

    def _after(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1


def throughput(preset_name: str, frames: int, work: Path) -> dict[str, object]:
    from vistr_core import load_model

    ckpt = save_random_checkpoint(preset_name, work / f"{preset_name}.pt")
    model = load_model(ckpt, device="cpu")
    T = model.config.num_frames
    warm = write_video(work / f"warm_{preset_name}.mp4", T)
    video = write_video(work / f"bench_{preset_name}.mp4", frames)
    segment_videos([warm], work / "warm", model=model, device="cpu", checkpoint=ckpt)
    timer = ForwardTimer(model)
    started = time.perf_counter()
    summary = segment_videos([video], work / f"out_{preset_name}", model=model, device="cpu", checkpoint=ckpt)
    total = time.perf_counter() - started
    assert summary.ok, summary
    infer = InferConfig()
    overlap = infer.overlap if infer.overlap is not None else max(1, T // 4)
    return {
        "preset": preset_name,
        "frames": frames,
        "resolution": f"{WIDTH}x{HEIGHT}",
        "window": T,
        "overlap": overlap,
        "windows": timer.calls,
        "tracks": summary.videos[0].tracks,
        "end_to_end_seconds": round(total, 3),
        "model_seconds": round(timer.seconds, 3),
        "end_to_end_fps": round(frames / total, 3),
        "model_only_fps": round(frames / timer.seconds, 3),
        "overhead_vs_model": round((total - timer.seconds) / timer.seconds, 4),
    }


RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from vistr_core.inference.segment import segment_videos
video, ckpt, out = map(Path, sys.argv[1:4])
summary = segment_videos([video], out, checkpoint=ckpt, device="cpu")
assert summary.ok, summary
# VmHWM: this process's own peak (ru_maxrss would include the parent's peak, inherited across exec)
status = Path("/proc/self/status")
fields = dict(line.split(":", 1) for line in status.read_text().splitlines()) if status.exists() else {}
peak = int(fields["VmHWM"].split()[0]) if "VmHWM" in fields else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"maxrss_kb": peak, "frames": summary.videos[0].frames}))
"""


def peak_rss(video: Path, checkpoint: Path, out: Path) -> dict[str, int]:
    """Peak resident memory of segmenting ``video`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(video), str(checkpoint), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(work: Path, lengths: tuple[int, int] = (45, 360)) -> dict[str, object]:
    ckpt = save_random_checkpoint("tiny", work / "tiny_rss.pt")
    figures = {}
    for count in lengths:
        video = write_video(work / f"rss_{count}.mp4", count)
        figures[count] = peak_rss(video, ckpt, work / f"rss_out_{count}")
    short, long = (figures[n]["maxrss_kb"] for n in lengths)
    return {
        "preset": "tiny",
        "resolution": f"{WIDTH}x{HEIGHT}",
        "peak_rss_mib": {str(n): round(figures[n]["maxrss_kb"] / 1024, 1) for n in lengths},
        "ratio_long_vs_short": round(long / short, 4),
    }


def merge_previous(report: dict[str, object]) -> dict[str, object]:
    """Keep the previous file's rows for presets (and memory figures) not measured this time."""
    if not RESULTS.exists():
        return report
    previous = json.loads(RESULTS.read_text())
    measured = {row["preset"] for row in report["throughput"]}
    kept = [row for row in previous.get("throughput", []) if row["preset"] not in measured]
    report["throughput"] = kept + report["throughput"]
    if "memory" not in report and "memory" in previous:
        report["memory"] = previous["memory"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["tiny", "vistr_r50"])
    parser.add_argument("--frames-tiny", type=int, default=60)
    parser.add_argument("--frames-r50", type=int, default=72)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "throughput": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.presets:
            frames = args.frames_r50 if name.startswith("vistr") else args.frames_tiny
            row = throughput(name, frames, work)
            report["throughput"].append(row)
            print(
                f"{name:10s} {frames} frames {row['resolution']}: end-to-end {row['end_to_end_fps']:.2f} fps, "
                f"model only {row['model_only_fps']:.2f} fps, overhead {100 * row['overhead_vs_model']:.1f}% of model time",
                flush=True,
            )
        if not args.skip_rss:
            report["memory"] = memory(work)
            mem = report["memory"]
            print(
                f"peak RSS (tiny, {mem['resolution']}): {mem['peak_rss_mib']} MiB; "
                f"360 vs 45 frames: {mem['ratio_long_vs_short']:.3f}x",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merge_previous(report), indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
