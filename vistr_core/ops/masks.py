"""Binary masks and COCO run-length encoding (via pycocotools).

Masks are ``bool``/``uint8`` arrays ``[H, W]`` (or ``[N, H, W]``). Compressed RLEs are dicts
``{"size": [H, W], "counts": str}``; we always write ``counts`` as a str so JSON can hold it, and
accept ``bytes`` on read. YouTube-VIS ground truth may also hold polygons (a list of flat
``[x0, y0, x1, y1, ...]`` lists) or uncompressed RLE (``counts`` a list of ints).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Segmentation = dict[str, Any] | list[list[float]]


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Compressed RLEs of ``masks`` ``[N, H, W]`` (any dtype; nonzero = foreground)."""
    if masks.ndim != 3:
        raise ValueError(f"expected masks [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8, copy=False))
    rles = mask_utils.encode(fortran)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
        rle["size"] = [int(s) for s in rle["size"]]
    return rles


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of one ``[H, W]`` mask."""
    return encode_masks(mask[None])[0]


def to_compressed_rle(segm: Segmentation, height: int, width: int) -> dict[str, Any]:
    """Any YouTube-VIS per-frame segmentation (polygon / uncompressed / compressed RLE) as a
    compressed RLE understood by pycocotools (``counts`` may be bytes)."""
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(segm, *segm["size"])
    if isinstance(segm, dict) and isinstance(segm.get("counts"), str):
        return {"size": list(segm["size"]), "counts": segm["counts"].encode("ascii")}
    if isinstance(segm, dict) and isinstance(segm.get("counts"), bytes):
        return segm
    raise ValueError(f"unrecognized segmentation of type {type(segm).__name__}")


def decode_segmentation(segm: Segmentation, height: int, width: int) -> np.ndarray:
    """A ``bool [H, W]`` mask from any YouTube-VIS per-frame segmentation."""
    return mask_utils.decode(to_compressed_rle(segm, height, width)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of a compressed RLE."""
    return int(mask_utils.area(to_compressed_rle(rle, *rle["size"])))


def rle_size(segm: Segmentation) -> tuple[int, int] | None:
    """``(H, W)`` recorded in an RLE, or None for a polygon (which has no size of its own)."""
    if isinstance(segm, dict) and "size" in segm:
        h, w = segm["size"]
        return int(h), int(w)
    return None
