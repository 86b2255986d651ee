"""`vistr segment` against hostile outputs and reruns: one line up front, nothing left behind."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from _segment_fakes import ColorSlotModel, fake_checkpoint_loading, write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.model import build_vistr
from vistr_core.presets import get_preset


@pytest.fixture
def fake_model(monkeypatch):
    """Every checkpoint "loads" as one shared ColorSlotModel; counts loads and forward calls."""
    model = ColorSlotModel(8)
    model.loads = fake_checkpoint_loading(monkeypatch, lambda: model)
    return model


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    for name in ("v1", "v2"):
        write_scene_video(folder / f"{name}.mp4", 10)
    return folder


def lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [ln for ln in result.output.splitlines() if ln.strip()]


def test_output_that_is_a_file_is_one_line_up_front(tmp_path, videos, fake_model):
    out = tmp_path / "out.txt"
    out.write_text("mine")
    result = CliRunner().invoke(app, ["segment", str(videos), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 1
    assert lines(result) == [f"error: output {out} is a file; pass a folder to --out (-o)"]
    assert out.read_text() == "mine" and fake_model.loads == []  # refused before loading anything


def test_output_that_cannot_be_created_is_one_line_up_front(tmp_path, videos, fake_model):
    (tmp_path / "file").write_text("mine")
    out = tmp_path / "file" / "out"
    result = CliRunner().invoke(app, ["segment", str(videos), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 1
    assert lines(result) == [
        f"error: cannot write to output folder {out} (Not a directory); pass a folder you can write to --out (-o)"
    ]
    assert fake_model.loads == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_without_write_permission_is_one_line_up_front(tmp_path, videos, fake_model):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = CliRunner().invoke(app, ["segment", str(videos), "-o", str(locked / "out"), "-c", "m.pth"])
    finally:
        locked.chmod(stat.S_IRWXU)
    assert result.exit_code == 1
    assert lines(result)[0].startswith(
        f"error: cannot write to output folder {locked / 'out'} (Permission denied)"
    )


def test_a_batch_that_fails_entirely_leaves_no_output_folder(tmp_path, fake_model):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["segment", str(tmp_path / "bad.mp4"), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 1
    assert not out.exists()


def test_stale_partial_folders_of_the_batch_are_removed(tmp_path, videos, fake_model):
    out = tmp_path / "out"
    stale = [out / ".v1.k2j3h4.partial", out / ".v2.a1b2c3.partial"]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / ".frames.spool.jsonl").write_bytes(b"x" * 1000)
    theirs = [out / ".other.x1y2z3.partial", out / ".v1.notes"]
    theirs[0].mkdir()
    theirs[1].write_text("mine")
    result = CliRunner().invoke(app, ["segment", str(videos), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in theirs)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["v1", "v2"]


def test_outputs_follow_the_umask(tmp_path, videos, fake_model):
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            app, ["segment", str(videos / "v1.mp4"), "-o", str(tmp_path / "out"), "-c", "m.pth"]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "v1"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}


def test_a_rerun_with_other_settings_or_checkpoint_says_so(tmp_path, videos, fake_model):
    out = tmp_path / "out"
    base = ["segment", str(videos), "-o", str(out)]
    assert CliRunner().invoke(app, [*base, "-c", "m.pth"]).exit_code == 0
    plain = CliRunner().invoke(app, [*base, "-c", "m.pth"])
    assert not any(ln.startswith("skipped:") for ln in lines(plain))
    other = CliRunner().invoke(app, [*base, "-c", "m.pth", "--score-thr", "0.3", "--png"])
    skipped = [ln for ln in lines(other) if ln.startswith("skipped:")]
    assert len(skipped) == 2
    assert skipped[0] == (
        f"skipped: {out / 'v1'} was made with other settings (infer.score_thr, outputs.png); "
        "kept as it is, pass --force to redo it with these"
    )
    cvat = CliRunner().invoke(app, [*base, "-c", "m.pth", "--cvat"])
    assert [ln for ln in lines(cvat) if ln.startswith("skipped:")][0] == (
        f"skipped: {out / 'v1'} was made with other settings (outputs.cvat); "
        "kept as it is, pass --force to redo it with these"
    )
    # meta.json of an older vistr has no "cvat" output: it was not written, nothing changed
    meta_path = out / "v1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["settings"]["outputs"]["cvat"]
    meta_path.write_text(json.dumps(meta))
    again = CliRunner().invoke(app, [*base, "-c", "m.pth"])
    assert not any(ln.startswith(f"skipped: {out / 'v1'}") for ln in lines(again))
    moved = CliRunner().invoke(app, [*base, "-c", "other.pth"])
    skipped = [ln for ln in lines(moved) if ln.startswith("skipped:")]
    assert skipped[0] == (
        f"skipped: {out / 'v1'} was made with checkpoint {Path('m.pth').resolve()}; "
        "kept as it is, pass --force to redo it with these"
    )


def test_segment_loads_a_reference_format_checkpoint(tmp_path):
    cfg = dataclasses.replace(get_preset("tiny").model, num_frames=2, num_instances=2)
    model = build_vistr(cfg)
    args = argparse.Namespace(backbone=cfg.backbone, num_frames=2, hidden_dim=cfg.hidden_dim, lr=1e-4)
    torch.save(
        {"model": model.state_dict(), "optimizer": {}, "lr_scheduler": {}, "epoch": 1, "args": args},
        tmp_path / "checkpoint.pth",
        _use_new_zipfile_serialization=False,
    )
    video = write_scene_video(tmp_path / "clip.mp4", 3, height=32, width=48)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["segment", str(video), "-o", str(out), "-c", str(tmp_path / "checkpoint.pth"), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "clip" / "meta.json").read_text())
    assert meta["settings"]["window"] == 2 and meta["settings"]["model"]["num_instances"] == 2
