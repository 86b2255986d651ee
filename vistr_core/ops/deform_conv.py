"""Deformable convolution (DCNv1) with fast, exact CPU paths.

Offsets follow torchvision's layout: for kernel tap k = i*kw + j, channel 2k is Δy and 2k+1 is
Δx; sampling is bilinear with zeros outside the image (torchvision's ``bilinear_interpolate``).
``torchvision.ops.deform_conv2d`` is the reference and the path on CUDA.

The CPU paths reorder the computation, which is exact in real arithmetic because sampling and
the channel mixing are both linear:

    out[p] = Σ_k W_k · bilinear(x, p + tap_k + Δ_k)  =  Σ_k bilinear(x @ W_k, p + tap_k + Δ_k)

so one GEMM projects every pixel to all K taps' output channels (Cout ≤ Cin in VisTR, which
halves what the sampling moves), and no im2col columns are materialized. Then:

- inference (no gradient needed): ``F.embedding_bag`` (sum mode with per-sample weights) does the
  4 corners x K taps gather-and-weight in one fused pass over a zero-bordered table;
- training: ``F.grid_sample`` samples tap k's Cout channels at tap k's positions (K folded into
  the batch). Its backward does not sort all 4K*Ho*Wo indices as embedding_bag's does (the tiny
  preset's mask head, 24 x 24 x 48 x 64: 206 ms -> 96 ms forward + backward, a quickstart
  training step 24 % cheaper; ``benchmarks/deform_conv.py``). The forward's gather stays faster
  where nothing needs a gradient.

Everything on the training path is differentiable (w.r.t. input, offsets and weight) through
standard autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from .autocast_state import current_autocast

# Bag entries (4 corners x K taps per output pixel) per chunk: bounds the temporaries (~1.5 GB)
# while keeping ops large; with small chunks per-op overhead and thread
# synchronization dominate (2^19 entries measured 4x slower than 2^23 on 2 threads).
_MAX_BAG_ENTRIES = 1 << 24
# Table elements per chunk on the training path (128 MB in float32, as much again for its
# gradient); the tiny preset's mask head needs 8-13 M, one chunk.
_MAX_TABLE_ELEMENTS = 1 << 25


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    *,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """input: [N, Cin, H, W]; offset: [N, 2*kh*kw, Ho, Wo]; weight: [Cout, Cin, kh, kw] -> [N, Cout, Ho, Wo]

    with Ho = H + 2*padding - dilation*(kh - 1) (likewise Wo).

    Stride 1, one offset group, one weight group, no bias (what VisTR's mask head uses).
    CUDA inputs go to torchvision's kernel; CPU inputs to :func:`deform_conv2d_cpu`.
    """
    if input.is_cuda:
        return torchvision.ops.deform_conv2d(
            input, offset, weight, padding=(padding, padding), dilation=(dilation, dilation)
        )
    return deform_conv2d_cpu(input, offset, weight, padding=padding, dilation=dilation)


def deform_conv2d_cpu(
    input: Tensor, offset: Tensor, weight: Tensor, *, padding: int = 1, dilation: int = 1
) -> Tensor:
    """The projection-then-sampling form (see the module docstring), chunked over the batch.

    Returns [N, Cout, Ho, Wo]: sampled by grid_sample when a gradient is needed, else gathered by
    embedding_bag (then channels-last).
    """
    n, cin, h, w = input.shape
    cout, cin_w, kh, kw = weight.shape
    ho = h + 2 * padding - dilation * (kh - 1)
    wo = w + 2 * padding - dilation * (kw - 1)
    if cin_w != cin or offset.shape != (n, 2 * kh * kw, ho, wo) or ho < 1 or wo < 1:
        raise ValueError(
            f"deform_conv2d: input {tuple(input.shape)}, offset {tuple(offset.shape)} and "
            f"weight {tuple(weight.shape)} do not fit (stride 1, one offset group)"
        )
    k = kh * kw
    # [Cin, K*Cout]: column block k holds W_k^T, so row r of x @ proj is pixel r's K tap outputs.
    proj = weight.permute(1, 2, 3, 0).reshape(cin, k * cout)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (input, offset, weight))
    if needs_grad:
        per_sample = max(1, _MAX_TABLE_ELEMENTS // (k * cout * h * w))
        sample = _sampled_chunk
    else:
        # Bounded temporaries, and table rows (built in float32) below 2^24 when possible.
        per_sample = max(1, min(_MAX_BAG_ENTRIES // (ho * wo * k * 4), (1 << 24) // ((h + 3) * (w + 3) * k)))
        sample = _gathered_chunk
    outs = []
    for start in range(0, n, per_sample):
        stop = min(n, start + per_sample)
        outs.append(sample(input[start:stop], offset[start:stop], proj, (kh, kw), cout, padding, dilation))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _sampled_chunk(
    x: Tensor,
    offset: Tensor,
    proj: Tensor,
    kernel: tuple[int, int],
    cout: int,
    padding: int,
    dilation: int,
) -> Tensor:
    """The training path. x: [n, C, H, W], offset: [n, 2K, Ho, Wo], proj: [C, K*Cout] -> [n, Cout, Ho, Wo].

    grid_sample (align_corners=False) reads normalized coordinate g at pixel ((g + 1) * S - 1) / 2
    for an input of size S. Unless S is a power of two that round trip can move a position by an
    ulp, so a position exactly on a pixel (every position at zero offsets, the mask head's init)
    may take the pixel's other side: the same value, and the offset gradient of the neighbouring
    cell, the other one-sided derivative. Padding the table to power-of-two sizes would keep
    torchvision's side, at up to 2.25x the memory traffic (52 x 70 -> 64 x 128 at the tiny
    preset's largest training scale); measured, dropping it made a quickstart step ~8 % faster.
    """
    n, c, h, w = x.shape
    k = kernel[0] * kernel[1]
    ho, wo = offset.shape[-2:]
    # What the projection would return (the autocast dtype under autocast): the output's dtype.
    autocast_on, autocast_dtype = current_autocast("cpu")
    out_dtype = autocast_dtype if autocast_on else torch.promote_types(x.dtype, proj.dtype)
    # Positions need float32 at least (bf16 would move a sample at x = 60 by up to 0.25 pixel), and
    # grid_sample samples in the grid's dtype, so the table is built in it: the GEMM writes the
    # tap-major layout grid_sample reads ([n, K*Cout, H*W], rows (tap, channel)) directly.
    # (Built pixel-major and then transposed, that copy and its gradient's were ~1/4 of the whole.)
    dtype = torch.promote_types(out_dtype, torch.float32)
    with torch.autocast("cpu", enabled=False):
        pixels = x.to(dtype).reshape(n, c, h * w)  # a view for channels-last or contiguous x
        # bmm, not matmul: matmul would fold the batch into one pixel-major GEMM and transpose after.
        table = torch.bmm(proj.to(dtype).t().expand(n, -1, -1), pixels).view(n * k, cout, h, w)
    y, xx = _sampling_positions(offset, kernel, padding, dilation)  # [n, Ho, Wo, K] each
    # As torchvision: nothing is sampled (value and gradient 0) unless -1 < y < H and -1 < x < W,
    # so positions beyond [-1, H] change nothing when limited to it; a non-finite offset (a
    # diverging model) becomes such a position and samples nothing, so the loss reports the NaN.
    y = torch.where(y >= -1, y, -1.0).clamp_max(h)
    xx = torch.where(xx >= -1, xx, -1.0).clamp_max(w)
    grid = torch.stack(((2 * xx + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1).to(dtype)
    grid = grid.permute(0, 3, 1, 2, 4).reshape(n * k, ho, wo, 2)  # tap k of sample i is batch i*K + k
    taps = F.grid_sample(table, grid, padding_mode="zeros", align_corners=False)
    return taps.view(n, k, cout, ho, wo).sum(1).to(out_dtype)


def _gathered_chunk(
    x: Tensor,
    offset: Tensor,
    proj: Tensor,
    kernel: tuple[int, int],
    cout: int,
    padding: int,
    dilation: int,
) -> Tensor:
    """The inference path. x: [n, C, H, W], offset: [n, 2K, Ho, Wo], proj: [C, K*Cout] -> [n, Cout, Ho, Wo]
    (a channels-last view)."""
    n, c, h, w = x.shape
    ho, wo = offset.shape[-2:]
    k = kernel[0] * kernel[1]
    # Zero border (1 before, 2 after): every corner of a position limited to [-1, H] x [-1, W]
    # lands in the table, and corners outside the image read zeros (no bias, so x @ proj = 0).
    hp, wp = h + 3, w + 3
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 2, 1, 2))  # [n, H+3, W+3, C]
    table = (padded.reshape(n * hp * wp, c) @ proj).view(n * hp * wp * k, cout)  # row (pixel*K + tap)
    y, xx = _sampling_positions(offset, kernel, padding, dilation)  # [n, Ho, Wo, K] each
    # Zero-padded bilinear sampling is exactly torchvision's bilinear_interpolate (0 unless
    # -1 < y < H and -1 < x < W): beyond [-1, H] every corner is outside the image, so limiting
    # positions to [-1, H] keeps the values (0). A non-finite offset (a diverging model) samples
    # nothing, like a far-away one: a NaN turned into an index would make embedding_bag fail.
    # In-place ops: nothing here needs a gradient, and this part is memory-bound.
    y0, x0 = y.nan_to_num_(-1.0).clamp_(-1, h).floor(), xx.nan_to_num_(-1.0).clamp_(-1, w).floor()
    ly, lx = y.sub_(y0), xx.sub_(x0)
    wy = torch.stack((1 - ly, ly), dim=-1)
    wx = torch.stack((1 - lx, lx), dim=-1)
    # Corner order (y0, x0), (y0, x1), (y1, x0), (y1, x1): weights hh*hw, hh*lw, lh*hw, lh*lw.
    weights = (wy[..., :, None] * wx[..., None, :]).reshape(-1, k * 4)

    # Table row of the top-left corner, (sample*Hp*Wp + (y0+1)*Wp + (x0+1))*K + tap, built in
    # float (exact below 2^24, which the chunking keeps to) and converted once.
    if n * hp * wp * k >= 1 << 24:  # a single huge image: float32 would round the row numbers
        y0, x0 = y0.double(), x0.double()
    first = torch.arange(n, device=x.device, dtype=y0.dtype)[:, None, None, None] * (hp * wp * k)
    tap = torch.arange(k, device=x.device, dtype=y0.dtype)
    row = (y0 * (wp * k) + x0 * k) + (first + (wp + 1) * k + tap)
    corner = torch.tensor([0, 1, wp, wp + 1], device=x.device, dtype=y0.dtype) * k
    index = (row[..., None] + corner).reshape(-1, k * 4).to(torch.int32)
    out = F.embedding_bag(index, table, per_sample_weights=weights.to(table.dtype), mode="sum")
    return out.view(n, ho, wo, cout).permute(0, 3, 1, 2)


def _sampling_positions(
    offset: Tensor, kernel: tuple[int, int], padding: int, dilation: int
) -> tuple[Tensor, Tensor]:
    """Where each tap samples, as torchvision computes it: (out - pad) + tap*dilation + offset.

    offset: [n, 2K, Ho, Wo] -> y, x: [n, Ho, Wo, K]
    """
    n, _, ho, wo = offset.shape
    kh, kw = kernel
    # At least float32: positions and table rows are integers far above half precision's 2048.
    dev, dt = offset.device, torch.promote_types(offset.dtype, torch.float32)
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dilation).repeat_interleave(kw)  # [K]
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dilation).repeat(kh)
    base_y = torch.arange(ho, device=dev, dtype=dt) - padding
    base_x = torch.arange(wo, device=dev, dtype=dt) - padding
    off = offset.permute(0, 2, 3, 1).reshape(n, ho, wo, kh * kw, 2)  # free for channels-last offsets
    # (contiguous: broadcasting against the strided offset slices may pick another layout)
    y = ((base_y[:, None, None] + tap_y) + off[..., 0]).contiguous()
    x = ((base_x[None, :, None] + tap_x) + off[..., 1]).contiguous()
    return y, x


class DeformConv2d(nn.Module):
    """A deformable convolution without bias (stride 1); offsets come from the caller."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, *, padding: int = 1
    ) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        """x: [N, Cin, H, W]; offset: [N, 2*k*k, H, W] -> [N, Cout, H, W]"""
        return deform_conv2d(x, offset, self.weight, padding=self.padding)

    def extra_repr(self) -> str:
        cout, cin, k, _ = self.weight.shape
        return f"{cin}, {cout}, kernel_size={k}, padding={self.padding}, bias=False"
