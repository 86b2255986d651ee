"""Track appearance: mask colours, the colour penalty and a track's colour memory."""

import math

import numpy as np
import pytest
import torch

from vistr_core.config import DataConfig
from vistr_core.data.transforms import normalize
from vistr_core.inference.appearance import TrackColours, colour_agreement, mask_colours

CONFIG = DataConfig()


def _frames(image: np.ndarray, count: int = 2) -> torch.Tensor:
    """[count, 3, H, W] model-input frames of one uint8 [H, W, 3] image."""
    return normalize(np.repeat(image[None], count, axis=0), CONFIG)


def test_mask_colours_is_the_median_rgb_under_each_mask_at_mask_resolution():
    image = np.full((32, 32, 3), 50, np.uint8)
    image[:, :16] = (200, 40, 10)  # left half: the object
    frames = _frames(image)
    masks = torch.zeros(2, 2, 8, 8, dtype=torch.bool)  # 1/4 resolution
    masks[0, :, :, :5] = True  # the object's 4 columns and one column of background
    masks[1, :, :, 6:] = True  # background only
    colours = mask_colours(frames, masks, CONFIG.mean, CONFIG.std)
    assert colours.shape == (2, 3)
    torch.testing.assert_close(colours[0], torch.tensor([200.0, 40.0, 10.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(colours[1], torch.tensor([50.0, 50.0, 50.0]), atol=0.01, rtol=0)


def test_mask_colours_of_an_empty_mask_is_nan():
    frames = _frames(np.zeros((16, 16, 3), np.uint8))
    colours = mask_colours(frames, torch.zeros(1, 2, 4, 4, dtype=torch.bool), CONFIG.mean, CONFIG.std)
    assert torch.isnan(colours).all()


def test_mask_colours_reads_only_the_masks_frames():
    """A window padded past the video's end: masks cover the real frames only."""
    dark, bright = np.full((8, 8, 3), 20, np.uint8), np.full((8, 8, 3), 240, np.uint8)
    frames = torch.cat([_frames(dark, 1), _frames(bright, 3)])  # [4, 3, 8, 8]
    masks = torch.ones(1, 1, 2, 2, dtype=torch.bool)  # one real frame
    colours = mask_colours(frames, masks, CONFIG.mean, CONFIG.std)
    torch.testing.assert_close(colours[0], torch.full((3,), 20.0), atol=0.01, rtol=0)


def test_colour_agreement_falls_with_distance_to_zero_at_the_scale_and_ignores_unknown_colours():
    track = torch.tensor([[100.0, 0.0, 0.0], [math.nan] * 3])
    slot = torch.tensor([[100.0, 0.0, 0.0], [116.0, 0.0, 0.0], [200.0, 0.0, 0.0]])
    agreement = colour_agreement(track, slot, scale=32.0)
    torch.testing.assert_close(agreement, torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]]))


def test_track_colour_is_the_median_of_its_last_windows():
    colours = TrackColours(memory=3)
    for value in (10.0, 200.0, 20.0, 30.0):  # 10 falls out of the memory
        colours.add(7, torch.full((3,), value))
    colours.add(7, torch.full((3,), math.nan))  # an empty mask adds nothing
    seen = colours.of([7, 8])
    torch.testing.assert_close(seen[0], torch.full((3,), 30.0))
    assert torch.isnan(seen[1]).all()


@pytest.mark.parametrize("memory", [0, -1])
def test_track_colours_needs_a_memory(memory):
    with pytest.raises(ValueError, match="memory"):
        TrackColours(memory=memory)
