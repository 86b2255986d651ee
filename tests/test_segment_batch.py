"""Batches from the command line: bad files reported and skipped, resume, exit codes, checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import pytest
from _segment_fakes import ColorSlotModel, fake_checkpoint_loading, scene_frame, write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import write_checkpoint
from vistr_core.inference import segment as segment_module
from vistr_core.model import build_vistr
from vistr_core.model.loading import model_checkpoint_payload
from vistr_core.presets import get_preset


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_model(monkeypatch):
    """Every checkpoint "loads" as one shared ColorSlotModel; counts loads and forward calls."""
    model = ColorSlotModel(8)
    model.loads = fake_checkpoint_loading(monkeypatch, lambda: model)
    return model


def make_batch(root: Path) -> Path:
    folder = root / "videos"
    write_scene_video(folder / "a_good.mp4", 12)
    frames = folder / "b_frames"
    frames.mkdir(parents=True)
    for t in range(10):
        cv2.imwrite(str(frames / f"{t}.jpg"), cv2.cvtColor(scene_frame(t), cv2.COLOR_RGB2BGR))
    data = write_scene_video(root / "whole.mp4", 12).read_bytes()
    (folder / "c_corrupt.mp4").write_bytes(data[: len(data) // 3])
    (folder / "d_empty.mkv").write_bytes(b"")
    (folder / "e_notes.avi").write_text("these are my notes, not a video\n")
    return folder


def test_bad_files_are_named_and_the_batch_goes_on(tmp_path, runner, fake_model):
    folder = make_batch(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["segment", str(folder), "-o", str(out), "-c", "any.pth"])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3
    for name, line in zip(("c_corrupt.mp4", "d_empty.mkv", "e_notes.avi"), failed, strict=True):
        assert name in line
    assert "3 of 5 video(s) failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_good", "b_frames"]  # nothing half-written
    for name in ("a_good", "b_frames"):
        assert (out / name / "meta.json").is_file() and (out / name / "results.json").is_file()


def test_rerun_skips_finished_videos_and_resumes_after_interrupt(tmp_path, runner, fake_model):
    folder = tmp_path / "videos"
    for name in ("v1", "v2", "v3"):
        write_scene_video(folder / f"{name}.mp4", 10)
    out = tmp_path / "out"

    calls_per_video = 2  # 10 frames, 8-frame windows, overlap 2
    original_forward = fake_model.forward

    def interrupted(frames, pad_mask=None):
        if fake_model.calls == calls_per_video + 1:  # inside the second video
            raise KeyboardInterrupt
        return original_forward(frames, pad_mask)

    fake_model.forward = interrupted
    result = runner.invoke(app, ["segment", str(folder), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["v1"]  # v2 left no partial folder
    finished = (out / "v1" / "results.json").stat().st_mtime_ns

    fake_model.forward = original_forward
    before = fake_model.calls
    result = runner.invoke(app, ["segment", str(folder), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 0, result.output
    assert fake_model.calls - before == 2 * calls_per_video  # only v2 and v3 ran
    assert (out / "v1" / "results.json").stat().st_mtime_ns == finished
    assert sorted(p.name for p in out.iterdir()) == ["v1", "v2", "v3"]
    assert "skipped" in result.output

    before, loads = fake_model.calls, len(fake_model.loads)
    result = runner.invoke(app, ["segment", str(folder), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 0 and fake_model.calls == before
    assert len(fake_model.loads) == loads  # nothing to do: the model is not even loaded
    result = runner.invoke(app, ["segment", str(folder / "v1.mp4"), "-o", str(out), "-c", "m.pth", "--force"])
    assert result.exit_code == 0 and fake_model.calls - before == calls_per_video
    assert (out / "v1" / "results.json").stat().st_mtime_ns != finished


def test_missing_checkpoint_and_bad_options(tmp_path, runner):
    video = write_scene_video(tmp_path / "v.mp4", 4)
    result = runner.invoke(app, ["segment", str(video), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no --checkpoint given")
    assert "vistr_r50.pth" in lines[0] and "vistr train" in lines[0]

    result = runner.invoke(
        app, ["segment", str(video), "-o", str(tmp_path / "out"), "-c", "m.pth", "--mask-thr", "1.5"]
    )
    assert result.exit_code == 2 and "--mask-thr must be in (0, 1)" in result.output  # a usage error
    result = runner.invoke(
        app, ["segment", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out"), "-c", "m.pth"]
    )
    assert result.exit_code == 1 and "nope.mp4" in result.output
    result = runner.invoke(
        app, ["segment", str(video), "-o", str(tmp_path / "out"), "-c", str(tmp_path / "m.pth")]
    )
    assert result.exit_code == 1 and "checkpoint" in result.output and "not found" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_tiny_checkpoint_end_to_end(tmp_path, runner):
    """A random-weight `tiny` model saved as a vistr checkpoint, through the real loader and CLI."""
    preset = get_preset("tiny")
    model = build_vistr(preset.model)
    ckpt = tmp_path / "tiny.pt"
    payload = model_checkpoint_payload(
        model, data_config=preset.data, categories=CategoryMap.generic(1), preset="tiny"
    )
    write_checkpoint(payload, ckpt)
    video = write_scene_video(tmp_path / "clip.mp4", 9, height=48, width=80)
    out = tmp_path / "out"
    args = ["segment", str(video), "-o", str(out), "-c", str(ckpt), "--device", "cpu", "--mask-thr", "0.3"]
    result = runner.invoke(app, [*args, "--png", "--mots", "--video-id", "3"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "clip" / "meta.json").read_text())
    assert meta["checkpoint"] == str(ckpt.resolve()) and meta["settings"]["model"]["num_frames"] == 4
    assert meta["settings"]["overlap"] == 1 and meta["categories"] == {"1": "class_1"}
    results = json.loads((out / "clip" / "results.json").read_text())
    assert {r["video_id"] for r in results} <= {3}
    assert all(len(r["segmentations"]) == 9 for r in results)
    for r in results:
        assert r["category_id"] == 1
        assert all(
            s is None or (s["size"] == [48, 80] and isinstance(s["counts"], str)) for s in r["segmentations"]
        )
    assert len(os.listdir(out / "clip" / "masks")) == 9


def test_torchrun_env_shards_videos_over_ranks(tmp_path, runner, fake_model, monkeypatch):
    folder = tmp_path / "videos"
    for name in ("v1", "v2", "v3", "v4", "v5"):
        write_scene_video(folder / f"{name}.mp4", 4)
    out = tmp_path / "out"
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        result = runner.invoke(app, ["segment", str(folder), "-o", str(out), "-c", "m.pth"])
        assert result.exit_code == 0, result.output
        seen.append(sorted(p.name for p in out.iterdir()))
    assert seen[0] == ["v1", "v3", "v5"]  # video i goes to rank i % world_size
    assert seen[1] == ["v1", "v2", "v3", "v4", "v5"]


def test_outputs_inside_the_input_folder_are_not_inputs(tmp_path, fake_model):
    folder = tmp_path / "videos"
    write_scene_video(folder / "clip.mp4", 4)
    out = folder / "out"
    args = {"checkpoint": Path("m.pth"), "outputs": segment_module.OutputOptions(png=True, render=True)}
    first = segment_module.segment_videos([folder], out, **args)
    assert [v.name for v in first.videos] == ["clip"]
    again = segment_module.segment_videos(
        [folder], out, **args
    )  # masks/ and overlay.mp4 now exist under out/
    assert [(v.name, v.status) for v in again.videos] == [("clip", "skipped")]


def test_output_names_are_distinct(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
    (a / "clip.mp4").touch()
    (b / "clip.mp4").touch()
    (a / "clip.avi").touch()
    (a / "other.mp4").touch()
    videos = [a / "clip.avi", a / "clip.mp4", a / "other.mp4", b / "clip.mp4", b]
    assert segment_module.output_names(videos) == ["a__clip", "a__clip-2", "other", "b__clip", "b"]
