"""Segmentation losses: pixel-wise cross-entropy with an ignore index, and OHEM (online hard
example mining) cross-entropy as in the official ``lib/core/criterion.py``: keep the pixels whose
predicted probability of the true class is below ``max(thresh, p_k)``, where ``p_k`` is the
``min_kept``-th smallest such probability (class defaults thresh=0.7, min_kept=100000; the
Cityscapes OHEM config passes 0.9 / 131072)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def _resize_logits(logits: torch.Tensor, target: torch.Tensor, align_corners: bool) -> torch.Tensor:
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=align_corners)
    return logits


def check_target(target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
    """Raise a clear ValueError if ``target`` holds labels outside ``[0, num_classes)`` other than
    ``ignore_index`` (cross-entropy would otherwise fail with a device assert or silently wrap)."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        values = torch.unique(target[bad])[:10].tolist()
        raise ValueError(
            f'mask values {values} are outside the {num_classes} classes [0, {num_classes - 1}] and are not '
            f'the ignore index {ignore_index}; map them to a class or to {ignore_index}.')


class SegmentationLoss(nn.Module):
    """Cross-entropy over pixels (``ignore_index`` pixels contribute nothing), optionally with
    per-class ``weight`` and OHEM. Logits of another size than the target are resized bilinearly.

    Args:
        num_classes: classes, used to validate targets.
        ohem: use OHEM cross-entropy.
        thresh / min_kept: OHEM's probability threshold and minimum number of kept pixels.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, weight: Optional[Sequence[float]] = None,
                 ohem: bool = False, thresh: float = 0.7, min_kept: int = 100000, align_corners: bool = False,
                 check: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ohem = ohem
        self.thresh = thresh
        self.min_kept = max(1, int(min_kept))
        self.align_corners = align_corners
        self.check = check
        self.register_buffer('weight', None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() != 3:
            raise ValueError(f'target must be (N, H, W) class indices, got shape {tuple(target.shape)}')
        target = target.long()
        if self.check:
            check_target(target, self.num_classes, self.ignore_index)
        logits = _resize_logits(logits, target, self.align_corners)
        if not self.ohem:
            return F.cross_entropy(logits, target, weight=self._weight(logits), ignore_index=self.ignore_index)
        return self._ohem(logits, target)

    def _weight(self, logits: torch.Tensor) -> Optional[torch.Tensor]:
        # the engine moves batches, not the loss: follow the logits' device and dtype
        return None if self.weight is None else self.weight.to(logits.device, logits.dtype)

    def _ohem(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(logits, target, weight=self._weight(logits), ignore_index=self.ignore_index,
                                     reduction='none').flatten()
        valid = target.flatten() != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0  # every pixel ignored: a zero loss that keeps the graph
        with torch.no_grad():
            safe = target.clone()
            safe[safe == self.ignore_index] = 0
            prob = logits.float().softmax(1).gather(1, safe.unsqueeze(1)).flatten()[valid]
            sorted_prob = prob.sort().values
            kth = sorted_prob[min(self.min_kept, sorted_prob.numel() - 1)]
            threshold = torch.clamp(kth, min=self.thresh)
            hard = prob < threshold
        kept = pixel_loss[valid][hard]
        if kept.numel() == 0:  # every pixel confidently right
            return pixel_loss[valid].sum() * 0.0
        return kept.mean()
