"""Glue between the segmentation parts and the shared training engine (:mod:`hrnet_zoo.train`):
the engine's ``loss_fn(model, batch)`` and ``eval_fn(model)`` for segmentation, :func:`loss_from_recipe`
(the loss a recipe describes) and :func:`fit`."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from .evaluate import evaluate
from .loss import IGNORE_INDEX, SegmentationLoss

__all__ = ['make_loss_fn', 'make_eval_fn', 'loss_from_recipe', 'fit']


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


def make_eval_fn(dataset: Dataset, num_classes: int, **kwargs) -> Callable[[nn.Module], Dict[str, float]]:
    """``eval_fn(model) -> {'miou', 'pixel_acc', 'mean_acc', 'iou/<class>'}`` for the engine."""
    return lambda model: evaluate(model, dataset, num_classes, **kwargs)


def loss_from_recipe(loss: Mapping[str, Any], num_classes: int, align_corners: bool = False,
              class_weights: Optional[Any] = None) -> SegmentationLoss:
    """The loss of a recipe's ``loss`` settings (``ohem``, ``ohem_thresh``, ``ohem_keep``,
    ``ignore_index``); ``class_weights`` the dataset's per-class weights or None."""
    return SegmentationLoss(num_classes, int(loss.get('ignore_index', IGNORE_INDEX)), weight=class_weights,
                            ohem=bool(loss.get('ohem', False)), thresh=float(loss.get('ohem_thresh', 0.7)),
                            min_kept=int(loss.get('ohem_keep', 100000)), align_corners=align_corners)


def fit(model: nn.Module, train_set: Dataset, criterion: SegmentationLoss, val_set: Optional[Dataset] = None,
        steps: Optional[int] = None, eval_kwargs: Optional[dict] = None, aux_weight: float = 0.4,
        config=None, **cfg_kwargs) -> Dict:
    """Train with the shared engine. ``config`` is a ready :class:`~hrnet_zoo.train.TrainConfig`
    (a recipe's, :func:`hrnet_zoo.tasks.cli.train_config`); else ``cfg_kwargs`` make one, with the
    paper's SGD (momentum 0.9) + poly lr policy (power 0.9) as defaults. ``steps`` sets
    ``max_steps`` and enough epochs for the poly schedule to end exactly there. Returns the
    engine's result dict."""
    from ...train import TrainConfig, Trainer
    if config is None:
        cfg_kwargs.setdefault('sched', 'poly')
        cfg_kwargs.setdefault('power', 0.9)
        cfg_kwargs.setdefault('nesterov', False)
        cfg_kwargs.setdefault('best_metric', 'miou')
        if steps is not None:
            per_epoch = max(1, len(train_set) // (cfg_kwargs.get('batch_size', 32) * cfg_kwargs.get('grad_accum', 1)))
            cfg_kwargs['epochs'] = max(1, math.ceil(steps / per_epoch))
            cfg_kwargs['max_steps'] = steps
        config = TrainConfig(**cfg_kwargs)
    eval_fn = None
    if val_set is not None:
        eval_fn = make_eval_fn(val_set, criterion.num_classes, ignore_index=criterion.ignore_index,
                               **(eval_kwargs or {}))
    trainer = Trainer(model, train_set, make_loss_fn(criterion, aux_weight), config, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:  # stopped by max_steps before an epoch ended
        result['metrics'] = trainer.evaluate()
    return result
