"""Glue between the segmentation parts and the shared training engine (:mod:`hrnet_zoo.train`):
the engine's ``loss_fn(model, batch)`` and ``eval_fn(model)`` for segmentation, and :func:`fit`."""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .inference import predict
from .loss import SegmentationLoss
from .metric import ConfusionMatrix


def make_loss_fn(criterion: SegmentationLoss, aux_weight: float = 0.4) -> Callable:
    """``loss_fn(model, (images, masks)) -> scalar`` for :class:`hrnet_zoo.train.Trainer`. A model
    returning ``{'out', 'aux'}`` in training (OCR) gets ``loss(out) + aux_weight * loss(aux)``
    (the official ``BALANCE_WEIGHTS`` 0.4, 1; OHEM applies to the main output, plain CE to aux)."""
    plain = SegmentationLoss(criterion.num_classes, criterion.ignore_index, weight=criterion.weight,
                             align_corners=criterion.align_corners, check=False)

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        images, masks = batch
        out = model(images)
        if isinstance(out, dict):
            return criterion(out['out'], masks) + aux_weight * plain(out['aux'], masks)
        return criterion(out, masks)
    return loss_fn


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 1,
             scales: Sequence[float] = (1.0,), flip: bool = False, crop_size: Optional[Tuple[int, int]] = None,
             ignore_index: int = 255, class_names: Optional[Sequence[str]] = None,
             device: Optional[torch.device] = None, num_workers: int = 0,
             all_reduce: bool = False) -> Dict[str, float]:
    """mIoU over ``dataset`` (yielding normalised ``(image, mask)``), with optional multi-scale,
    flip and sliding-window testing. The confusion matrix covers the whole set; with
    ``all_reduce`` (every rank evaluating its own shard) it is summed over ranks first. The
    engine's default runs eval_fn on rank 0 over the whole set, so no collective is made."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, class_names or getattr(dataset, 'class_names', None))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, masks in loader:
        probs = predict(model, images.to(device), scales=scales, flip=flip, crop_size=crop_size)
        cm.update(probs.argmax(1).cpu(), masks)
    if all_reduce:
        cm.all_reduce()
    model.train(was_training)
    return cm.compute()


def make_eval_fn(dataset: Dataset, num_classes: int, **kwargs) -> Callable[[nn.Module], Dict[str, float]]:
    """``eval_fn(model) -> {'miou', 'pixel_acc', 'mean_acc', 'iou/<class>'}`` for the engine."""
    return lambda model: evaluate(model, dataset, num_classes, **kwargs)


def fit(model: nn.Module, train_set: Dataset, criterion: SegmentationLoss, val_set: Optional[Dataset] = None,
        steps: Optional[int] = None, eval_kwargs: Optional[dict] = None, **cfg_kwargs) -> Dict:
    """Train with the shared engine; the paper's recipe is SGD (momentum 0.9) with the poly lr
    policy (power 0.9), set here as defaults. ``steps`` sets ``max_steps`` and enough epochs for
    the poly schedule to end exactly there. Returns the engine's result dict."""
    from ...train import TrainConfig, Trainer
    cfg_kwargs.setdefault('sched', 'poly')
    cfg_kwargs.setdefault('power', 0.9)
    cfg_kwargs.setdefault('nesterov', False)
    cfg_kwargs.setdefault('best_metric', 'miou')
    if steps is not None:
        per_epoch = max(1, len(train_set) // (cfg_kwargs.get('batch_size', 32) * cfg_kwargs.get('grad_accum', 1)))
        cfg_kwargs['epochs'] = max(1, math.ceil(steps / per_epoch))
        cfg_kwargs['max_steps'] = steps
    cfg = TrainConfig(**cfg_kwargs)
    eval_fn = None
    if val_set is not None:
        eval_fn = make_eval_fn(val_set, criterion.num_classes, ignore_index=criterion.ignore_index,
                               **(eval_kwargs or {}))
    trainer = Trainer(model, train_set, make_loss_fn(criterion), cfg, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:  # stopped by max_steps before an epoch ended
        result['metrics'] = trainer.evaluate()
    return result
