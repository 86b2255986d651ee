"""Appearance of a track: the colour of the pixels under its masks, to tell look-alikes apart.

Two objects of one class that cross are told apart by the linking rule only through their masks'
overlap in the frames two windows share; where a slot moves from one to the other (it happens in the
frames around a crossing or where one object disappears), the track follows the slot. Their colours
usually differ even when their class is the same, and a track's colour over its past windows is a
memory that survives those events. A link whose later slot has another colour than the track loses
affinity, and the same-slot bonus fades with the colours' agreement (:func:`colour_agreement`): the
bonus is there to keep one object's track on the query slot that had it, and a slot that now shows
another colour holds another object.

Colours are the median RGB (0-255) of the frame pixels under a mask, over a window's real frames:
the median, not the mean, so that a mask that also covers a little of its neighbour or the background
keeps its object's colour.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

NO_COLOUR = float("nan")
"""Colour of a mask with no pixels (cannot happen for an active slot; kept out of comparisons)."""


def mask_colours(frames: Tensor, masks: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Median colour of the pixels under each mask sequence.

    Args:
        frames: [t, 3, H, W] model-input frames, normalized with ``mean`` / ``std`` (the data config's).
        masks: [k, t, h, w] bool masks of k instances (any h, w; the frames are area-resized to them).
        mean, std: the per-channel normalization, so colours come back as RGB in 0..255.
    Returns:
        [k, 3] float32 RGB, NaN for an instance with an empty mask.
    """
    k, t, h, w = masks.shape
    small = F.interpolate(frames[:t].float(), size=(h, w), mode="area")  # [t, 3, h, w]
    scale = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    shift = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    pixels = (small.cpu() * scale + shift).permute(0, 2, 3, 1).reshape(-1, 3)  # [t*h*w, 3]
    flat = masks.cpu().reshape(k, -1)
    colours = torch.full((k, 3), NO_COLOUR)
    for i in range(k):
        chosen = pixels[flat[i]]
        if len(chosen):
            colours[i] = chosen.median(0).values
    return colours


def colour_agreement(track: Tensor, slot: Tensor, scale: float) -> Tensor:
    """``1 - min(|track - slot| / scale, 1)`` for every (track, slot) pair: 1 for one colour, 0 for
    colours ``scale`` or more apart, 1 where either is unknown (NaN).

    Args:
        track: [p, 3] RGB of the earlier side's tracks; slot: [q, 3] RGB of the later side's slots.
    Returns:
        [p, q] float32 in [0, 1].
    """
    distance = torch.cdist(track.float(), slot.float())  # NaN rows stay NaN
    return torch.nan_to_num(1.0 - (distance / scale).clamp(max=1.0), nan=1.0)


class TrackColours:
    """Each track's colour: the median of its last ``memory`` windows' colours.

    The median over windows rather than the last window: a track whose slot strayed onto a look-alike
    in one window keeps the colour of its own object.
    """

    def __init__(self, memory: int = 5) -> None:
        if memory < 1:
            raise ValueError(f"a track's colour memory must be at least one window, got {memory}")
        self.memory = memory
        self.seen: dict[int, deque[Tensor]] = {}

    def add(self, track_id: int, colour: Tensor) -> None:
        """colour: [3] RGB of the track's slot in one window (ignored if NaN)."""
        if torch.isnan(colour).any():
            return
        self.seen.setdefault(track_id, deque(maxlen=self.memory)).append(colour)

    def of(self, track_ids: Sequence[int]) -> Tensor:
        """[p, 3] colours of the tracks, NaN for a track not seen yet."""
        out = torch.full((len(track_ids), 3), NO_COLOUR)
        for k, tid in enumerate(track_ids):
            if tid in self.seen:
                out[k] = torch.stack(list(self.seen[tid])).median(0).values
        return out
