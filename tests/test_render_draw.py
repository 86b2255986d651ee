"""Palette, RLE-to-crop decoding and drawing: exact, stable, and confined to the masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from vistr_core.ops.masks import encode_masks
from vistr_core.render import (
    OverlayStyle,
    crops_from_masks,
    crops_from_rles,
    draw_crops,
    draw_frame,
    format_label,
    palette_for_png,
    palette_rgb,
    track_color,
)
from vistr_core.render.crops import rle_counts
from vistr_core.render.palette import text_color_for

PLAIN = OverlayStyle(contours=False, boxes=False, labels=False)


def random_masks(rng: np.random.Generator, n: int, height: int = 90, width: int = 130) -> np.ndarray:
    """``uint8 [n, H, W]`` blobs with holes and border contact, plus one empty and one full mask."""
    masks = np.zeros((n, height, width), np.uint8)
    for k in range(n - 2):
        for _ in range(3):
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(3, 40)), int(rng.integers(3, 30)))
            cv2.ellipse(masks[k], center, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
        masks[k, rng.integers(0, height), :] = 0  # a cut: several runs per column
    masks[n - 1] = 1
    return masks


def test_palette_layout_and_png_palette_agree():
    table = palette_rgb()
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert table[0].tolist() == [0, 0, 0]
    assert all(track_color(k) == tuple(table[k]) for k in range(1, 256))
    assert palette_for_png() == table.reshape(-1).tolist() and len(palette_for_png()) == 768
    assert track_color(256) == track_color(1) and track_color(300) == track_color(45)  # wraps past 255
    assert palette_rgb(600)[256].tolist() == table[1].tolist() and palette_rgb(600)[0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        track_color(0)


def test_palette_is_well_separated():
    table = palette_rgb().astype(float)
    neighbours = np.linalg.norm(table[1:-1] - table[2:], axis=1)
    assert neighbours.min() > 60  # consecutive ids never look alike
    first = table[1:19]
    pairwise = np.linalg.norm(first[:, None] - first[None], axis=-1) + np.eye(18) * 1e9
    assert pairwise.min() > 40
    assert (np.abs(table[1:] - table[1:].mean(axis=1, keepdims=True)).max(axis=1) > 20).all()  # no greys


def test_label_text_colour_follows_luminance():
    assert text_color_for((255, 225, 25)) == (0, 0, 0)  # yellow: black text
    assert text_color_for((0, 0, 128)) == (255, 255, 255)  # navy: white text
    assert format_label("person", 0.934, 3) == "person 0.93 #3" and format_label("cat", None, 7) == "cat #7"


def test_rle_counts_match_pycocotools():
    rng = np.random.default_rng(1)
    masks = random_masks(rng, 8)
    for mask, rle in zip(masks, encode_masks(masks), strict=True):
        runs = rle_counts(rle["counts"])
        assert runs.sum() == mask.size
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        assert np.array_equal(flat.reshape(mask.shape[1], mask.shape[0]).T, mask)


def test_crops_from_rles_equal_full_decode():
    rng = np.random.default_rng(2)
    masks = random_masks(rng, 10)
    rles = encode_masks(masks)
    decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles])
    assert np.array_equal(decoded.transpose(2, 0, 1), masks)
    from_rles, from_masks = crops_from_rles(rles), crops_from_masks(masks)
    for k, (a, b) in enumerate(zip(from_rles, from_masks, strict=True)):
        if masks[k].any():
            x0, y0, x1, y1 = a.box
            ys, xs = np.nonzero(masks[k])
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert a.box == b.box and np.array_equal(a.mask, b.mask)
            assert np.array_equal(a.mask, masks[k, y0:y1, x0:x1]) and a.mask.flags.c_contiguous
        else:
            assert a is None and b is None


def test_pixels_outside_masks_are_untouched_and_inside_are_blended():
    rng = np.random.default_rng(3)
    masks = random_masks(rng, 7)[:-1].astype(bool)  # without the full-frame mask
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    original = image.copy()
    out = draw_frame(image, masks, [1, 2, 3, 4, 5, 6], style=PLAIN)
    assert np.array_equal(image, original)  # input not modified
    outside = ~masks.any(axis=0)
    assert outside.sum() > 1000 and np.array_equal(out[outside], original[outside])
    only_first = masks[0] & ~masks[1:].any(axis=0)  # later masks are drawn on top
    assert only_first.sum() > 100
    expected = 0.5 * original[only_first].astype(float) + 0.5 * np.array(track_color(1))
    assert np.abs(out[only_first].astype(float) - expected).max() <= 1.0


def test_opaque_masks_take_exactly_the_track_colour():
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 5:20, 5:30] = True
    masks[1, 10:35, 20:50] = True  # overlaps mask 0; drawn on top
    image = np.full((40, 60, 3), 77, np.uint8)
    out = draw_frame(image, masks, [4, 9], style=OverlayStyle(alpha=1.0, contours=False, labels=False))
    assert (out[masks[1]] == track_color(9)).all()
    assert (out[masks[0] & ~masks[1]] == track_color(4)).all()
    assert (out[~masks.any(axis=0)] == 77).all()


def test_contours_boxes_and_labels_are_drawn_in_the_track_colour():
    masks = np.zeros((1, 120, 160), bool)
    masks[0, 50:100, 40:120] = True
    image = np.zeros((120, 160, 3), np.uint8)
    color = track_color(2)
    outline = draw_frame(image, masks, [2], style=OverlayStyle(alpha=0.0, contours=True, labels=False))
    edge = outline[50, 45:115].astype(int)  # anti-aliased: close to the colour along the edge
    assert (np.abs(edge - color).max(axis=1) <= 20).mean() > 0.9
    assert (outline[55:95, 45:115] == 0).all()  # inside not filled
    boxed = draw_frame(
        image, masks, [2], style=OverlayStyle(alpha=0.0, contours=False, boxes=True, labels=False)
    )
    assert (boxed[50, 40] == color).all() and (boxed[99, 119] == color).all()
    labelled = draw_frame(image, masks, [2], ["dog 0.90 #2"], style=OverlayStyle(alpha=0.0, contours=False))
    above = labelled[:50, 40:120]  # the label sits on top of the box, in the track colour
    assert (above == color).all(axis=-1).sum() > 200
    assert (labelled[50:] == 0).all()


def test_alpha_zero_without_decorations_changes_nothing():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    out = draw_frame(
        image, random_masks(rng, 4), [1, 2, 3, 4], style=OverlayStyle(alpha=0.0, contours=False, labels=False)
    )
    assert np.array_equal(out, image)


def test_drawing_into_a_pane_view_equals_drawing_alone():
    rng = np.random.default_rng(5)
    masks = random_masks(rng, 5)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    labels = [f"thing {k}" for k in range(5)]
    alone = draw_crops(
        image, crops_from_masks(masks), [1, 2, 3, 4, 5], labels, style=OverlayStyle(boxes=True)
    )
    canvas = np.zeros((90, 300, 3), np.uint8)
    draw_crops(
        image,
        crops_from_masks(masks),
        [1, 2, 3, 4, 5],
        labels,
        style=OverlayStyle(boxes=True),
        out=canvas[:, 20:150],
    )
    assert np.array_equal(canvas[:, 20:150], alone)
    assert not canvas[:, :20].any() and not canvas[:, 150:].any()


def test_draw_frame_rejects_masks_of_another_size():
    with pytest.raises(ValueError, match="do not fit"):
        draw_frame(np.zeros((10, 10, 3), np.uint8), np.zeros((1, 10, 12), bool), [1])


def test_legend_lists_tracks_highlights_present_ones_and_truncates():
    from vistr_core.render.legend import LegendPanel

    entries = [(k, f"#{k}  thing 0.{k}") for k in range(1, 41)]
    legend = LegendPanel(entries, height=200, scale=0.5)
    rows = (200 - legend.top) // legend.row_height
    assert len(legend.row_of) == rows - 1  # the last row says "+N more"
    out = np.zeros((200, legend.width, 3), np.uint8)
    legend.draw(out, present=[2])
    dim, bright = legend.panels
    y2 = legend.top + legend.row_of[2] * legend.row_height
    assert np.array_equal(out[y2 : y2 + legend.row_height], bright[y2 : y2 + legend.row_height])
    assert np.array_equal(out[:y2], dim[:y2]) and not np.array_equal(dim, bright)
    swatch = out[legend.top + 2, legend.top + 2]  # row 1's colour square
    assert tuple(swatch) == track_color(1) and legend.width % 2 == 0


def test_frame_size_mismatch_in_overlay_writer(tmp_path):
    from vistr_core.errors import VideoError
    from vistr_core.render import OverlayWriter

    writer = OverlayWriter(tmp_path / "o.mp4", width=64, height=48, fps=10)
    with pytest.raises(VideoError, match="expected 64x48"):
        writer.write(np.zeros((40, 64, 3), np.uint8), np.zeros((0, 40, 64), bool), [])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
