"""ResNet backbone with frozen BatchNorm, returning the four stages the mask head needs.

The module tree mirrors the reference so official checkpoints load without renaming:
``backbone.0.body.{conv1,bn1,layer1..4}`` is the ResNet, ``backbone.1`` the (parameter-free)
position encoding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from .position_encoding import PositionEmbeddingSine3D

# Stage name -> output key; the mask head uses all four (layer1 /4 ... layer4 /32).
_RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


class Backbone(nn.Module):
    """A torchvision ResNet (weights=None) with FrozenBatchNorm2d (eps 1e-5).

    The stem and layer1 are frozen (``requires_grad=False``), like the reference: only layer2-4
    train. BatchNorm statistics and affine terms are buffers, so they never train.
    """

    def __init__(self, name: str, *, dilation: bool = False) -> None:
        super().__init__()
        basic = name in ("resnet18", "resnet34")
        resnet = getattr(torchvision.models, name)(
            weights=None,
            replace_stride_with_dilation=[False, False, dilation and not basic],
            norm_layer=FrozenBatchNorm2d,
        )
        if dilation and basic:
            _dilate_basic_layer4(resnet.layer4)
        for pname, param in resnet.named_parameters():
            if not any(stage in pname for stage in ("layer2", "layer3", "layer4")):
                param.requires_grad_(False)
        self.body = IntermediateLayerGetter(resnet, return_layers=_RETURN_LAYERS)
        self.num_channels = 512 if basic else 2048
        # Pixels per layer4 cell: the transformer's token grid (DC5 halves it).
        self.stride = 16 if dilation else 32
        # Channels of layer3, layer2, layer1: the FPN inputs of the mask head, coarse to fine.
        self.fpn_channels = (256, 128, 64) if basic else (1024, 512, 256)

    @torch.no_grad()
    def calibrate_batchnorm(self, images: list[Tensor]) -> None:
        """Data-dependent initialization for a backbone without pretrained weights.

        A randomly initialized ResNet with frozen BatchNorm at its default statistics (mean 0,
        var 1, i.e. the identity) gives features dominated by a per-channel constant that is the
        same for every image. This sets each BN, stage by stage, to the batch statistics of its
        conv's output over ``images`` (weight 1, bias 0), so every layer's output is zero-mean and
        unit-variance on real frames: what BatchNorm would have learned in training mode.

        Args:
            images: normalized frames, each [N_i, 3, H_i, W_i] (sizes may differ).
        """
        _resnet_stages(self.body, images, conv_bn=_calibrated)

    def forward(self, images: Tensor, pad_mask: Tensor | None) -> list[tuple[Tensor, Tensor | None]]:
        """images: [N, 3, H, W]; pad_mask: [N, H, W] bool (True = padding) or None.

        Returns ``[(features, mask)]`` for layer1..layer4, features [N, C_l, H_l, W_l]
        (channels-last memory) and the padding mask resized (nearest) to [N, H_l, W_l], or None.
        """
        out = []
        stages = _resnet_stages(self.body, [images.contiguous(memory_format=torch.channels_last)])
        for (feat,) in stages:
            mask = None
            if pad_mask is not None:
                mask = F.interpolate(pad_mask[None].float(), size=feat.shape[-2:]).to(torch.bool)[0]
            out.append((feat, mask))
        return out


def _dilate_basic_layer4(layer4: nn.Sequential) -> None:
    """DC5 for BasicBlock ResNets, which torchvision refuses to build (the a-trous rewiring it
    applies to Bottleneck stages): the first block's conv and shortcut drop their stride, and every
    3x3 conv after that stride gets dilation 2 and padding 2. The result is exact: the stride-16
    output sampled at even positions equals the stride-32 output. Weights are unchanged."""
    first = layer4[0]
    first.conv1.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    convs = [first.conv2] + [conv for block in list(layer4)[1:] for conv in (block.conv1, block.conv2)]
    for conv in convs:
        conv.dilation, conv.padding = (2, 2), (2, 2)


def _calibrated(xs: list[Tensor], conv: nn.Conv2d, bn: FrozenBatchNorm2d, *, relu: bool) -> list[Tensor]:
    """Set ``bn`` to the pooled per-channel statistics of ``conv``'s outputs over ``xs`` (weight 1,
    bias 0) and return those outputs normalized (and ReLU'd)."""
    ys = [F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation) for x in xs]
    count = sum(y[:, 0].numel() for y in ys)
    mean = sum(y.sum((0, 2, 3), dtype=torch.float64) for y in ys) / count
    var = sum(((y - mean[:, None, None]) ** 2).sum((0, 2, 3)) for y in ys) / count
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    bn.weight.fill_(1.0)
    bn.bias.zero_()
    scale = (bn.running_var + bn.eps).rsqrt()[:, None, None]
    shift = bn.running_mean[:, None, None]
    return [F.relu_(y.sub_(shift).mul_(scale)) if relu else y.sub_(shift).mul_(scale) for y in ys]


def _folded(xs: list[Tensor], conv: nn.Conv2d, bn: FrozenBatchNorm2d, *, relu: bool) -> list[Tensor]:
    return [_conv_bn(x, conv, bn, relu=relu) for x in xs]


def _conv_bn(x: Tensor, conv: nn.Conv2d, bn: FrozenBatchNorm2d, *, relu: bool) -> Tensor:
    """conv then frozen BN as ONE conv: BN is a fixed per-channel affine map, so it folds into the
    conv's weight and bias exactly (gradients still reach conv.weight through the product)."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    shift = bn.bias - bn.running_mean * scale
    y = F.conv2d(x, conv.weight * scale[:, None, None, None], shift, conv.stride, conv.padding, conv.dilation)
    return F.relu_(y) if relu else y


def _resnet_stages(
    body: nn.Module, xs: list[Tensor], conv_bn: Callable[..., list[Tensor]] = _folded
) -> list[list[Tensor]]:
    """torchvision's ResNet forward (BasicBlock or Bottleneck) over each of ``xs`` [N_i, 3, H_i, W_i].

    ``conv_bn(xs, conv, bn, relu=...)`` runs every conv with its BN: by default folded into one
    conv (:func:`_conv_bn`); :func:`_calibrated` sets the BN from the outputs first. Channels-last
    input keeps oneDNN from reordering around every conv. Returns layer1..layer4, each a list like ``xs``.
    """
    xs = [body.maxpool(x) for x in conv_bn(xs, body.conv1, body.bn1, relu=True)]
    stages = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(body, name):
            out = conv_bn(xs, block.conv1, block.bn1, relu=True)
            if hasattr(block, "conv3"):  # Bottleneck
                out = conv_bn(out, block.conv2, block.bn2, relu=True)
                out = conv_bn(out, block.conv3, block.bn3, relu=False)
            else:  # BasicBlock
                out = conv_bn(out, block.conv2, block.bn2, relu=False)
            identity = xs if block.downsample is None else conv_bn(xs, *block.downsample, relu=False)
            # in place: conv outputs are not needed by autograd
            xs = [F.relu_(o.add_(i)) for o, i in zip(out, identity, strict=True)]
        stages.append(xs)
    return stages


class Joiner(nn.Sequential):
    """``[0]`` the backbone, ``[1]`` the 3-D position encoding (kept together for the key names)."""

    def __init__(self, backbone: Backbone, position_embedding: PositionEmbeddingSine3D) -> None:
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels
        self.fpn_channels = backbone.fpn_channels
        self.stride = backbone.stride
