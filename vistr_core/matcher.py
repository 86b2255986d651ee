"""Instance sequence matching: one Hungarian assignment per video between the n predicted instance
sequences and the N ground-truth sequences (VisTR section 3.2).

The cost of assigning prediction slot i to target j, averaged over the frames t where target j
exists (``valid[j, t]``):

    C[i, j] = cost_class * -mean_t p_i,t(label_j)
            + cost_bbox  *  mean_t,coords |b_i,t - b_j,t|
            + cost_iou   * -mean_t IoU(b_i,t, b_j,t)

and, with ``cost_mask`` > 0 (not in the paper; training-only), ``+ cost_mask * mean_t dice(m_i,t, m_j,t)``
on the mask probabilities at the model's 1/4 resolution (:func:`mask_dice_cost`).

Differences from the reference (vistr-facts section 4.1), on purpose:
- the means run over the target's valid frames, not all T (absent frames carry a dummy label 0 and
  a zero box there, which would pull the matching towards whatever predicts class 0 / tiny boxes);
- the valid frames used downstream are those of the *matched* target (``tgt_idx``); the reference
  reads those of the j-th target instead, which is wrong whenever the assignment is not the identity;
- any number of slots n (the reference hard-codes 10) and any batch size.

The cost tensor is computed once for the whole batch; only the assignments run per video.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from .config import TrainConfig
from .data.clip import ClipTargets
from .model.deferred_masks import all_masks
from .ops.boxes import aligned_box_iou, box_cxcywh_to_xyxy

MatchIndices = list[tuple[Tensor, Tensor]]


def sequence_cost(
    pred_logits: Tensor,
    pred_boxes: Tensor,
    labels: Tensor,
    boxes: Tensor,
    valid: Tensor,
    *,
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_iou: float = 2.0,
) -> Tensor:
    """The matching cost of every predicted sequence against every target sequence.

    Args:
        pred_logits: [B, n, T, K+1] class logits (last = no object).
        pred_boxes: [B, n, T, 4] cxcywh in [0, 1].
        labels: [N] target class indices (all videos' targets concatenated).
        boxes: [N, T, 4] target cxcywh.
        valid: [N, T] bool, the target exists in that frame.
    Returns:
        [B, n, N] float32 cost (entries pairing a video with another video's targets are computed
        too and ignored by the caller: cheaper than ragged indexing).
    """
    prob = pred_logits.float().softmax(-1)  # [B, n, T, K+1]
    pred_boxes = pred_boxes.float()
    boxes = boxes.float()
    weight = valid.float()  # [N, T]
    frames = weight.sum(-1).clamp(min=1)  # [N]

    target_prob = prob[..., labels]  # [B, n, T, N]
    class_term = -torch.einsum("bitj,jt->bij", target_prob, weight)

    batch, slots, num_frames, _ = pred_boxes.shape
    # cdist over (frame) batches: [T, B*n, 4] vs [T, N, 4] -> [T, B*n, N], summed over coords.
    flat = pred_boxes.permute(2, 0, 1, 3).reshape(num_frames, batch * slots, 4)
    l1 = torch.cdist(flat, boxes.transpose(0, 1).contiguous(), p=1)
    l1 = l1.reshape(num_frames, batch, slots, -1).permute(1, 2, 3, 0)  # [B, n, N, T]
    bbox_term = (l1 * weight).sum(-1) / 4

    iou = aligned_box_iou(
        box_cxcywh_to_xyxy(pred_boxes)[:, :, None], box_cxcywh_to_xyxy(boxes)[None, None]
    )  # [B, n, N, T]
    iou_term = -(iou * weight).sum(-1)

    cost = cost_class * class_term + cost_bbox * bbox_term + cost_iou * iou_term
    return cost / frames


def mask_dice_cost(pred_masks: Tensor, target: ClipTargets) -> Tensor:
    """Dice cost of one clip's predicted mask sequences against its targets, over valid frames.

    Predictions are cropped to the clip's unpadded 1/4 grid (``ceil(H/4) x ceil(W/4)``) and the
    target masks area-averaged onto it, so the cost does not depend on batch padding.

    Args:
        pred_masks: [n, T, h4, w4] logits of one clip.
    Returns:
        [n, N] float32: ``mean over valid t of 1 - (2 |p t| + 1) / (|p| + |t| + 1)``.
    """
    height, width = target.size
    rows, cols = -(-height // 4), -(-width // 4)
    prob = pred_masks[:, :, :rows, :cols].float().sigmoid().flatten(2)  # [n, T, P]
    tgt = F.interpolate(target.masks.float(), size=(rows, cols), mode="area").flatten(2)  # [N, T, P]
    tgt = tgt.to(prob.device)
    numerator = 2 * torch.einsum("itp,jtp->ijt", prob, tgt) + 1
    denominator = prob.sum(-1)[:, None] + tgt.sum(-1)[None] + 1  # [n, N, T]
    weight = target.valid.to(prob.device).float()  # [N, T]
    dice = (1 - numerator / denominator) * weight
    return dice.sum(-1) / weight.sum(-1).clamp(min=1)


class SequenceMatcher(nn.Module):
    """Hungarian matching of instance sequences; holds the cost weights.

    ``forward(outputs, targets)`` returns, per video, ``(pred_idx [M], tgt_idx [M])`` int64 on the
    CPU with M = min(n, N): slot ``pred_idx[k]`` predicts target ``tgt_idx[k]`` (sorted by slot).
    """

    def __init__(
        self,
        *,
        cost_class: float = 1.0,
        cost_bbox: float = 5.0,
        cost_iou: float = 2.0,
        cost_mask: float = 0.0,
    ) -> None:
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_iou == 0:
            raise ValueError("at least one matching cost must be non-zero")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_iou = cost_iou
        self.cost_mask = cost_mask

    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor], targets: Sequence[ClipTargets]) -> MatchIndices:
        """
        Args:
            outputs: ``pred_logits [B, n, T, K+1]``, ``pred_boxes [B, n, T, 4]`` and, for the mask
                cost, ``pred_masks [B, n, T, h4, w4]`` (outputs without masks, such as the aux
                layers', are matched on class and box alone).
            targets: B clips' targets (``labels [N_b]``, ``boxes [N_b, T, 4]``, ``valid [N_b, T]``).
        """
        pred_logits, pred_boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if len(targets) != pred_logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {pred_logits.shape[0]} clips")
        sizes = [t.num_instances for t in targets]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        cost = sequence_cost(
            pred_logits,
            pred_boxes,
            torch.cat([t.labels for t in targets]),
            torch.cat([t.boxes for t in targets]),
            torch.cat([t.valid for t in targets]),
            cost_class=self.cost_class,
            cost_bbox=self.cost_bbox,
            cost_iou=self.cost_iou,
        )
        blocks = list(cost.split(sizes, dim=-1))
        if self.cost_mask > 0 and "pred_masks" in outputs:
            masks = all_masks(outputs["pred_masks"])
            blocks = [
                block + self.cost_mask * mask_dice_cost(masks[b], target)[None] if size else block
                for b, (block, target, size) in enumerate(zip(blocks, targets, sizes, strict=True))
            ]
        cost = torch.cat(blocks, dim=-1).cpu()
        # A diverged model gives NaN costs, which scipy rejects; match anyway so that the loss
        # (not the matcher) reports the divergence with the step and the term.
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
        indices: MatchIndices = []
        for b, block in enumerate(cost.split(sizes, dim=-1)):
            if sizes[b] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(block[b].numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices


def matched_frames(indices: MatchIndices, targets: Sequence[ClipTargets]) -> tuple[Tensor, ...]:
    """Expand sequence matches to the (slot, frame) pairs where the matched target exists.

    The valid frames come from the *matched* target ``tgt_idx[k]`` (the reference's bug was to take
    them from target k).

    Returns:
        ``(batch, slot, frame, instance)`` int64 tensors of length P = number of matched valid
        (instance, frame) pairs: prediction ``[batch, slot, frame]`` is supervised by
        ``targets[batch]`` instance ``instance`` in frame ``frame``.
    """
    parts: list[tuple[Tensor, ...]] = []
    for b, ((pred_idx, tgt_idx), target) in enumerate(zip(indices, targets, strict=True)):
        device = target.valid.device
        pred_idx, tgt_idx = pred_idx.to(device), tgt_idx.to(device)
        pair, frame = target.valid[tgt_idx].nonzero(as_tuple=True)  # [P_b] each
        parts.append((torch.full_like(pair, b), pred_idx[pair], frame, tgt_idx[pair]))
    if not parts:
        return tuple(torch.empty(0, dtype=torch.int64) for _ in range(4))
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def build_matcher(config: TrainConfig) -> SequenceMatcher:
    """The matcher with the cost weights of ``config``."""
    return SequenceMatcher(
        cost_class=config.cost_class,
        cost_bbox=config.cost_bbox,
        cost_iou=config.cost_iou,
        cost_mask=config.cost_mask,
    )
