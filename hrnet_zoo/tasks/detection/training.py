"""Detection on the shared engine (:class:`hrnet_zoo.train.engine.Trainer`): the loss is the sum
of the torchvision detector's losses, the evaluation COCO AP. The schedule is the recipe
``hrnet_zoo/train/recipes/det_coco_1x.yaml`` (HRNet-Object-Detection's 1x)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ...train import TrainConfig, Trainer
from .data import collate
from .evaluate import evaluate_dataset

__all__ = ['loss_fn', 'eval_fn', 'fit_detector']


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    """The engine's ``loss_fn``: the sum of the detector's losses on ``(images, targets)``."""
    images, targets = batch
    return sum(model(images, targets).values())


def eval_fn(val_set: Dataset, iou_types: Optional[Sequence[str]] = None, batch_size: int = 2,
            num_workers: int = 0) -> Callable[[nn.Module], Dict[str, float]]:
    """The engine's ``eval_fn``: COCO AP of the model on ``val_set`` (``bbox_AP``, ... ``segm_AP``)."""
    def evaluate(model: nn.Module) -> Dict[str, float]:
        return evaluate_dataset(model, val_set, batch_size, num_workers, iou_types=iou_types)
    return evaluate


def fit_detector(model: nn.Module, train_set: Dataset, cfg: TrainConfig, val_set: Optional[Dataset] = None,
                 eval_batch_size: int = 2) -> Dict[str, Any]:
    """Train ``model`` with the engine (list batches through :func:`~.data.collate`), COCO AP on
    ``val_set`` every ``cfg.eval_every`` epochs; returns :meth:`Trainer.fit`'s result."""
    evaluate = eval_fn(val_set, batch_size=eval_batch_size, num_workers=cfg.num_workers) if val_set else None
    return Trainer(model, train_set, loss_fn, cfg, eval_fn=evaluate, collate_fn=collate).fit()
