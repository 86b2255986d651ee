"""ResNet backbone with frozen BatchNorm, returning the four stages the mask head needs.

The module tree mirrors the reference so official checkpoints load without renaming:
``backbone.0.body.{conv1,bn1,layer1..4}`` is the ResNet, ``backbone.1`` the (parameter-free)
position encoding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from ..ops.autocast_state import current_autocast
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
        # The dtype a frozen backbone computes in when no autocast is active (None: the input's).
        # A speed setting of the run, not of the model (not in the state dict): the trainer sets
        # it from TrainConfig.backbone_precision; the features come back in the input's dtype.
        self.compute_dtype: torch.dtype | None = None
        self._folded = FoldedWeights()

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
        Under autocast the features are in autocast's dtype, else in ``images``' dtype.
        """
        out = []
        for feat in self._stages(images):
            mask = None
            if pad_mask is not None:
                mask = F.interpolate(pad_mask[None].float(), size=feat.shape[-2:]).to(torch.bool)[0]
            out.append((feat, mask))
        return out

    def _stages(self, images: Tensor) -> list[Tensor]:
        """layer1..layer4 of ``images`` [N, 3, H, W]; see :meth:`forward` for the dtype."""
        images = images.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.body.parameters()):
            # trains: the folded weights are recomputed each time so gradients reach the convs
            return [feat for (feat,) in _resnet_stages(self.body, [images])]
        device_type = images.device.type
        autocast_on, autocast_dtype = current_autocast(device_type)
        dtype = autocast_dtype if autocast_on else (self.compute_dtype or images.dtype)
        # Convolutions in `dtype` with the folded weights cast once: what autocast would compute,
        # without casting every weight on every forward.
        with torch.autocast(device_type, enabled=False) if autocast_on else contextlib.nullcontext():
            conv_bn = self._folded.conv_bn(self.body, dtype)
            stages = _resnet_stages(self.body, [images.to(dtype)], conv_bn=conv_bn)
        return [feat if autocast_on else feat.to(images.dtype) for (feat,) in stages]


class FoldedWeights:
    """Each conv of a frozen ResNet with its frozen BatchNorm folded in, in one dtype, kept.

    The folded weights change only when a weight or a BN statistic does (loading a checkpoint,
    ``calibrate_batchnorm``, ``.to()``): the cache is keyed on every parameter's and buffer's storage
    and version counter, so any in-place change or move recomputes it. Saves, per forward, a multiply
    of every conv weight and, in bf16, a cast of it (the profiler put the fp32 fold at about 7 ms of
    a 0.55 s ``tiny`` training step).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._weights: dict[int, tuple[Tensor, Tensor]] = {}

    def conv_bn(self, body: nn.Module, dtype: torch.dtype) -> Callable[..., list[Tensor]]:
        """A ``conv_bn`` for :func:`_resnet_stages` running every conv in ``dtype``."""
        key = _version_key(body, dtype)
        if key is None or key != self._key:
            self._weights = {}
        self._key = key

        def conv_bn(xs: list[Tensor], conv: nn.Conv2d, bn: FrozenBatchNorm2d, *, relu: bool) -> list[Tensor]:
            folded = self._weights.get(id(conv))
            if folded is None:
                with torch.no_grad():
                    weight, bias = _fold(conv, bn)
                    # channels-last like the activations: oneDNN would otherwise copy the weight
                    # into that layout on every call (same values, measured: one copy per conv)
                    weight = weight.to(dtype).contiguous(memory_format=torch.channels_last)
                    folded = self._weights[id(conv)] = (weight, bias.to(dtype))
            return [_conv(x, conv, *folded, relu=relu) for x in xs]

        return conv_bn


def _version_key(body: nn.Module, dtype: torch.dtype) -> tuple | None:
    """What the folded weights depend on; None where it cannot be read (inference tensors keep no
    version counter), which disables the cache."""
    try:
        tensors = tuple((t.data_ptr(), t._version) for t in (*body.parameters(), *body.buffers()))
    except RuntimeError:
        return None
    return dtype, torch.is_inference_mode_enabled(), tensors


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
    return _conv(x, conv, *_fold(conv, bn), relu=relu)


def _fold(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> tuple[Tensor, Tensor]:
    """(weight [Cout, Cin, k, k], bias [Cout]) of ``conv`` followed by ``bn``."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    shift = bn.bias - bn.running_mean * scale
    return conv.weight * scale[:, None, None, None], shift


def _conv(x: Tensor, conv: nn.Conv2d, weight: Tensor, bias: Tensor, *, relu: bool) -> Tensor:
    y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation)
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
