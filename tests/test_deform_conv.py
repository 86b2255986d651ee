"""The fast CPU deformable convolution equals torchvision's, in values and gradients.

Two CPU paths: grid_sample where a gradient is needed (training), embedding_bag where none is
(inference). `_compare` checks both against torchvision."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from vistr_core.ops.deform_conv import DeformConv2d, deform_conv2d, deform_conv2d_cpu


def _inputs(
    n, cin, cout, h, w, kernel=(3, 3), offset_scale=2.0, dtype=torch.float32, seed=0, padding=1, dilation=1
):
    g = torch.Generator().manual_seed(seed)
    kh, kw = kernel
    ho, wo = h + 2 * padding - dilation * (kh - 1), w + 2 * padding - dilation * (kw - 1)
    x = torch.randn(n, cin, h, w, generator=g, dtype=dtype)
    offset = offset_scale * torch.randn(n, 2 * kh * kw, ho, wo, generator=g, dtype=dtype)
    weight = torch.randn(cout, cin, kh, kw, generator=g, dtype=dtype) / math.sqrt(cin * kh * kw)
    return x, offset, weight


def _grads_of(op, x, offset, weight, grads=None):
    """``op(x, offset, weight)`` and its (d input, d offset, d weight) for output gradient ``grads``
    (default ones)."""
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    out = op(*leaves)
    return (out, *torch.autograd.grad(out, leaves, torch.ones_like(out) if grads is None else grads))


def _value_and_grads(x, offset, weight, grads=None, padding=1, dilation=1):
    """Our value and gradients (:func:`_grads_of`)."""
    return _grads_of(
        lambda a, o, w: deform_conv2d_cpu(a, o, w, padding=padding, dilation=dilation),
        x,
        offset,
        weight,
        grads,
    )


def _torchvision(x, offset, weight, grads, padding=1, dilation=1):
    """torchvision's value and gradients (:func:`_grads_of`)."""
    pad, dil = (padding, padding), (dilation, dilation)
    return _grads_of(
        lambda a, o, w: torchvision.ops.deform_conv2d(a, o, w, padding=pad, dilation=dil),
        x,
        offset,
        weight,
        grads,
    )


def _left_offset_grad(x, offset, weight, grads, padding=1, dilation=1, eta=1e-3):
    """d offset from the other side of every pixel: torchvision takes the cell above/right of a
    position exactly on a pixel (its floor); moving only the differentiated coordinate by -eta
    lands inside the cell below/left, where bilinear sampling is linear in that coordinate."""
    left = torch.empty_like(offset)
    for axis in (0, 1):  # channel 2k is tap k's dy, 2k+1 its dx
        shifted = offset.clone()
        shifted[:, axis::2] -= eta
        left[:, axis::2] = _torchvision(x, shifted, weight, grads, padding, dilation)[2][:, axis::2]
    return left


def _assert_offset_grad_one_sided(ours, right, left, atol):
    """Each offset gradient equals torchvision's, or on a pixel the other one-sided derivative
    (grid_sample's rounding may put a position an ulp below the pixel; see _sampled_chunk)."""
    tol = atol + 1e-5 * torch.maximum(right.abs(), left.abs())
    ok = ((ours - right).abs() <= tol) | ((ours - left).abs() <= tol)
    assert ok.all(), f"d offset: {int((~ok).sum())} of {ok.numel()} match neither side of the pixel"


def _compare(x, offset, weight, padding, dilation, atol):
    grads = torch.randn(x.shape[0], weight.shape[0], *offset.shape[-2:], dtype=x.dtype)
    ours = _value_and_grads(x, offset, weight, grads, padding, dilation)
    ref = _torchvision(x, offset, weight, grads, padding, dilation)
    with torch.no_grad():  # the inference path
        inference = deform_conv2d_cpu(x, offset, weight, padding=padding, dilation=dilation)
    torch.testing.assert_close(inference, ref[0].detach(), atol=atol, rtol=1e-5)
    checked = zip(("value", "d input", "d weight"), ours[:2] + ours[3:], ref[:2] + ref[3:], strict=True)
    for name, mine, theirs in checked:
        # Weight gradients sum over N*H*W products: float32 summation order alone moves them by
        # ~1e-6 of their scale, so their tolerance is relative to that scale.
        tol = atol * max(1.0, theirs.abs().max().item()) if name == "d weight" else atol
        torch.testing.assert_close(mine, theirs, atol=tol, rtol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    left = _left_offset_grad(x, offset, weight, grads, padding, dilation)
    _assert_offset_grad_one_sided(ours[2], ref[2], left, atol)


@pytest.mark.parametrize(
    ("n", "cin", "cout", "h", "w", "offset_scale", "padding", "dilation"),
    [
        (1, 4, 3, 5, 5, 0.0, 1, 1),  # zero offsets: border taps exactly on -1
        (3, 48, 24, 13, 17, 1.5, 1, 1),  # the mask head's widths, odd size, batch > 1
        (2, 6, 5, 9, 7, 8.0, 1, 1),  # many samples far outside the image
        (2, 5, 4, 11, 6, 2.0, 2, 2),  # dilation
        (2, 3, 2, 1, 1, 0.7, 1, 1),  # a single pixel
        (1, 5, 4, 6, 8, 1.0, 0, 1),  # no padding
    ],
)
def test_matches_torchvision_float32(n, cin, cout, h, w, offset_scale, padding, dilation):
    x, offset, weight = _inputs(
        n, cin, cout, h, w, offset_scale=offset_scale, padding=padding, dilation=dilation
    )
    _compare(x, offset, weight, padding, dilation, atol=1e-5)


def test_matches_torchvision_float64_and_integer_offsets():
    x, offset, weight = _inputs(2, 7, 3, 8, 9, dtype=torch.float64, seed=1)
    _compare(x, offset, weight, 1, 1, atol=1e-12)
    _compare(x, offset.round(), weight, 1, 1, atol=1e-12)  # samples exactly on pixel centers


def test_non_square_kernel():
    x, offset, weight = _inputs(2, 4, 3, 7, 9, kernel=(1, 3), seed=2, padding=0)
    _compare(x, offset, weight, 0, 1, atol=1e-5)


def test_large_batch_is_chunked_consistently(monkeypatch):
    import vistr_core.ops.deform_conv as dc

    x, offset, weight = _inputs(5, 3, 2, 6, 7, seed=3)
    whole = deform_conv2d_cpu(x, offset, weight)
    monkeypatch.setattr(dc, "_MAX_BAG_ENTRIES", 6 * 7 * 9 * 4 * 2)  # two samples per chunk
    torch.testing.assert_close(deform_conv2d_cpu(x, offset, weight), whole, atol=0, rtol=0)


def test_training_path_is_chunked_consistently(monkeypatch):
    import vistr_core.ops.deform_conv as dc

    x, offset, weight = _inputs(5, 3, 2, 6, 7, seed=3)
    whole = _value_and_grads(x, offset, weight)
    monkeypatch.setattr(dc, "_MAX_TABLE_ELEMENTS", 9 * 2 * 6 * 7 * 2)  # two samples per chunk
    chunked = _value_and_grads(x, offset, weight)
    for ours, ref in zip(chunked, whole, strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)  # weight grads: summation order


@pytest.mark.parametrize(("h", "w"), [(8, 16), (7, 13), (16, 9)])
def test_training_path_at_pixel_centers(h, w):
    """Zero offsets (the mask head's init) sample exactly on pixels: the training path then
    equals a plain 3x3 convolution with torchvision's input and weight gradients, and each offset
    gradient is one of the pixel's two one-sided derivatives (torchvision's side exactly where the
    size is a power of two, as 8 and 16 are)."""
    x, offset, weight = _inputs(2, 5, 4, h, w, offset_scale=0.0, seed=6)
    ours = _value_and_grads(x, offset, weight)
    ones = torch.ones(2, 4, h, w)
    ref = _torchvision(x, offset, weight, ones)
    torch.testing.assert_close(
        ours[0], torch.nn.functional.conv2d(x, weight, padding=1), atol=1e-5, rtol=1e-5
    )
    for mine, theirs in zip(ours[1::2], ref[1::2], strict=True):  # d input, d weight
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-5)
    _assert_offset_grad_one_sided(ours[2], ref[2], _left_offset_grad(x, offset, weight, ones), atol=1e-4)
    if h in (8, 16) and w in (8, 16):
        torch.testing.assert_close(ours[2], ref[2], atol=1e-4, rtol=1e-5)


def test_training_path_under_cpu_autocast():
    """bf16 activations (autocast) still sample at float32 positions, and gradients flow."""
    x, offset, weight = _inputs(2, 4, 3, 40, 70, seed=4)
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    with torch.autocast("cpu", torch.bfloat16):
        out = deform_conv2d_cpu(*leaves)
    ref = torchvision.ops.deform_conv2d(x, offset, weight, padding=(1, 1))
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.02)
    out.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in leaves)


def test_module_and_dispatch():
    module = DeformConv2d(6, 4)
    assert module.weight.shape == (4, 6, 3, 3) and not hasattr(module, "bias")
    x, offset, _ = _inputs(2, 6, 4, 5, 5)
    expected = torchvision.ops.deform_conv2d(x, offset, module.weight, padding=(1, 1))
    torch.testing.assert_close(module(x, offset), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(deform_conv2d(x, offset, module.weight), expected, atol=1e-5, rtol=1e-5)


def test_rejects_mismatched_shapes():
    x, offset, weight = _inputs(1, 4, 3, 5, 5)
    with pytest.raises(ValueError, match="do not fit"):
        deform_conv2d_cpu(x, offset[:, :10], weight)


def test_bfloat16_positions_stay_exact():
    """Half-precision inputs still index the right pixels (positions are computed in float32)."""
    x, offset, weight = _inputs(2, 4, 3, 40, 70, seed=4)
    ours = deform_conv2d_cpu(x.bfloat16(), offset.bfloat16(), weight.bfloat16()).float()
    ref = torchvision.ops.deform_conv2d(
        x.bfloat16().float(), offset.bfloat16().float(), weight.bfloat16().float(), padding=(1, 1)
    )
    torch.testing.assert_close(ours, ref, atol=0.05, rtol=0.02)


def test_row_numbers_beyond_float32_precision(monkeypatch):
    """Tables with 2^24+ rows fall back to float64 row numbers (forced here on a small input)."""
    import vistr_core.ops.deform_conv as dc

    x, offset, weight = _inputs(2, 3, 2, 9, 11, seed=5)
    expected = torchvision.ops.deform_conv2d(x, offset, weight, padding=(1, 1))
    original = dc._gathered_chunk

    def shifted(x, *args):
        # Prepend a large zero block so the rows of the real samples exceed 2^24.
        pad = torch.zeros(((1 << 24) // (12 * 14 * 9)) + 1, *x.shape[1:])
        offsets = torch.zeros(pad.shape[0], *args[0].shape[1:])
        out = original(torch.cat([pad, x]), torch.cat([offsets, args[0]]), *args[1:])
        return out[pad.shape[0] :]

    monkeypatch.setattr(dc, "_gathered_chunk", shifted)
    torch.testing.assert_close(deform_conv2d_cpu(x, offset, weight), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grad", [False, True])
def test_non_finite_offsets_sample_nothing_instead_of_failing(grad):
    """A diverged model's NaN/inf offsets must not crash the gather: those taps read zeros, like
    offsets far outside the image, so the NaN surfaces in the loss where the trainer names it."""
    x, offset, weight = _inputs(2, 4, 3, 6, 7, offset_scale=1.0)
    bad = offset.clone()
    bad[0, :, 2, 3] = float("nan")
    bad[1, 0, 1, 1] = float("inf")
    bad[1, 1, 4, 4] = float("-inf")
    far = offset.clone()
    far[0, :, 2, 3] = -1000.0  # NaN in both coordinates: nothing sampled, as here
    far[1, 0, 1, 1] = 1000.0
    far[1, 1, 4, 4] = -1000.0
    with torch.set_grad_enabled(grad):
        xs = x.clone().requires_grad_(grad)
        out = deform_conv2d_cpu(xs, bad, weight)
        expected = deform_conv2d_cpu(x, far, weight)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.detach(), expected, atol=1e-6, rtol=1e-6)
