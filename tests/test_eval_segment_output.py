"""`vistr eval` on `vistr segment` outputs: results scored against the video their frames are."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _segment_fakes import ColorSlotModel, object_masks, scene_frame
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.data.dataset_video import DatasetVideoFinder
from vistr_core.data.ytvis import track_json
from vistr_core.errors import DatasetError, ResultsError
from vistr_core.eval import evaluate_ytvis
from vistr_core.inference import segment_videos

FRAMES = 10
SHIFT = 30  # video k shows the scene from frame 30·k on: its objects are elsewhere than video 0's


def make_dataset(root: Path) -> Path:
    """A YouTube-VIS 2021-layout valid split of 2 videos (ids 1, 2) of the fake scene; its GT path."""
    videos, annotations = [], []
    for k in range(2):
        name = f"valid_{k:05d}"
        folder = root / "valid" / "JPEGImages" / name
        folder.mkdir(parents=True)
        for t in range(FRAMES):
            image = cv2.cvtColor(scene_frame(t + SHIFT * k), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(folder / f"{t:05d}.png"), image)
        videos.append(
            {"id": k + 1, "height": 64, "width": 96, "length": FRAMES,
             "file_names": [f"{name}/{t:05d}.png" for t in range(FRAMES)]}
        )  # fmt: skip
        masks = np.stack([object_masks(t + SHIFT * k) for t in range(FRAMES)], axis=1)  # [3, T, H, W]
        for c in range(3):
            annotations.append(track_json(len(annotations) + 1, k + 1, c + 1, masks[c]))
    categories = [{"id": c + 1, "name": n} for c, n in enumerate(("red", "green", "blue"))]
    gt = root / "valid" / "instances.json"
    gt.write_text(json.dumps({"videos": videos, "categories": categories, "annotations": annotations}))
    return gt


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "ytvis")


def segment(folder: Path, out: Path, **kwargs) -> Path:
    summary = segment_videos([folder], out, model=ColorSlotModel(8), device="cpu", **kwargs)
    assert summary.ok, summary.videos
    return out / folder.name


def found_all(result, video_id: int) -> bool:
    """Every object of ``video_id`` found at IoU 0.5 with no false positive, and well outlined."""
    units = [u for u in result.units if u.video_id == video_id]
    return len(units) == 3 and all(
        u.tp50 == 1 and u.fp50 == 0 and min(u.best_iou.values()) > 0.7 for u in units
    )


def test_segment_output_of_the_second_video_is_scored_against_it(tmp_path, dataset):
    output = segment(dataset.parent / "JPEGImages" / "valid_00001", tmp_path / "seg")
    results = json.loads((output / "results.json").read_text())
    meta = json.loads((output / "meta.json").read_text())
    assert {r["video_id"] for r in results} == {2}  # the dataset's id, not the default 1
    assert (meta["video_id"], meta["video_id_from"]) == (2, "dataset")
    for given in (output, output / "results.json"):
        result = evaluate_ytvis(dataset, given, per_video=True)
        assert found_all(result, 2) and result.warnings == []
        assert all(u.tp50 == 0 for u in result.units if u.video_id == 1)  # nothing claimed for video 1


def test_an_output_with_the_default_id_is_matched_by_its_frames(tmp_path, dataset):
    output = segment(dataset.parent / "JPEGImages" / "valid_00001", tmp_path / "seg")
    right = evaluate_ytvis(dataset, output, per_video=True)
    # As written before ids were looked up: video_id 1 and no record of where it came from.
    results = json.loads((output / "results.json").read_text())
    (output / "results.json").write_text(json.dumps([{**r, "video_id": 1} for r in results]))
    meta = json.loads((output / "meta.json").read_text())
    del meta["video_id"], meta["video_id_from"]
    (output / "meta.json").write_text(json.dumps(meta))
    result = evaluate_ytvis(dataset, output, per_video=True)
    assert result.stats == right.stats and found_all(result, 2)
    assert result.warnings == [
        f"{output / 'results.json'}: scored as video 2 (valid_00001), whose frames it holds "
        "(its video_id 1 is vistr segment's default)"
    ]
    # The plain file alone (no meta.json beside it) is scored as it says: against video 1.
    plain = tmp_path / "plain.json"
    plain.write_text((output / "results.json").read_text())
    assert evaluate_ytvis(dataset, plain).stats["AP50"] < right.stats["AP50"]


def test_a_chosen_id_that_contradicts_the_frames_is_refused(tmp_path, dataset):
    output = segment(dataset.parent / "JPEGImages" / "valid_00001", tmp_path / "seg", video_id=1)
    assert json.loads((output / "meta.json").read_text())["video_id_from"] == "option"
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(dataset, output)
    assert str(err.value) == (
        f"{output / 'results.json'} says video_id 1 but its frames ({output.parent.parent / 'ytvis/valid/JPEGImages/valid_00001'}) "
        f"are video 2 (valid_00001) of {dataset}; re-run vistr segment with --video-id 2, "
        "or score against the annotation file it was made from"
    )


def test_a_batch_output_folder_scores_every_video(tmp_path, dataset):
    out = tmp_path / "seg"
    segment_videos([dataset.parent / "JPEGImages"], out, model=ColorSlotModel(8), device="cpu")
    result = evaluate_ytvis(dataset, out, per_video=True)
    assert found_all(result, 1) and found_all(result, 2)
    runner = CliRunner()
    cli = runner.invoke(
        app, ["eval", "--gt", str(dataset), "--results", str(out), "--json", str(tmp_path / "m.json")]
    )
    assert cli.exit_code == 0, cli.output
    # outside a terminal the title is one whole line, not wrapped to the table's width
    assert "YouTube-VIS metric: 6 predictions, 2 videos, 6 ground-truth tracks" in cli.output.splitlines()
    assert json.loads((tmp_path / "m.json").read_text())["AP50"] == result.stats["AP50"] == 1.0


def test_swapped_gt_and_results_are_named(tmp_path, dataset):
    output = segment(dataset.parent / "JPEGImages" / "valid_00001", tmp_path / "seg")
    with pytest.raises(DatasetError) as err:
        evaluate_ytvis(output / "results.json", dataset)
    assert str(err.value) == (
        f"{output / 'results.json'} is a results list, not a ground truth; were --gt and --results swapped? "
        "pass the annotation file (videos, categories, annotations) as --gt"
    )
    with pytest.raises(ResultsError) as err:
        evaluate_ytvis(dataset, dataset)
    assert str(err.value) == (
        f"{dataset} is a ground truth, not a results list; were --gt and --results swapped? "
        "pass the predictions (a JSON list from vistr segment or eval) as --results"
    )


def test_dataset_videos_are_found_in_each_layout(tmp_path, dataset):
    finder = DatasetVideoFinder()
    found = finder.find(dataset.parent / "JPEGImages" / "valid_00000")
    assert found is not None and (found.video_id, found.annotation_file) == (1, dataset)
    # 2019 layout: DIR/valid.json beside DIR/valid/JPEGImages/
    old = tmp_path / "ytvis2019"
    (old / "valid" / "JPEGImages").mkdir(parents=True)
    (dataset.parent / "JPEGImages" / "valid_00001").rename(old / "valid" / "JPEGImages" / "valid_00001")
    (old / "valid.json").write_text(dataset.read_text())
    assert finder.find(old / "valid" / "JPEGImages" / "valid_00001").video_id == 2
    loose = tmp_path / "frames" / "valid_00000"
    loose.mkdir(parents=True)
    assert finder.find(loose) is None  # not inside a dataset
    assert finder.find(dataset.parent / "JPEGImages" / "unlisted") is None
