"""The set criterion: losses between matched instance sequences and the ground truth.

Every (instance, frame) pair is one supervised "box" (vistr-facts section 4.2):

- ``loss_ce``: cross-entropy over all (slot, frame) pairs. Slots matched to a target take its class
  in the frames where it exists; everything else (unmatched slots, and frames where a matched
  instance is absent) is "no object", down-weighted by ``eos_coef``. Weighted mean, as in DETR.
- ``loss_bbox`` (L1) and ``loss_giou`` (1 - GIoU) over the matched valid frames.
- ``loss_mask`` (sigmoid focal, mean over pixels per mask) and ``loss_dice`` over the matched valid
  frames, predictions upsampled bilinearly from H/4 to the clip's input size.
- The same class and box terms for each earlier decoder layer (``aux_outputs``), each with its own
  matching, named ``loss_ce_0``, ``loss_bbox_0``, ...
- ``loss_memory`` (not in the paper; weight 0 there, training-only): the class head read on every
  encoder memory token must give the classes under that token's cell (:func:`memory_class_loss`).
- ``loss_memory_box`` (likewise): the box head read on a token must give the box of the instance
  covering most of its cell (:func:`memory_box_loss`).

Box and mask terms are sums divided by the number of matched valid pairs; the CE sum is divided by
its total weight. Under data parallelism both normalizers are averaged over the ranks, so after DDP
averages the gradients a step equals one step on the combined batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from .config import TrainConfig
from .data.clip import ClipTargets
from .engine.distributed import global_mean
from .matcher import SequenceMatcher, build_matcher, matched_frames
from .model.deferred_masks import select_masks
from .ops.boxes import aligned_generalized_box_iou, box_cxcywh_to_xyxy

LOSS_TERMS = ("loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_memory", "loss_memory_box")
Pairs = tuple[Tensor, Tensor, Tensor, Tensor]


def classification_targets(
    pairs: Pairs, targets: Sequence[ClipTargets], shape: torch.Size, no_object: int
) -> Tensor:
    """[B, n, T] int64 class per (clip, slot, frame): the matched target's label at its valid
    frames, ``no_object`` elsewhere."""
    batch, slot, frame, instance = pairs
    classes = torch.full(shape, no_object, dtype=torch.int64, device=slot.device)
    if slot.numel():
        labels = torch.cat([t.labels for t in targets]).to(slot.device)
        offsets = torch.tensor([0] + [t.num_instances for t in targets][:-1], device=slot.device).cumsum(0)
        classes[batch, slot, frame] = labels[offsets[batch] + instance]
    return classes


def label_loss(pred_logits: Tensor, target_classes: Tensor, class_weight: Tensor) -> Tensor:
    """Weighted cross-entropy, ``sum_k w[y_k] * CE_k / sum_k w[y_k]`` over every (clip, slot, frame).

    Args:
        pred_logits: [B, n, T, K+1].
        target_classes: [B, n, T] int64.
        class_weight: [K+1], 1 for real classes and ``eos_coef`` for no-object.
    """
    logits = pred_logits.float().flatten(0, 2)
    classes = target_classes.flatten()
    total = F.cross_entropy(logits, classes, weight=class_weight, reduction="sum")
    return total / global_mean(class_weight[classes].sum()).clamp(min=1e-6)


def box_losses(src_boxes: Tensor, tgt_boxes: Tensor, num_pairs: Tensor) -> tuple[Tensor, Tensor]:
    """L1 and 1 - GIoU of matched cxcywh boxes [P, 4], summed and divided by ``num_pairs``."""
    src_boxes, tgt_boxes = src_boxes.float(), tgt_boxes.float()
    l1 = F.l1_loss(src_boxes, tgt_boxes, reduction="sum")
    giou = aligned_generalized_box_iou(box_cxcywh_to_xyxy(src_boxes), box_cxcywh_to_xyxy(tgt_boxes))
    return l1 / num_pairs, (1 - giou).sum() / num_pairs


def focal_loss(logits: Tensor, targets: Tensor, num_pairs: Tensor, *, alpha: float, gamma: float) -> Tensor:
    """Sigmoid focal loss of masks [P, H, W]: mean over pixels per mask, summed, / ``num_pairs``."""
    loss = sigmoid_focal_loss(
        logits.flatten(1), targets.flatten(1), alpha=alpha, gamma=gamma, reduction="none"
    )
    return loss.mean(1).sum() / num_pairs


def dice_loss(logits: Tensor, targets: Tensor, num_pairs: Tensor) -> Tensor:
    """``1 - (2 |p t| + 1) / (|p| + |t| + 1)`` per mask [P, H, W] on sigmoid probabilities,
    summed, / ``num_pairs``."""
    prob = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (prob * targets).sum(1) + 1
    denominator = prob.sum(1) + targets.sum(1) + 1
    return (1 - numerator / denominator).sum() / num_pairs


def mask_losses(
    pred_masks: Tensor,
    pairs: Pairs,
    targets: Sequence[ClipTargets],
    num_pairs: Tensor,
    *,
    alpha: float,
    gamma: float,
) -> tuple[Tensor, Tensor]:
    """Focal and dice losses of the matched (slot, frame) masks.

    Each clip's predictions are cropped to its unpadded area (``ceil(h/4) x ceil(w/4)``) and
    upsampled bilinearly (``align_corners=False``) to its unpadded size ``(h, w)``, where its
    target masks live. For one unpadded clip this is the reference's computation (upsampling to
    the input size); with padding, padding pixels are simply not supervised, so a clip's losses do
    not depend on what it is batched with.

    Args:
        pred_masks: [B, n, T, ceil(H/4), ceil(W/4)] logits, or deferred masks (computed here for
            the matched slots only).
    """
    batch, slot, frame, instance = pairs
    if slot.numel() == 0:
        # Keep the mask head in the graph (DDP expects a gradient for every parameter).
        first = torch.zeros(1, dtype=torch.int64)  # clip 0, slot 0
        zero = select_masks(pred_masks, first, first).sum() * 0
        return zero, zero
    # Each matched (clip, slot) sequence once: [S, T, h4, w4]; pair k reads row ``sequence[k]``.
    slots_per_clip = pred_masks.shape[1]
    sequences, sequence = torch.unique(batch * slots_per_clip + slot, return_inverse=True)
    sequence_masks = select_masks(pred_masks, sequences // slots_per_clip, sequences % slots_per_clip)
    focal, dice = [], []
    for b, target in enumerate(targets):
        keep = batch == b
        if not keep.any():
            continue
        height, width = target.size
        src = sequence_masks[sequence[keep], frame[keep], : -(-height // 4), : -(-width // 4)].float()
        src = F.interpolate(src[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        tgt = target.masks[instance[keep], frame[keep]].to(src.device, src.dtype)
        focal.append(focal_loss(src, tgt, num_pairs, alpha=alpha, gamma=gamma))
        dice.append(dice_loss(src, tgt, num_pairs))
    return torch.stack(focal).sum(), torch.stack(dice).sum()


def _cell_means(maps: Tensor, stride: int) -> Tensor:
    """[C, H, W] or [N, C, H, W] -> [..., ceil(H/stride), ceil(W/stride)]: each token cell's mean,
    zero-padded at the bottom and right (a cell past the clip's edge averages its padding in as zeros)."""
    height, width = maps.shape[-2:]
    rows, cols = -(-height // stride), -(-width // stride)
    padded = F.pad(maps, (0, cols * stride - width, 0, rows * stride - height))
    return F.avg_pool2d(padded, stride)


def memory_class_targets(target: ClipTargets, stride: int, num_classes: int) -> Tensor:
    """Soft class targets of a clip's encoder token grid.

    Cell (y, x) of frame t covers pixels [stride*y, stride*(y+1)) x [stride*x, stride*(x+1)) of the
    unpadded clip; its target is the share of those pixels under each class (index ``num_classes``
    = background; a pixel under several instances counts once per class). Cells past the clip's
    edge average over the pixels they do hold.

    Returns [T, ceil(H/stride), ceil(W/stride), K+1], each cell summing to 1.
    """
    height, width = target.size
    frames = target.masks.shape[1]
    cover = torch.zeros(num_classes + 1, frames, height, width, device=target.masks.device)
    for label, masks in zip(target.labels.tolist(), target.masks, strict=True):
        cover[label] = torch.maximum(cover[label], masks.float())
    cover[num_classes] = 1 - cover[:num_classes].amax(0)
    share = _cell_means(cover, stride)  # [K+1, T, rows, cols]; the padding adds to no class
    return (share / share.sum(0, keepdim=True)).permute(1, 2, 3, 0)


def memory_class_loss(
    memory_logits: Tensor, targets: Sequence[ClipTargets], class_weight: Tensor, stride: int
) -> Tensor:
    """Dense supervision of the encoder memory (training only; the model's outputs keep their meaning).

    Why: trained from scratch on several objects, VisTR's encoder learns within a few hundred
    steps to overwrite its tokens with position-only content (a linear probe on the memory then
    tells an object's class at its cell in 5 % of cells, against 55 % at initialization), and the
    decoder, with nothing to tell videos apart, predicts the same slots for every video. Asking
    the class head to read each token's cell keeps "what is here" in the memory.

    ``sum w_c q_c (-log p_c) / sum w_c q_c`` over every valid cell of every clip, with q the soft
    targets of :func:`memory_class_targets` and w the criterion's class weights (``eos_coef`` for
    background), like ``loss_ce``.

    Args:
        memory_logits: [B, T, h, w, K+1] (clips smaller than the batch's grid are read on their own).
        stride: pixels per token cell.
    """
    total, weight = [], []
    for b, target in enumerate(targets):
        share = memory_class_targets(target, stride, class_weight.shape[0] - 1)
        rows, cols = share.shape[1:3]
        log_prob = F.log_softmax(memory_logits[b, :, :rows, :cols].float(), dim=-1)
        weighted = share * class_weight
        total.append(-(weighted * log_prob).sum())
        weight.append(weighted.sum())
    return torch.stack(total).sum() / global_mean(torch.stack(weight).sum()).clamp(min=1e-6)


def memory_box_targets(target: ClipTargets, stride: int) -> tuple[Tensor, Tensor]:
    """Per token cell, the box of the instance that covers at least half of the cell's pixels.

    Returns boxes [T, rows, cols, 4] (cxcywh, that frame's box of the instance) and keep
    [T, rows, cols] bool (cells with such an instance), rows/cols = ceil(H/stride), ceil(W/stride).
    """
    height, width = target.size
    frames = target.masks.shape[1]
    pixels = _cell_means(target.masks.new_ones(1, height, width, dtype=torch.float32), stride)
    rows, cols = pixels.shape[-2:]
    if target.num_instances == 0:
        empty = torch.zeros(frames, rows, cols, dtype=torch.bool, device=target.masks.device)
        return target.boxes.new_zeros(frames, rows, cols, 4), empty
    share = _cell_means(target.masks.float(), stride) / pixels  # [N, T, rows, cols]
    best_share, best = share.max(0)  # [T, rows, cols]
    boxes = target.boxes.float().transpose(0, 1)  # [T, N, 4]
    picked = torch.gather(boxes, 1, best.flatten(1)[..., None].expand(-1, -1, 4))
    return picked.view(*best.shape, 4), best_share >= 0.5


def memory_box_loss(memory_boxes: Tensor, targets: Sequence[ClipTargets], stride: int) -> Tensor:
    """Dense box supervision of the encoder memory (training only): L1 + (1 - GIoU) between the box
    head read on each token and the box of the instance covering its cell
    (:func:`memory_box_targets`), averaged over those cells.

    Why: with the class loss alone, the tokens of two objects of one class look alike; with a box
    per token they differ, so a slot can attend to one of them.

    Args:
        memory_boxes: [B, T, h, w, 4] cxcywh in [0, 1].
    """
    total, count = [], []
    for b, target in enumerate(targets):
        boxes, keep = memory_box_targets(target, stride)
        rows, cols = boxes.shape[1:3]
        pred = memory_boxes[b, :, :rows, :cols][keep.to(memory_boxes.device)].float()
        tgt = boxes[keep].to(pred.device)
        l1 = F.l1_loss(pred, tgt, reduction="sum")
        giou = aligned_generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(tgt))
        total.append(l1 + (1 - giou).sum())
        count.append(float(keep.sum()))
    normalizer = global_mean(torch.tensor(sum(count), device=memory_boxes.device)).clamp(min=1)
    return torch.stack(total).sum() / normalizer


def num_valid_pairs(targets: Sequence[ClipTargets], device: torch.device) -> Tensor:
    """The normalizer: valid (instance, frame) pairs in the batch, averaged over ranks, >= 1."""
    count = torch.tensor(float(sum(int(t.valid.sum()) for t in targets)), device=device)
    return global_mean(count).clamp(min=1)


class SetCriterion(nn.Module):
    """Matching plus the weighted loss terms; ``forward`` returns every term and their total.

    Args:
        num_classes: K real classes (index K is no object).
        matcher: the sequence matcher, re-run for every auxiliary decoder layer.
        weights: loss term name (``LOSS_TERMS``) -> weight; the aux terms reuse them.
        eos_coef: the CE weight of the no-object class.
        memory_stride: pixels per encoder token, for ``loss_memory`` (computed only when its
            weight is positive).
    """

    def __init__(
        self,
        num_classes: int,
        matcher: SequenceMatcher,
        *,
        weights: Mapping[str, float],
        eos_coef: float = 0.1,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        memory_stride: int = 32,
    ) -> None:
        super().__init__()
        unknown = set(weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; expected {LOSS_TERMS}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = {name: float(weights.get(name, 0.0)) for name in LOSS_TERMS}
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.memory_stride = memory_stride
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight)

    def forward(self, outputs: Mapping[str, Tensor], targets: Sequence[ClipTargets]) -> dict[str, Tensor]:
        """
        Args:
            outputs: the model's dict (``pred_logits``, ``pred_boxes``, ``pred_masks``, optional
                ``aux_outputs``).
            targets: B clips' targets on the outputs' device.
        Returns:
            ``loss_ce``, ``loss_bbox``, ``loss_giou``, ``loss_mask``, ``loss_dice``, the aux terms
            ``loss_ce_0`` ..., ``loss_memory`` if weighted, and ``loss``, the weighted total (scalars).
        """
        num_pairs = num_valid_pairs(targets, outputs["pred_logits"].device)
        pairs = matched_frames(self.matcher(outputs, targets), targets)
        losses = self._sequence_losses(outputs, targets, pairs, num_pairs)
        if "pred_masks" in outputs:
            losses["loss_mask"], losses["loss_dice"] = mask_losses(
                outputs["pred_masks"], pairs, targets, num_pairs,
                alpha=self.focal_alpha, gamma=self.focal_gamma,
            )  # fmt: skip
        if self.weights["loss_memory"] > 0 and "memory_logits" in outputs:
            losses["loss_memory"] = memory_class_loss(
                outputs["memory_logits"], targets, self.class_weight, self.memory_stride
            )
        if self.weights["loss_memory_box"] > 0 and "memory_boxes" in outputs:
            losses["loss_memory_box"] = memory_box_loss(outputs["memory_boxes"], targets, self.memory_stride)
        for layer, aux in enumerate(outputs.get("aux_outputs", ())):
            aux_pairs = matched_frames(self.matcher(aux, targets), targets)
            for name, value in self._sequence_losses(aux, targets, aux_pairs, num_pairs).items():
                losses[f"{name}_{layer}"] = value
        losses["loss"] = sum(self._weight(name) * value for name, value in losses.items())
        return losses

    def _sequence_losses(
        self, outputs: Mapping[str, Tensor], targets: Sequence[ClipTargets], pairs: Pairs, num_pairs: Tensor
    ) -> dict[str, Tensor]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        classes = classification_targets(pairs, targets, logits.shape[:3], self.num_classes)
        tgt_boxes = _matched_target_boxes(pairs, targets, boxes.device)
        batch, slot, frame, _ = pairs
        l1, giou = box_losses(boxes[batch, slot, frame], tgt_boxes, num_pairs)
        return {"loss_ce": label_loss(logits, classes, self.class_weight), "loss_bbox": l1, "loss_giou": giou}

    def _weight(self, name: str) -> float:
        base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
        return self.weights[base]


def _matched_target_boxes(pairs: Pairs, targets: Sequence[ClipTargets], device: torch.device) -> Tensor:
    batch, _, frame, instance = pairs
    if batch.numel() == 0:
        return torch.zeros(0, 4, device=device)
    parts = [t.boxes[instance[batch == b], frame[batch == b]] for b, t in enumerate(targets)]
    return torch.cat(parts).to(device)


def build_criterion(num_classes: int, config: TrainConfig, *, memory_stride: int = 32) -> SetCriterion:
    """The criterion (and its matcher) with the weights of ``config``; ``memory_stride``: the
    model's pixels per encoder token (``VisTR.memory_stride``)."""
    weights = {
        "loss_ce": config.loss_ce,
        "loss_bbox": config.loss_bbox,
        "loss_giou": config.loss_giou,
        "loss_mask": config.loss_mask,
        "loss_dice": config.loss_dice,
        "loss_memory": config.loss_memory,
        "loss_memory_box": config.loss_memory_box,
    }
    return SetCriterion(
        num_classes,
        build_matcher(config),
        weights=weights,
        eos_coef=config.eos_coef,
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        memory_stride=memory_stride,
    )
