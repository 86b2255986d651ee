"""Instance copy-paste: what is pasted, what the clip keeps, and how the dataset uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vistr_core.config import DataConfig
from vistr_core.data.copy_paste import ClipObjects, choose_donor_object, paste_object
from vistr_core.data.dataset import YTVISClipDataset
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.data.ytvis import load_ytvis
from vistr_core.errors import ConfigError
from vistr_core.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _objects(t: int, h: int, w: int, boxes: list[tuple[int, int, int, int]], labels: list[int], seed: int):
    """A clip of random frames [t, 3, h, w] with one rectangle mask per box (y0, x0, y1, x1)."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(boxes), t, h, w, dtype=torch.bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        masks[i, :, y0:y1, x0:x1] = True
    return ClipObjects(
        frames=torch.randn(t, 3, h, w, generator=gen),
        masks=masks,
        labels=torch.tensor(labels),
        instance_ids=torch.arange(len(boxes)) + 10,
    )


def test_pasted_object_lies_on_top_and_the_rest_is_untouched():
    clip = _objects(3, 20, 30, [(2, 2, 12, 12), (14, 20, 19, 29)], [0, 1], seed=0)
    donor = _objects(3, 20, 30, [(0, 0, 4, 4), (6, 6, 16, 16)], [2, 0], seed=1)
    out = paste_object(clip, donor, 1, pasted_id=-7)
    pasted = donor.masks[1]  # [T, h, w]
    assert torch.equal(out.masks[-1], pasted)
    assert torch.equal(out.labels, torch.tensor([0, 1, 0]))
    assert torch.equal(out.instance_ids, torch.tensor([10, 11, -7]))
    assert torch.equal(out.frames.permute(1, 0, 2, 3)[:, pasted], donor.frames.permute(1, 0, 2, 3)[:, pasted])
    assert torch.equal(
        out.frames.permute(1, 0, 2, 3)[:, ~pasted], clip.frames.permute(1, 0, 2, 3)[:, ~pasted]
    )
    # The covered part of object 0 is gone from its mask; object 1 (not covered) is unchanged.
    assert torch.equal(out.masks[0], clip.masks[0] & ~pasted)
    assert out.masks[0].sum() < clip.masks[0].sum()
    assert torch.equal(out.masks[1], clip.masks[1])


def test_a_donor_of_another_size_is_resized_to_the_clip():
    clip = _objects(2, 20, 30, [(2, 2, 12, 12)], [0], seed=0)
    donor = _objects(2, 40, 60, [(10, 20, 30, 40)], [1], seed=1)  # twice the size
    out = paste_object(clip, donor, 0, pasted_id=-1)
    assert out.frames.shape == clip.frames.shape and out.masks.shape == (2, 2, 20, 30)
    expected = torch.zeros(2, 20, 30, dtype=torch.bool)
    expected[:, 5:15, 10:20] = True
    assert torch.equal(out.masks[-1], expected)
    with pytest.raises(ValueError, match="same T"):
        paste_object(clip, _objects(3, 20, 30, [(0, 0, 2, 2)], [0], seed=2), 0, pasted_id=-1)


def test_donor_choice_prefers_the_wanted_classes_and_skips_invisible_objects():
    donor = _objects(2, 10, 10, [(0, 0, 3, 3), (4, 4, 8, 8), (0, 0, 0, 0)], [0, 1, 2], seed=0)
    rng = np.random.default_rng(0)
    assert {choose_donor_object(donor, torch.tensor([1]), rng) for _ in range(20)} == {1}
    # Wanted class 2 is only on an empty mask: fall back to any visible object.
    assert {choose_donor_object(donor, torch.tensor([2]), rng) for _ in range(40)} == {0, 1}
    assert {choose_donor_object(donor, torch.tensor([], dtype=torch.int64), rng) for _ in range(40)} == {0, 1}
    empty = _objects(2, 10, 10, [(0, 0, 0, 0)], [0], seed=0)
    assert choose_donor_object(empty, torch.tensor([0]), rng) is None


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cp") / "ds"
    generate_synthetic(root, videos=8, valid_videos=1, frames=8, size=(48, 64), seed=3, difficulty="multi")
    return root


def test_dataset_pastes_one_object_and_changes_nothing_else(shapes):
    base = dataclasses.replace(get_preset("tiny").data, copy_paste=0.0)
    index = load_ytvis(shapes, "train")
    plain = YTVISClipDataset(index, num_frames=4, data_config=base)
    pasting = YTVISClipDataset(index, num_frames=4, data_config=dataclasses.replace(base, copy_paste=1.0))
    same_class = 0
    for item in range(len(plain)):
        key = (item, 2, 1)
        frames0, t0 = plain[key]
        frames1, t1 = pasting[key]
        frames1b, t1b = pasting[key]
        assert torch.equal(frames1, frames1b) and torch.equal(t1.masks, t1b.masks)  # deterministic per key
        assert frames1.shape == frames0.shape
        pasted = t1.masks[-1]
        assert int(t1.instance_ids[-1]) < 0 and pasted.any()
        outside = ~pasted[:, None].expand_as(frames0)
        assert torch.equal(frames1[outside], frames0[outside])
        # Every original object keeps exactly its unpasted-over pixels (or is dropped if fully hidden).
        kept = {int(i): m for i, m in zip(t1.instance_ids[:-1], t1.masks[:-1], strict=True)}
        for i, m in zip(t0.instance_ids, t0.masks, strict=True):
            expected = m & ~pasted
            assert torch.equal(kept[int(i)], expected) if expected.any() else int(i) not in kept
        same_class += int(t1.labels[-1]) in t0.labels.tolist()
        assert torch.equal(t1.valid, t1.masks.flatten(2).any(-1))
    assert same_class >= len(plain) // 2  # the donor's class is one the clip has, whenever a donor has it


def test_copy_paste_is_training_only_and_validated(shapes):
    index = load_ytvis(shapes, "train")
    cfg = dataclasses.replace(get_preset("tiny").data, copy_paste=1.0)
    evaluated = YTVISClipDataset(index, num_frames=4, data_config=cfg, train=False)[0]
    reference = YTVISClipDataset(index, num_frames=4, data_config=get_preset("tiny").data, train=False)[0]
    assert torch.equal(evaluated[0], reference[0]) and torch.equal(evaluated[1].masks, reference[1].masks)
    with pytest.raises(ConfigError, match="copy_paste"):
        DataConfig(copy_paste=1.5)
