"""`vistr review` from the command line, `vistr render --review`, and `--cvat` exports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
from _segment_fakes import object_masks, write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.ops.masks import encode_masks
from vistr_core.render.overlay import _marked

runner = CliRunner()
L = 10


def _segment_output(tmp_path):
    """A `vistr segment`-like folder over a real video: 3 tracks, track 3 weak and broken."""
    video = write_scene_video(tmp_path / "clip.mp4", L, rate=10)
    masks = np.stack([object_masks(t) for t in range(L)], axis=1)  # [3, L, H, W]
    masks[2, 4:6] = False
    results = []
    for k in range(3):
        rles = encode_masks(masks[k])
        segmentations = [r if m.any() else None for r, m in zip(rles, masks[k], strict=True)]
        score = 0.3 if k == 2 else 0.9
        results.append(
            {
                "video_id": 1,
                "category_id": k + 1,
                "score": score,
                "track_id": k + 1,
                "segmentations": segmentations,
            }
        )
    folder = tmp_path / "out" / "clip"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    meta = {
        "source": str(video),
        "width": 96,
        "height": 64,
        "fps": 10.0,
        "frame_count": L,
        "frame_indices": list(range(L)),
        "categories": {"1": "red", "2": "green", "3": "blue"},
        "tracks": [],
        "links": [],
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_review_command_writes_files_table_and_cvat(tmp_path):
    folder = _segment_output(tmp_path)
    result = runner.invoke(app, ["review", str(folder), "--cvat"])
    assert result.exit_code == 0, result.output
    assert "low_score" in result.output and "gap" in result.output
    assert "1 of 3 tracks flagged" in result.output
    data = json.loads((folder / "review.json").read_text())
    assert data["items"][0]["track_id"] == 3 and data["items"][0]["reason"] == "low_score"
    flags = {
        t.get("label"): t.find("*/attribute[@name='needs_review']").text
        for t in ET.parse(folder / "annotations.xml").getroot().iterfind("track")
    }
    assert flags == {"red": "false", "green": "false", "blue": "true"}

    again = runner.invoke(app, ["review", str(folder)])
    assert again.exit_code == 1
    assert again.output.strip().startswith("error: review file") and "pass --force" in again.output
    assert len(again.output.strip().splitlines()) == 1

    stricter = runner.invoke(app, ["review", str(folder), "--low-score", "0.2", "--min-gap", "3", "--force"])
    assert stricter.exit_code == 0 and "0 of 3 tracks flagged" in stricter.output


def test_render_review_marks_and_shows_flagged_tracks(tmp_path):
    folder = _segment_output(tmp_path)
    assert runner.invoke(app, ["review", str(folder)]).exit_code == 0
    plain = runner.invoke(app, ["render", str(folder), "-o", str(tmp_path / "a")])
    assert plain.exit_code == 0 and "(1 below --score-thr hidden)" in plain.output
    marked = runner.invoke(
        app, ["render", str(folder), "--review", str(folder / "review.json"), "-o", str(tmp_path / "b")]
    )
    assert marked.exit_code == 0, marked.output
    assert "hidden" not in marked.output and "3 tracks" in marked.output  # flagged: drawn at any score
    a, b = tmp_path / "a" / "00002.png", tmp_path / "b" / "00002.png"
    assert a.read_bytes() != b.read_bytes()
    missing = runner.invoke(
        app, ["render", str(folder), "--review", str(tmp_path / "no.json"), "-o", str(tmp_path / "c")]
    )
    assert missing.exit_code == 1 and "run `vistr review`" in missing.output


def test_marked_label():
    assert _marked("cat 0.41 #3", "fragment+low_score") == "! fragment+low_score | cat 0.41 #3"
    assert _marked("cat 0.91 #1", None) == "cat 0.91 #1"
