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


def compressed_rle_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths ``int64 [M]`` a COCO compressed RLE string stands for.

    pycocotools refuses strings whose runs add up to more than H*W but accepts fewer (and then
    decodes uninitialized memory), so callers compare ``counts.sum()`` with H*W themselves.

    Raises:
        ValueError: a character outside the format's alphabet ('0'..'o'), a string that stops
            inside a number, or a negative run.
    """
    raw = counts.encode("utf-8") if isinstance(counts, str) else bytes(counts)
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars.min() < 0 or chars.max() > 63:
        raise ValueError("characters outside the RLE alphabet")
    last = (chars & 0x20) == 0  # a number ends at a character without the continuation bit
    if not last[-1]:
        raise ValueError("the string ends inside a number")
    number = np.concatenate([[0], np.cumsum(last)[:-1]])  # which number each character belongs to
    start = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    shift = 5 * (np.arange(chars.size) - start[number])
    if shift.max(initial=0) > 55:
        raise ValueError("a run length too large")
    values = np.bincount(number, weights=(chars & 0x1F) << shift).astype(np.int64)
    ends = np.flatnonzero(last)
    negative = (chars[ends] & 0x10) != 0  # sign bit of the number's last 5-bit group
    values[negative] -= 1 << (shift[ends][negative] + 5)
    # from the fourth run on, each is stored as the difference to the run two before it
    runs = values.copy()
    for parity in (0, 1):
        first = 2 if parity == 0 else 1
        runs[first::2] = np.cumsum(values[first::2])
    if (runs < 0).any():
        raise ValueError("a negative run length")
    return runs
