"""`vistr render` refuses results whose track ids collide (one colour, one legend row for two)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _segment_fakes import write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.errors import ResultsError
from vistr_core.ops.masks import encode_masks
from vistr_core.render.tracks import tracks_from_results


def entry(**extra):
    masks = np.zeros((3, 64, 96), np.uint8)
    masks[:, 2:5, 3:7] = 1
    return {"video_id": 1, "category_id": 2, "score": 0.8, "segmentations": encode_masks(masks), **extra}


@pytest.mark.parametrize(
    ("results", "message"),
    [
        (
            [entry(track_id=4), entry(track_id=4)],
            "results: track_id 4 of video 1 is on entries 0 and 1 (a missing track_id counts as the entry's "
            "position + 1); give each track its own id",
        ),
        (
            [entry(track_id=3), entry(), entry()],  # the third entry defaults to id 3
            "results: track_id 3 of video 1 is on entries 0 and 2 (a missing track_id counts as the entry's "
            "position + 1); give each track its own id",
        ),
        ([entry(track_id=0)], "results entry 0 has track_id 0; track ids start at 1"),
    ],
)
def test_colliding_or_invalid_track_ids_are_refused(results, message):
    with pytest.raises(ResultsError) as info:
        tracks_from_results(results)
    assert str(info.value) == message


def test_render_cli_refuses_duplicates_and_writes_nothing(tmp_path):
    video = write_scene_video(tmp_path / "clip.mp4", 3)
    results = tmp_path / "results.json"
    results.write_text(json.dumps([entry(track_id=2), entry(track_id=2)]))
    out = tmp_path / "overlay.mp4"
    result = CliRunner().invoke(app, ["render", str(results), "--video", str(video), "-o", str(out)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "track_id 2 of video 1 is on entries 0 and 1" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "results.json"]
