"""mIoU from a confusion matrix accumulated over a whole evaluation set (as the official
``get_confusion_matrix`` in ``lib/utils/utils.py``): rows are ground-truth classes, columns
predictions, pixels with the ignore index are skipped. IoU_c = TP / (TP + FP + FN).

A class that appears neither in the ground truth nor in the predictions of the whole set has no
IoU (NaN) and is left out of the mean (the official code counts it as 0; on Cityscapes val every
class is present, so the two agree)."""
from __future__ import annotations

from typing import Dict, Sequence, Optional

import torch
import torch.distributed as dist

from .loss import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulate ``update(pred, target)`` over batches, then ``compute()``.

    ``pred`` is either class indices ``(N, H, W)`` or logits ``(N, C, H, W)`` (argmax over C).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 class_names: Optional[Sequence[str]] = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f'prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in size; '
                             'resize the logits to the mask size first')
        pred, target = pred.flatten().long().cpu(), target.flatten().long().cpu()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        n = self.num_classes
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n):
            bad = torch.unique(target[(target < 0) | (target >= n)])[:10].tolist()
            raise ValueError(f'target values {bad} are outside [0, {n - 1}] and not the ignore index '
                             f'{self.ignore_index}')
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= n):
            raise ValueError(f'predictions must be in [0, {n - 1}]')
        self.matrix += torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrix over processes (call on every rank under torchrun before compute)."""
        if dist.is_available() and dist.is_initialized():
            m = self.matrix.to('cuda' if dist.get_backend() == 'nccl' else 'cpu')
            dist.all_reduce(m)
            self.matrix = m.cpu()

    def iou(self) -> torch.Tensor:
        """Per-class IoU (float64); NaN for a class absent from both ground truth and predictions."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float('nan')))

    def compute(self) -> Dict[str, float]:
        """``miou``, ``pixel_acc``, ``mean_acc`` and ``iou/<class>`` for every class."""
        m = self.matrix.double()
        iou = self.iou()
        total = m.sum()
        gt = m.sum(1)
        acc = torch.where(gt > 0, m.diag() / gt.clamp(min=1), torch.full_like(gt, float('nan')))
        out = {
            'miou': float(iou.nanmean()) if bool((~iou.isnan()).any()) else float('nan'),
            'pixel_acc': float(m.diag().sum() / total) if total > 0 else float('nan'),
            'mean_acc': float(acc.nanmean()) if bool((~acc.isnan()).any()) else float('nan'),
        }
        out.update({f'iou/{name}': float(v) for name, v in zip(self.class_names, iou)})
        return out
