"""Spatio-temporal mask IoU between predicted and ground-truth tracks of one video.

    IoU(D, G) = Σ_t |D_t ∩ G_t| / Σ_t |D_t ∪ G_t|,   0 when the union is empty

(a ratio of sums over frames, not a mean of per-frame IoUs). An absent frame contributes its
partner's area to the union and nothing to the intersection, which equals treating it as an empty
mask. We therefore only need the per-pair intersections: |D ∪ G| = |D| + |G| − |D ∩ G| per frame.

The intersections come from one pycocotools ``iou`` call per frame over all present pairs, run on
the RLEs without decoding. With ``iscrowd=1`` that call returns |D∩G| / |D| in double precision,
and multiplying back by the integer |D| and rounding recovers the integer intersection exactly
(relative error ≤ 2⁻⁵², far below 0.5 for any frame size). The final division is done in float64
on the same integer sums as the official API, so the IoUs are bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from .loading import Track


def frame_intersections(dts: Sequence[Track], gts: Sequence[Track]) -> np.ndarray:
    """Σ_t |D_t ∩ G_t| for every pair: ``int64 [D, G]``. All tracks share the video's frames."""
    inter = np.zeros((len(dts), len(gts)), dtype=np.int64)
    if not dts or not gts:
        return inter
    for t in range(len(gts[0].frames)):
        d_idx = [i for i, d in enumerate(dts) if d.frames[t] is not None]
        g_idx = [j for j, g in enumerate(gts) if g.frames[t] is not None]
        if not d_idx or not g_idx:
            continue
        ratio = np.asarray(
            mask_utils.iou(
                [dts[i].frames[t] for i in d_idx],
                [gts[j].frames[t] for j in g_idx],
                [1] * len(g_idx),
            ),
            dtype=np.float64,
        ).reshape(len(d_idx), len(g_idx))
        d_area = np.array([dts[i].areas[t] for i in d_idx], dtype=np.float64)
        inter[np.ix_(d_idx, g_idx)] += np.rint(ratio * d_area[:, None]).astype(np.int64)
    return inter


def video_iou(dts: Sequence[Track], gts: Sequence[Track]) -> np.ndarray:
    """Video IoU matrix ``float64 [D, G]``, rows in the order of ``dts``, columns of ``gts``."""
    inter = frame_intersections(dts, gts)
    if inter.size == 0:
        return inter.astype(np.float64)
    d_sum = np.array([d.areas.sum() for d in dts], dtype=np.int64)
    g_sum = np.array([g.areas.sum() for g in gts], dtype=np.int64)
    union = d_sum[:, None] + g_sum[None, :] - inter
    ious = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=ious, where=union > 0)
    return ious
