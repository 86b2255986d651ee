"""Which frames of a video make a clip.

Training draws a window of T frames at a random start with a random temporal stride
(1..``max_stride``, capped so the window still fits): frames ``start, start + s, ..., start + (T-1)s``.
Windows never wrap around the end of the video (the reference's cyclic window joins the last frame
to the first, a discontinuity no real video has).

A video shorter than T frames is used whole and **padded by holding its last frame**
(``0, 1, ..., L-1, L-1, ..., L-1``): the padded frames are exact copies with the same masks, so
motion stays continuous and the padding is visible in ``frame_indices``. Inference pads the same
way (:func:`pad_indices`).

Evaluation-style sampling (``train=False``) takes the first T frames at stride 1.
"""

from __future__ import annotations

import numpy as np


def pad_indices(length: int, num_frames: int) -> np.ndarray:
    """``[T]`` int64: frames ``0..L-1`` followed by the last frame repeated up to T."""
    if length < 1:
        raise ValueError("a video needs at least one frame")
    return np.minimum(np.arange(num_frames), length - 1).astype(np.int64)


def max_fitting_stride(length: int, num_frames: int, max_stride: int) -> int:
    """The largest stride <= ``max_stride`` whose window of T frames fits in L frames (at least 1)."""
    if num_frames <= 1:
        return max(1, max_stride)
    return max(1, min(max_stride, (length - 1) // (num_frames - 1)))


def sample_clip_indices(
    length: int, num_frames: int, rng: np.random.Generator | None = None, *, max_stride: int = 1
) -> np.ndarray:
    """Frame indices ``[T]`` (int64) of one clip from a video of ``length`` frames.

    Args:
        rng: the random source for start and stride; None -> the deterministic first window.
        max_stride: the largest temporal stride to draw (uniform over the strides that fit).
    """
    if length < num_frames:
        return pad_indices(length, num_frames)
    if rng is None:
        return np.arange(num_frames, dtype=np.int64)
    stride = int(rng.integers(1, max_fitting_stride(length, num_frames, max_stride) + 1))
    span = (num_frames - 1) * stride + 1
    start = int(rng.integers(0, length - span + 1))
    return start + stride * np.arange(num_frames, dtype=np.int64)
