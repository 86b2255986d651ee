"""What a newcomer's common mistakes print: one exact line, early, with the fix."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
from _segment_fakes import ColorSlotModel, fake_checkpoint_loading, scene_frame, write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.engine.checkpoint import read_checkpoint
from vistr_core.errors import CheckpointError


class WeakSlotModel(ColorSlotModel):
    """The three coloured squares, plus a faint fourth track (a corner blob at score 1/5)."""

    def __init__(self) -> None:
        super().__init__(8, permute=False)  # colours in slots 0-2, slot 3 free

    def forward(self, frames, pad_mask=None):
        out = super().forward(frames, pad_mask)
        out["pred_logits"][:, 3] = 0.0  # all 5 outcomes equally likely: score 0.2
        out["pred_masks"][:, 3, :, :3, :3] = 10.0
        return out


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def loads(monkeypatch) -> list:
    """Every checkpoint "loads" as a WeakSlotModel; the list records the loads."""
    return fake_checkpoint_loading(monkeypatch, WeakSlotModel)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_a_bad_frame_range_is_a_usage_error_before_any_video(tmp_path, runner, loads):
    video = write_scene_video(tmp_path / "v.mp4", 4)
    for args, message in (
        (["--stride", "0"], "error: --stride must be >= 1, got 0"),
        (["--start", "-1"], "error: --start must be >= 0, got -1"),
        (["--start", "5", "--end", "5"], "error: --end 5 must be greater than --start 5"),
    ):
        result = runner.invoke(
            app, ["segment", str(video), str(video), "-o", str(tmp_path / "out"), "-c", "m.pth", *args]
        )
        assert result.exit_code == 2
        assert [line for line in result.output.splitlines() if line.strip()] == [message]
    assert loads == [] and not (tmp_path / "out").exists()


def test_unquoted_frame_glob_is_one_video_or_refused(tmp_path, runner, loads):
    seq = tmp_path / "seq"
    seq.mkdir()
    for t in range(10):
        cv2.imwrite(str(seq / f"{t}.jpg"), cv2.cvtColor(scene_frame(t), cv2.COLOR_RGB2BGR))
    frames = [str(p) for p in sorted(seq.iterdir())]  # what an unquoted seq/*.jpg becomes
    result = runner.invoke(app, ["segment", *frames, "-o", str(tmp_path / "out"), "-c", "m.pth"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["seq"]
    assert json.loads((tmp_path / "out" / "seq" / "meta.json").read_text())["frame_count"] == 10
    result = runner.invoke(app, ["segment", *frames[:4], "-o", str(tmp_path / "out2"), "-c", "m.pth"])
    assert result.exit_code == 1
    assert error_lines(result.output) == [
        f"error: 4 of the 10 frames in {seq} were given as separate files (a glob the shell expanded?); "
        "a frame folder is one video: pass the folder (--start/--end/--stride choose frames), or quote the glob"
    ]


def test_low_score_tracks_are_counted_and_a_rerun_says_force_redoes(tmp_path, runner, loads):
    video = write_scene_video(tmp_path / "v.mp4", 12)
    out = tmp_path / "out"
    result = runner.invoke(app, ["segment", str(video), "-o", str(out), "-c", "m.pth"])
    assert result.exit_code == 0, result.output
    scores = sorted(r["score"] for r in json.loads((out / "v" / "results.json").read_text()))
    assert len(scores) == 4 and scores[0] == pytest.approx(0.2) and scores[1] > 0.99
    assert (
        "kept 1 low-score track(s) (mean score < 0.5) in results.json, as scoring needs; "
        "vistr render hides them, --score-thr 0.5 leaves them out"
    ) in result.output
    assert f"vistr segment → {out}" in result.output.splitlines()  # a whole line, however long
    row = next(line for line in result.output.splitlines() if line.strip(" │┃|").startswith("v "))
    assert [cell.strip() for cell in row.split("│")][3:5] == ["4", "1"]  # tracks, of which < 0.5
    rerun = runner.invoke(app, ["segment", str(video), "-o", str(out), "-c", "m.pth"])
    assert rerun.exit_code == 0 and "skipped 1 finished video(s); --force redoes them" in rerun.output
    strict = runner.invoke(
        app, ["segment", str(video), "-o", str(out), "-c", "m.pth", "--force", "--score-thr", "0.5"]
    )
    assert strict.exit_code == 0 and "low-score" not in strict.output
    assert len(json.loads((out / "v" / "results.json").read_text())) == 3


def test_a_file_that_is_no_checkpoint_says_so_without_internals(tmp_path):
    bogus = tmp_path / "last.pt"
    bogus.write_text("hello world, not a model\n")  # torch.load raises a bare KeyError(101) here
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(bogus)
    assert str(err.value) == (
        f"checkpoint {bogus} is not a PyTorch checkpoint; "
        "pass a file written by `vistr train`, vistr_r50.pth / vistr_r101.pth or a reference/DETR checkpoint"
    )
    torch.save({"model": {}}, bogus)
    bogus.write_bytes(bogus.read_bytes()[:-100])  # a truncated zip: said so, without torch's internals
    with pytest.raises(
        CheckpointError, match=r"is truncated or damaged \(\d+ bytes\); copy or download it again"
    ):
        read_checkpoint(bogus)


def test_train_on_an_empty_folder_suggests_what_train_accepts(tmp_path, runner):
    empty = tmp_path / "data"
    empty.mkdir()
    result = runner.invoke(
        app, ["train", "--data", str(empty), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    )
    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith(
        f"error: no annotation file for split 'train' in {empty}, an empty folder (looked for train/instances.json, train.json,"
    )
    assert lines[0].endswith(
        "; pass the folder holding your YouTube-VIS data, or its annotation JSON file, and a --split it has"
    )


def test_segment_passes_the_linking_options_and_refuses_bad_ones(tmp_path, runner, loads):
    video = write_scene_video(tmp_path / "v.mp4", 12)
    out = tmp_path / "out"
    options = ["--max-gap", "5", "--resume-iou", "0.3", "--coverage-power", "0", "--slot-bonus", "0"]
    options += ["--colour-weight", "0.7", "--merge-colour", "inf", "--relink-colour", "35"]
    result = runner.invoke(app, ["segment", str(video), "-o", str(out), "-c", "m.pth", *options])
    assert result.exit_code == 0, result.output
    infer = json.loads((out / "v" / "meta.json").read_text())["settings"]["infer"]
    assert (infer["max_gap"], infer["resume_iou"], infer["coverage_power"]) == (5, 0.3, 0.0)
    assert infer["slot_bonus"] == 0.0 and infer["colour_weight"] == 0.7
    assert infer["merge_colour"] == float("inf") and infer["relink_colour"] == 35.0
    off = runner.invoke(
        app, ["segment", str(video), "-o", str(tmp_path / "off"), "-c", "m.pth", "--relink-colour", "0"]
    )
    assert off.exit_code == 0, off.output
    assert (
        json.loads((tmp_path / "off" / "v" / "meta.json").read_text())["settings"]["infer"]["relink_colour"]
        is None
    )
    negative = runner.invoke(
        app, ["segment", str(video), "-o", str(tmp_path / "o3"), "-c", "m.pth", "--relink-colour", "-5"]
    )
    assert negative.exit_code != 0
    assert error_lines(negative.output) == ["error: --relink-colour must be >= 0 (0 = off), got -5.0"]
    assert not (tmp_path / "o3").exists()
    bad = runner.invoke(
        app, ["segment", str(video), "-o", str(tmp_path / "o2"), "-c", "m.pth", "--resume-iou", "1.5"]
    )
    assert bad.exit_code != 0
    assert error_lines(bad.output) == ["error: --resume-iou must be in [-1, 1], got 1.5"]
    assert not (tmp_path / "o2").exists()
