"""Datasets that would trip training or conversion: each is one clear line, and nothing invalid
is ever written."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.data.check import check_dataset
from vistr_core.data.convert import convert_dataset
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.errors import DatasetError, VistrWarning
from vistr_core.ops.masks import compressed_rle_counts, encode_mask


def _runs(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with background, as COCO counts them."""
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def test_compressed_rle_counts_match_the_masks():
    rng = np.random.default_rng(0)
    for k in range(200):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.random()
        if k % 4 == 0:  # long runs: multi-character and negative deltas
            mask = np.zeros((h, w), bool)
            mask[rng.integers(0, h) :, rng.integers(0, w) :] = True
        runs = compressed_rle_counts(encode_mask(mask)["counts"])
        assert runs.tolist() == _runs(mask)
        assert runs.sum() == h * w


@pytest.mark.parametrize("counts", ["%%%%garbage", "abcé", "0f", "0p"])
def test_compressed_rle_counts_refuse_garbage(counts):
    with pytest.raises(ValueError):
        compressed_rle_counts(counts)


def _mots(tmp_path, lines: list[str], labels: str | None = "background\ncar\n"):
    root = tmp_path / "mots"
    (root / "instances_txt").mkdir(parents=True)
    (root / "instances_txt" / "seq.txt").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    if labels is not None:
        (root / "labels.txt").write_text(labels)
    return root


def _rle(mask: np.ndarray) -> str:
    return encode_mask(mask)["counts"]


def _square(h=6, w=8) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[1:4, 2:5] = True
    return mask


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("%%%%garbage", "'%%%%garbage' is not a COCO compressed RLE"),
        ("abcé", "'abcé' is not a COCO compressed RLE"),
        ("0<", "the RLE covers 12 pixels, not 6x8 = 48"),
        (None, "the RLE covers 49 pixels, not 6x8 = 48"),
    ],
)
def test_corrupt_mots_rle_names_file_and_line(tmp_path, bad, needle):
    if bad is None:  # one pixel too many: pycocotools itself would also refuse it, without a line
        bad = mask_utils.encode(np.asfortranarray(np.ones((7, 7, 1), np.uint8)))[0]["counts"].decode()
    root = _mots(tmp_path, [f"0 1001 1 6 8 {_rle(_square())}", f"1 1001 1 6 8 {bad}"])
    with pytest.raises(DatasetError) as info:
        convert_dataset(root, tmp_path / "out", to="ytvis")
    assert str(info.value).startswith(f"{root / 'instances_txt' / 'seq.txt'} line 2: ")
    assert needle in str(info.value)
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["data", "convert", str(root), str(tmp_path / "out"), "--to", "ytvis"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [ln for ln in result.output.splitlines() if ln.strip()] == [f"error: {info.value}"]
    assert not (tmp_path / "out").exists()


def test_mots_class_missing_from_labels_is_added_with_a_warning(tmp_path):
    root = _mots(tmp_path, [f"0 1001 1 6 8 {_rle(_square())}", f"0 7001 7 6 8 {_rle(~_square())}"])
    with pytest.warns(VistrWarning, match=r"class id\(s\) 7 are not in .*labels.txt.*added as class_7"):
        convert_dataset(root, tmp_path / "out", to="ytvis")
    data = json.loads((tmp_path / "out" / "train" / "instances.json").read_text())
    assert data["categories"] == [
        {"id": 1, "name": "car", "supercategory": "object"},
        {"id": 7, "name": "class_7", "supercategory": "object"},
    ]
    report = check_dataset(tmp_path / "out", "train", check_files=False)
    assert report.ok, [p.message for p in report.problems]
    result = CliRunner().invoke(app, ["data", "convert", str(root), str(tmp_path / "cli"), "--to", "ytvis"])
    assert result.exit_code == 0
    assert "warning: class id(s) 7 are not in" in result.output.replace("\n", "")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=2, valid_videos=0, frames=4, size=(48, 64), seed=1)
    return root


def test_data_check_decodes_frames(shapes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes, root)
    frames = sorted((root / "train" / "JPEGImages").rglob("*.jpg"))
    truncated, garbage, resized = frames[0], frames[1], frames[5]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.8)])
    assert cv2.imread(str(truncated)) is not None  # OpenCV decodes it (grey tail): training would not notice
    garbage.write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(resized), np.zeros((24, 32, 3), np.uint8))
    report = check_dataset(root, "train")
    messages = [p.message for p in report.problems]
    assert len(messages) == 3, messages
    assert f"frame {truncated} cannot be decoded" in messages[0]
    assert f"frame {garbage} cannot be decoded" in messages[1]
    assert messages[2].endswith(
        f"frame {resized} is 32x24 but the video is 64x48; fix the frame or the video's size"
    )
    assert check_dataset(root, "train", decode=False).ok
    result = CliRunner().invoke(app, ["data", "check", str(root)])
    assert result.exit_code == 1 and "3 problem(s)" in result.output
    assert CliRunner().invoke(app, ["data", "check", str(root), "--no-decode"]).exit_code == 0
