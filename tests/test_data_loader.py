"""Clip sampling, the clip dataset and the seeded, resumable, shardable loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistr_core.config import DataConfig
from vistr_core.data.dataset import YTVISClipDataset
from vistr_core.data.loader import ClipSampler, build_train_loader
from vistr_core.data.sampling import max_fitting_stride, pad_indices, sample_clip_indices
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.data.ytvis import load_ytvis
from vistr_core.errors import ConfigError, DatasetError
from vistr_core.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes") / "ds"
    generate_synthetic(root, videos=6, valid_videos=1, frames=9, size=(48, 64), seed=5, difficulty="medium")
    return root


# ---------------------------------------------------------------- sampling


def test_windows_are_contiguous_in_range_and_never_wrap():
    rng = np.random.default_rng(0)
    starts, strides = set(), set()
    for _ in range(500):
        idx = sample_clip_indices(20, 6, rng, max_stride=3)
        steps = np.diff(idx)
        assert len(idx) == 6 and idx.min() >= 0 and idx.max() < 20
        assert (steps == steps[0]).all() and 1 <= steps[0] <= 3  # one stride, increasing: no wrap
        starts.add(int(idx[0]))
        strides.add(int(steps[0]))
    assert strides == {1, 2, 3} and starts == set(range(15))  # stride 1 can start anywhere in 0..14


def test_stride_is_capped_so_the_window_fits():
    assert max_fitting_stride(11, 6, 4) == 2 and max_fitting_stride(5, 6, 4) == 1
    rng = np.random.default_rng(1)
    assert all(np.diff(sample_clip_indices(11, 6, rng, max_stride=4)).max() <= 2 for _ in range(50))


def test_short_videos_hold_the_last_frame():
    assert pad_indices(3, 6).tolist() == [0, 1, 2, 2, 2, 2]
    assert sample_clip_indices(3, 6, np.random.default_rng(0), max_stride=3).tolist() == [0, 1, 2, 2, 2, 2]
    assert sample_clip_indices(10, 4).tolist() == [0, 1, 2, 3]  # evaluation: the first window


# ---------------------------------------------------------------- dataset


def test_dataset_item_matches_the_annotations(shapes):
    index = load_ytvis(shapes, "train")
    cfg = DataConfig(short_side=48, max_size=64, flip_prob=0.0, photometric=False)
    ds = YTVISClipDataset(index, num_frames=4, data_config=cfg, train=False)
    for item in range(len(ds)):
        frames, tgt = ds[item]
        video = index.videos[item]
        assert frames.shape == (4, 3, 48, 64) and tgt.frame_indices.tolist() == [0, 1, 2, 3]
        masks, tracks = index.decode_masks(video, [0, 1, 2, 3])
        present = masks.any(axis=(1, 2, 3))
        assert tgt.instance_ids.tolist() == [t.id for t, p in zip(tracks, present, strict=True) if p]
        assert np.array_equal(tgt.masks.numpy(), masks[present])  # same size: masks untouched
        assert tgt.labels.tolist() == [
            index.category_map.index_of(t.category_id) for t, p in zip(tracks, present, strict=True) if p
        ]
        assert tgt.video_id == video.id and tgt.orig_size == (48, 64) and tgt.size == (48, 64)


def test_dataset_is_deterministic_per_key_and_varies_with_epoch(shapes):
    ds = YTVISClipDataset(load_ytvis(shapes, "train"), num_frames=4, data_config=get_preset("tiny").data)
    a, b, c = ds[(3, 7, 0)], ds[(3, 7, 0)], ds[(3, 7, 1)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].masks, b[1].masks)
    assert (
        a[0].shape != c[0].shape
        or not torch.equal(a[0], c[0])
        or not torch.equal(a[1].frame_indices, c[1].frame_indices)
    )


def test_dataset_refuses_files_without_ground_truth_and_foreign_categories(shapes, tmp_path):
    import json

    data = json.loads((shapes / "valid" / "instances.json").read_text())
    data["annotations"] = None
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid" / "instances.json").write_text(json.dumps(data))
    index = load_ytvis(
        annotation_file=tmp_path / "valid" / "instances.json", image_root=shapes / "valid" / "JPEGImages"
    )
    with pytest.raises(DatasetError, match="no annotations"):
        YTVISClipDataset(index, num_frames=4, data_config=DataConfig())
    from vistr_core.categories import CategoryMap

    with pytest.raises(DatasetError, match="is not one of the model's categories"):
        YTVISClipDataset(
            load_ytvis(shapes, "train"),
            num_frames=4,
            data_config=DataConfig(),
            category_map=CategoryMap.generic(2),
        )


# ---------------------------------------------------------------- loader


def _signature(batches) -> list[tuple]:
    return [
        (
            tuple(b.frames.shape),
            float(b.frames.sum()),
            tuple(t.video_id for t in b.targets),
            tuple(int(t.masks.sum()) for t in b.targets),
        )
        for b in batches
    ]


def test_loader_is_deterministic_whatever_the_worker_count(shapes):
    sigs = []
    for workers in (0, 2):
        loader = build_train_loader(shapes, preset="tiny", batch_size=2, workers=workers, seed=11, epoch=3)
        assert len(loader) == 3
        sigs.append(_signature(loader))
    assert sigs[0] == sigs[1]
    other = build_train_loader(shapes, preset="tiny", batch_size=2, workers=0, seed=11, epoch=4)
    assert _signature(other) != sigs[0]


def test_set_epoch_and_skip_batches_resume_exactly(shapes):
    loader = build_train_loader(shapes, preset="tiny", batch_size=2, workers=0, seed=1)
    loader.set_epoch(2)
    full = _signature(loader)
    loader.set_epoch(2, skip_batches=1)
    assert _signature(loader) == full[1:]
    loader.set_epoch(2)
    assert _signature(loader) == full


def test_batches_are_padded_consistently(shapes):
    loader = build_train_loader(shapes, preset="tiny", batch_size=3, workers=0, seed=0)
    t = get_preset("tiny").model.num_frames
    for batch in loader:
        assert batch.frames.shape[:2] == (3, t) and batch.pad_mask.shape == (3, t, *batch.frames.shape[-2:])
        for b, tgt in enumerate(batch.targets):
            h, w = tgt.size
            assert not batch.pad_mask[b, :, :h, :w].any() and batch.pad_mask[b].sum() == t * (
                batch.frames.shape[-2] * batch.frames.shape[-1] - h * w
            )
            assert tgt.masks.shape[-2:] == (h, w) and tgt.boxes.shape == (tgt.num_instances, t, 4)


def test_sampler_shards_ranks_disjointly_and_completely():
    ranks = [ClipSampler(10, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(5)
    keys = [list(s) for s in ranks]
    indices = [k[0] for shard in keys for k in shard]
    assert sorted(indices) == list(range(10)) and all(k[1:] == (3, 5) for shard in keys for k in shard)
    again = ClipSampler(10, seed=3, rank=0, world_size=2)
    again.set_epoch(6)
    assert [k[0] for k in again] != [k[0] for k in keys[0]]


def test_loader_argument_errors(shapes):
    with pytest.raises(ConfigError, match="fewer than batch size"):
        build_train_loader(shapes, preset="tiny", batch_size=50, workers=0)
    with pytest.raises(ConfigError, match="torch.distributed"):
        build_train_loader(shapes, preset="tiny", distributed=True, workers=0)


# ---------------------------------------------------------------- reduced JPEG decoding


def test_decode_reduction_and_snapping():
    from vistr_core.data.transforms import GeometryDraw, decode_reduction, snap_crop

    assert decode_reduction(GeometryDraw((0, 0, 720, 1280), (300, 533))) == 2
    assert decode_reduction(GeometryDraw((0, 0, 720, 1280), (300, 533)), enabled=False) == 1
    assert decode_reduction(GeometryDraw((0, 0, 720, 1280), (90, 160))) == 8
    assert decode_reduction(GeometryDraw((10, 10, 400, 300), (300, 230))) == 1
    draw = snap_crop(GeometryDraw((13, 7, 401, 299), (100, 80), True), 4, 402, 300)
    assert draw.crop == (12, 4, 402, 300) and draw.flip and draw.out_size == (100, 80)


def test_reduced_decoding_matches_full_decoding(tmp_path):
    root = tmp_path / "big"
    generate_synthetic(root, videos=2, valid_videos=0, frames=4, size=(96, 128), seed=1, difficulty="medium")
    index = load_ytvis(root, "train")
    outputs = {}
    for reduced in (True, False):
        cfg = DataConfig(short_side=40, max_size=64, reduced_decode=reduced, photometric=False)
        ds = YTVISClipDataset(index, num_frames=4, data_config=cfg, train=False)
        outputs[reduced] = [ds[i] for i in range(len(ds))]
    std = torch.tensor(DataConfig().std).view(3, 1, 1) * 255
    for (fast, tf), (slow, ts) in zip(outputs[True], outputs[False], strict=True):
        assert fast.shape == slow.shape == (4, 3, 40, 53)
        assert torch.equal(tf.masks, ts.masks) and torch.equal(tf.boxes, ts.boxes)
        levels = ((fast - slow) * std).abs()
        assert levels.mean() < 2.0  # DCT-domain downscaling vs. full decode + antialiased resize


def test_reduced_decoding_keeps_frames_and_masks_aligned(tmp_path):
    """Training draws at a 4x downscale: object pixels (saturated colors) stay inside their masks."""
    root = tmp_path / "big"
    generate_synthetic(root, videos=2, valid_videos=0, frames=3, size=(160, 240), seed=2)
    index = load_ytvis(root, "train")
    cfg = DataConfig(
        short_side=40,
        max_size=60,
        train_scales=(160,),
        train_max_size=240,
        crop_range=(100, 160),
        photometric=False,
    )
    ds = YTVISClipDataset(index, num_frames=3, data_config=cfg)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    for seed in range(10):
        frames, tgt = ds[(seed % 2, seed, 0)]
        rgb = frames * std + mean
        saturation = rgb.amax(1) - rgb.amin(1)  # [T, h, w]; the background is nearly gray
        objects = tgt.masks.any(0)
        if objects.sum() < 30:
            continue
        colorful = saturation > 0.35
        agree = (colorful & objects).sum() / (colorful | objects).sum()
        assert agree > 0.75, (seed, float(agree))


FORK_AFTER_OPENCV = """
import sys, numpy as np, cv2
from vistr_core.data.loader import build_train_loader
img = np.random.randint(0, 255, (720, 1280, 3), np.uint8)
for _ in range(20):  # keep OpenCV's thread pool busy in the parent before the workers fork
    cv2.resize(img, (640, 360)); cv2.GaussianBlur(img, (9, 9), 0)
loader = build_train_loader(sys.argv[1], preset="tiny", batch_size=2, workers=2, seed=0)
for epoch in range(2):
    loader.set_epoch(epoch)
    assert sum(1 for _ in loader) == len(loader)
print("ok")
"""


def test_workers_fork_safely_after_opencv_ran_in_the_parent(shapes):
    """Regression: a worker forked from a parent whose OpenCV pool had waiting threads hung forever."""
    import subprocess
    import sys

    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", FORK_AFTER_OPENCV, str(shapes)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
