"""Peak memory does not grow with video length (fresh subprocesses, peak resident set VmHWM). Slow: ~1-3 min on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import write_checkpoint
from vistr_core.model import build_vistr
from vistr_core.model.loading import model_checkpoint_payload
from vistr_core.presets import get_preset

CHILD = """
import json, resource, sys
from pathlib import Path
from vistr_core.inference.segment import OutputOptions, segment_videos
video, ckpt, out = map(Path, sys.argv[1:4])
summary = segment_videos([video], out, checkpoint=ckpt, device="cpu", outputs=OutputOptions(png=True, mots=True))
assert summary.ok, summary
# VmHWM: this process's own peak (ru_maxrss would include the parent's peak, inherited across exec)
status = Path("/proc/self/status")
fields = dict(line.split(":", 1) for line in status.read_text().splitlines()) if status.exists() else {}
peak = int(fields["VmHWM"].split()[0]) if "VmHWM" in fields else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"maxrss_kb": peak, "frames": summary.videos[0].frames}))
"""


def noisy_video(path, count: int, width: int = 640, height: int = 360):
    """Textured frames, so a random model produces many non-empty masks and large RLEs."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(25), options={"crf": "23", "preset": "ultrafast"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(count):
            image = np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_length(tmp_path):
    preset = get_preset("tiny")
    ckpt = tmp_path / "tiny.pt"
    payload = model_checkpoint_payload(
        build_vistr(preset.model), data_config=preset.data, categories=CategoryMap.generic(1)
    )
    write_checkpoint(payload, ckpt)
    peaks = {}
    for count in (45, 360):
        video = noisy_video(tmp_path / f"v{count}.mp4", count)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(video), str(ckpt), str(tmp_path / f"out{count}")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        assert figures["frames"] == count
        peaks[count] = figures["maxrss_kb"]
    results = json.loads((tmp_path / "out360" / "v360" / "results.json").read_text())
    assert (
        results and sum(s is not None for r in results for s in r["segmentations"]) > 360
    )  # real mask output
    assert peaks[360] <= 1.25 * peaks[45], peaks
