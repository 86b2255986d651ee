"""Label placement: labels stay inside the frame, off their own object and off each other."""

from __future__ import annotations

import numpy as np

from vistr_core.render import OverlayStyle, crops_from_masks, draw_crops, format_label, track_color
from vistr_core.render.draw import label_patch
from vistr_core.render.labels import anchor_box, place_labels

HEIGHT, WIDTH = 360, 640


def crowded_masks() -> np.ndarray:
    """``bool [14, 360, 640]``: a crowded street of squares and discs, with the hard cases: a square
    touching the top edge, one at the left and right edges, one at the bottom, a duplicate track
    (the same mask twice), overlapping objects and a tight cluster."""
    masks = np.zeros((14, HEIGHT, WIDTH), bool)
    squares = [
        (0, 300, 60, 360),  # touches the top edge
        (150, 0, 210, 50),  # the left edge
        (140, 590, 200, 640),  # the right edge
        (310, 280, 360, 340),  # the bottom edge
        (120, 200, 180, 260),  # duplicate pair: masks 4 and 5 are identical
        (120, 200, 180, 260),
        (150, 240, 210, 300),  # overlaps the duplicates
        (60, 420, 110, 470),  # a tight cluster of four
        (60, 472, 110, 522),
        (112, 420, 162, 470),
        (112, 472, 162, 522),
    ]
    for k, (y0, x0, y1, x1) in enumerate(squares):
        masks[k, y0:y1, x0:x1] = True
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    for k, (cy, cx, r) in enumerate(((260, 120, 35), (270, 470, 40), (250, 560, 25)), start=len(squares)):
        masks[k] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return masks


def label_rects(masks: np.ndarray, texts: list[str], scale: float) -> list[tuple[int, int, int, int]]:
    crops = crops_from_masks(masks)
    sizes = [label_patch(t, (200, 50, 50), scale).shape[:2] for t in texts]
    spots = place_labels(crops, sizes, HEIGHT, WIDTH)
    return [(x, y, x + w, y + h) for (x, y), (h, w) in zip(spots, sizes, strict=True)]


def assert_clear(rects, masks):
    for k, (x0, y0, x1, y1) in enumerate(rects):
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT, f"label {k} leaves the frame"
        assert not masks[k, y0:y1, x0:x1].any(), f"label {k} covers its own object"
        for j in range(k):
            a0, b0, a1, b1 = rects[j]
            assert not (x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1), f"labels {j} and {k} overlap"


def test_crowded_frame_labels_cover_neither_each_other_nor_their_own_object():
    masks = crowded_masks()
    texts = [format_label("square", 0.9 - 0.01 * k, k + 1) for k in range(len(masks))]
    for scale in (0.35, 0.6):  # the 360p default, and 720p's size (where room still exists)
        assert_clear(label_rects(masks, texts, scale), masks)


def test_labels_avoid_other_objects_where_room_exists():
    masks = crowded_masks()[:4]  # four objects at the four edges: plenty of room
    rects = label_rects(masks, [f"thing 0.9{k} #{k + 1}" for k in range(4)], 0.35)
    for x0, y0, x1, y1 in rects:
        assert not masks[:, y0:y1, x0:x1].any()


def test_label_of_an_object_at_the_top_edge_goes_below_it():
    masks = crowded_masks()[:1]  # rows 0..59, columns 300..359
    (x0, y0, x1, y1) = label_rects(masks, ["square 0.93 #1"], 0.35)[0]
    assert y0 == 60 and x0 == 300  # just below the object, left-aligned with it


def test_duplicate_tracks_stack_their_labels():
    masks = np.zeros((2, HEIGHT, WIDTH), bool)
    masks[:, 100:160, 200:260] = True
    rects = label_rects(masks, ["square 0.40 #12", "square 0.95 #3"], 0.35)
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = rects
    assert by1 == 100 and bx0 == 200  # the best-scoring (drawn last) takes the place above
    assert ay1 <= by0 or ay0 >= by1 or ax1 <= bx0 or ax0 >= bx1  # the other is fully visible


def test_without_room_the_label_still_lies_inside_the_frame():
    masks = np.ones((1, HEIGHT, WIDTH), bool)  # an object filling the frame
    (x0, y0, x1, y1) = label_rects(masks, ["wall 0.99 #1"], 0.6)[0]
    assert (x0, y0) == (0, 0) and x1 <= WIDTH and y1 <= HEIGHT


def test_drawn_labels_are_whole_patches_at_their_places():
    masks = crowded_masks()
    track_ids = list(range(1, len(masks) + 1))
    texts = [format_label("square", 0.5, t) for t in track_ids]
    style = OverlayStyle(alpha=0.0, contours=False)
    scale = style.text_scale(HEIGHT, WIDTH)
    out = draw_crops(
        np.zeros((HEIGHT, WIDTH, 3), np.uint8), crops_from_masks(masks), track_ids, texts, style=style
    )
    patches = [label_patch(t, track_color(k), scale) for t, k in zip(texts, track_ids, strict=True)]
    spots = place_labels(crops_from_masks(masks), [p.shape[:2] for p in patches], HEIGHT, WIDTH)
    for patch, (x, y) in zip(patches, spots, strict=True):
        assert np.array_equal(out[y : y + patch.shape[0], x : x + patch.shape[1]], patch)


def test_labels_keep_clear_of_a_caption():
    masks = np.zeros((1, HEIGHT, WIDTH), bool)
    masks[0, 300:340, 10:70] = True  # just above a bottom-left caption
    caption = (0, 270, 200, HEIGHT)
    crops = crops_from_masks(masks)
    ((x, y),) = place_labels(crops, [(17, 66)], HEIGHT, WIDTH, keep_clear=[caption])
    assert x >= 200 or y + 17 <= 270  # not on the caption
    assert not masks[0, y : y + 17, x : x + 66].any()
    assert place_labels(crops, [(17, 66)], HEIGHT, WIDTH) == [(10, 283)]  # without it: just above


def true_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_anchor_box_is_the_exact_box_of_the_largest_piece():
    rng = np.random.default_rng(0)
    for size in (40, 200, 700):  # subsampling steps 1, 4 and 11
        for _ in range(20):
            mask = np.zeros((size, size), bool)
            y0, x0 = rng.integers(0, size // 2, 2)
            h, w = rng.integers(size // 4, size // 2, 2)
            mask[y0 : y0 + h, x0 : x0 + w] = True  # the largest piece
            piece = mask.copy()
            corner = size - 3
            mask[corner:, corner:] = True  # a 3x3 speck in the far corner
            crop = crops_from_masks(np.pad(mask, ((5, 0), (7, 0)))[None])[0]
            bx0, by0, bx1, by1 = true_box(piece)
            assert anchor_box(crop) == (bx0 + 7, by0 + 5, bx1 + 7, by1 + 5)


def test_anchor_box_of_one_piece_is_the_mask_box():
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    ring = ((yy - 180) ** 2 + (xx - 320) ** 2 <= 120**2) & ((yy - 180) ** 2 + (xx - 320) ** 2 >= 100**2)
    for mask in (ring, crowded_masks()[0]):
        crop = crops_from_masks(mask[None])[0]
        assert anchor_box(crop) == crop.box == true_box(mask)


def test_a_label_goes_by_the_main_piece_not_by_a_stray_speck():
    """A large object at the bottom left and a speck of the same mask at the top right: the mask's
    box spans the frame, and a label placed by it would sit near the speck, far from the object."""
    mask = np.zeros((1, HEIGHT, WIDTH), bool)
    mask[0, 200:330, 40:200] = True
    mask[0, 10:13, 600:603] = True
    ((x0, y0, x1, y1),) = label_rects(mask, [format_label("car", 0.9, 1)], 0.5)
    assert not mask[0, y0:y1, x0:x1].any()
    assert y1 == 200 and 40 <= x0 < 200, (x0, y0, x1, y1)  # just above the object, over it
