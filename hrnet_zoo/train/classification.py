"""Image classification glue for the engine: the loss (with timm's Mixup / CutMix and label
smoothing) and a top-1 / top-5 evaluation that shards over ranks under DDP."""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ['ClassificationLoss', 'build_mixup', 'topk_accuracy', 'make_eval_fn']


def build_mixup(cutmix: float, mixup: float, label_smoothing: float, num_classes: int,
                prob: float = 1.0, switch_prob: float = 0.5):
    """timm's ``Mixup`` when ``cutmix`` or ``mixup`` alpha > 0 (it also applies label smoothing
    to the mixed targets), else None."""
    if cutmix <= 0 and mixup <= 0:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=switch_prob,
                 label_smoothing=label_smoothing, num_classes=num_classes)


class ClassificationLoss:
    """``loss_fn(model, (images, targets))`` for the engine: cross-entropy, with label smoothing
    (``timm.loss.LabelSmoothingCrossEntropy``) or soft targets from Mixup / CutMix
    (``timm.loss.SoftTargetCrossEntropy``)."""

    def __init__(self, label_smoothing: float = 0.0, mixup: Optional[Callable] = None) -> None:
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
        self.mixup = mixup
        if mixup is not None:
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        elif label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        images, targets = batch[0], batch[1]
        if self.mixup is not None:
            if images.shape[0] % 2:
                raise ValueError(f'Mixup / CutMix needs an even batch size, got {images.shape[0]}')
            images, targets = self.mixup(images, targets)
        return self.criterion(model(images).float(), targets)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[int, int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the
    number of classes)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top.eq(targets.view(-1, 1))
    return {k: int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks}


def make_eval_fn(dataset: Dataset, batch_size: int = 100, num_workers: int = 0,
                 distributed: bool = False, channels_last: bool = False) -> Callable[[nn.Module], Dict[str, float]]:
    """An engine ``eval_fn(model) -> {'top1', 'top5', 'loss'}`` (percent / mean CE) over
    ``dataset``. With ``distributed=True`` (use with ``TrainConfig.eval_all_ranks=True``) every
    rank evaluates every world_size-th sample and the counts are all-reduced."""

    def eval_fn(model: nn.Module) -> Dict[str, float]:
        device = next(model.parameters()).device
        rank, world = 0, 1
        if distributed and dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        subset = torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
        loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            pin_memory=device.type == 'cuda')
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # top1, top5, loss sum, count
        for images, targets in loader:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images).float()
            hits = topk_accuracy(logits, targets)
            loss = nn.functional.cross_entropy(logits, targets, reduction='sum')
            sums += torch.tensor([hits[1], hits[5], float(loss), len(targets)], dtype=torch.float64, device=device)
        if world > 1:
            dist.all_reduce(sums)
        n = max(float(sums[3]), 1.0)
        return {'top1': 100.0 * float(sums[0]) / n, 'top5': 100.0 * float(sums[1]) / n, 'loss': float(sums[2]) / n}

    return eval_fn
