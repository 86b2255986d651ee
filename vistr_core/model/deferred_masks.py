"""The mask branch of a training forward, run after matching for the slots that need it.

Training supervises masks only for the slots matched to a target (one to three of the n slots of
a clip of the synthetic sets), yet the mask branch (attention maps, FPN head, 3-D head) is computed
for all n, and its backward is most of a training step: 0.34 s of a 0.49 s forward + backward of
the ``tiny`` preset at n = 5 (2-core AMD EPYC), twice that at n = 10. ``VisTR.forward(...,
defer_masks=True)`` therefore returns a :class:`DeferredMasks` in place of ``pred_masks``; the
criterion matches on classes and boxes, then asks :meth:`DeferredMasks.select` for the matched
slots' masks. Every slot's masks depend on that slot's decoder output and its clip's features
alone, so the selected masks equal those the full forward would have given (the branch has no
dropout, so the random streams are untouched too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops.autocast_state import current_autocast

# (hs_last [B, m, T, d] of the chosen slots, clip rows [B] into the stored features) -> masks
# [B, m, T, h4, w4]; the stored features are those of the clips whose slots were chosen.
MaskBranch = Callable[[Tensor, Tensor], Tensor]


class _SlotMasks:
    """What both deferred kinds share: ``shape`` (B, n, T, h4, w4), ``select`` and, from them,
    ``materialize``."""

    shape: tuple[int, int, int, int, int]

    def select(self, clips: Tensor, slots: Tensor) -> Tensor:
        raise NotImplementedError

    def materialize(self) -> Tensor:
        """All masks, [B, n, T, h4, w4], as a forward without deferral returns them."""
        b, n = self.shape[:2]
        clips = torch.arange(b).repeat_interleave(n)
        slots = torch.arange(n).repeat(b)
        return self.select(clips, slots).view(self.shape)


class DeferredMasks(_SlotMasks):
    """Masks of a batch of B clips x n slots, computed on request.

    Args:
        branch: runs the mask branch for ``hs`` [B', m, T, d] of clips ``rows`` [B'] (indices into
            the batch this object stands for).
        hs: [B, n, T, d] the last decoder layer's output.
        mask_size: (h4, w4), the size of the masks ``VisTR.forward`` would return.
    """

    def __init__(self, branch: MaskBranch, hs: Tensor, mask_size: tuple[int, int]) -> None:
        self._branch = branch
        self._hs = hs
        self.mask_size = mask_size
        self._autocast = current_autocast(hs.device.type)  # (enabled, dtype) of the forward

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(B, n, T, h4, w4), the shape of the masks ``materialize`` returns."""
        b, n, t = self._hs.shape[:3]
        return (b, n, t, *self.mask_size)

    def select(self, clips: Tensor, slots: Tensor) -> Tensor:
        """The masks of slot ``slots[k]`` of clip ``clips[k]``: [M] int64, [M] int64 -> [M, T, h4, w4].

        Clips are run together with as many slots each as the clip with the most requests (the
        mask head shares a clip's per-frame features across its slots); the extra slots of
        clips with fewer requests repeat one of theirs and are dropped.
        """
        if clips.numel() == 0:
            return self._hs.new_zeros((0, self._hs.shape[2], *self.mask_size))
        clips, slots = clips.cpu(), slots.cpu()
        rows = torch.unique(clips)  # sorted
        clip_row = torch.searchsorted(rows, clips)
        counts = torch.bincount(clip_row, minlength=len(rows))
        width = int(counts.max())
        order = torch.argsort(clip_row, stable=True)
        column = torch.empty_like(clip_row)
        starts = torch.cumsum(counts, 0) - counts
        column[order] = torch.arange(len(order)) - starts.repeat_interleave(counts)
        table = slots[order][starts].repeat_interleave(width).view(-1, width)  # pad with each clip's first
        table[clip_row, column] = slots
        device = self._hs.device
        hs = self._hs[rows.to(device)[:, None], table.to(device)]  # [B', width, T, d]
        enabled, dtype = self._autocast
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled):
            masks = self._branch(hs, rows.to(device))  # [B', width, T, h4, w4]
        return masks[clip_row.to(device), column.to(device)]


class GroupedDeferredMasks(_SlotMasks):
    """:class:`DeferredMasks` of a batch run as size groups (clips padded to different extents):
    requests are dispatched to each clip's group and the masks edge-padded to ``mask_size``, as
    ``VisTR.forward`` pads them.

    Args:
        parts: (batch indices [B_g], the group's DeferredMasks) per group.
    """

    def __init__(self, parts: Sequence[tuple[Tensor, DeferredMasks]], mask_size: tuple[int, int]) -> None:
        self._parts = [(index.cpu(), masks) for index, masks in parts]
        self.mask_size = mask_size
        first = self._parts[0][1].shape
        self._num_clips = sum(len(index) for index, _ in self._parts)
        self._slots_frames = first[1:3]

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return (self._num_clips, *self._slots_frames, *self.mask_size)

    def select(self, clips: Tensor, slots: Tensor) -> Tensor:
        """As :meth:`DeferredMasks.select`: [M], [M] -> [M, T, h4, w4]."""
        clips, slots = clips.cpu(), slots.cpu()
        out: list[Tensor | None] = [None] * len(clips)
        for index, masks in self._parts:
            local = torch.full((self._num_clips,), -1, dtype=torch.int64)
            local[index] = torch.arange(len(index))
            hit = (local[clips] >= 0).nonzero().flatten()
            if hit.numel() == 0:
                continue
            part = pad_mask_edges(masks.select(local[clips[hit]], slots[hit]), self.mask_size)
            for k, row in zip(hit.tolist(), part, strict=True):
                out[k] = row
        if not out:
            return self._parts[0][1].select(clips, slots)  # the empty result, shaped
        return torch.stack(out)  # type: ignore[arg-type]


AnyMasks = Tensor | DeferredMasks | GroupedDeferredMasks


def select_masks(masks: AnyMasks, clips: Tensor, slots: Tensor) -> Tensor:
    """``masks[clips, slots]`` for a mask tensor [B, n, T, h4, w4] or a deferred one: [M, T, h4, w4]."""
    if isinstance(masks, Tensor):
        return masks[clips.to(masks.device), slots.to(masks.device)]
    return masks.select(clips, slots)


def all_masks(masks: AnyMasks) -> Tensor:
    """The [B, n, T, h4, w4] tensor, computing it if it was deferred."""
    return masks if isinstance(masks, Tensor) else masks.materialize()


def pad_mask_edges(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """[..., h, w] -> [..., *size], edges replicated into the padding (below and to the right)."""
    h, w = masks.shape[-2:]
    if (h, w) == tuple(size):
        return masks
    flat = masks.reshape(-1, 1, h, w)
    padded = F.pad(flat, (0, size[1] - w, 0, size[0] - h), mode="replicate")
    return padded.view(*masks.shape[:-2], *size)
