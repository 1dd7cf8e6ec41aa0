"""Pose fine-tuning on the shared engine (:mod:`hrnet_zoo.train.engine`): the heatmap loss as
``loss_fn(model, batch)``, COCO AP as ``eval_fn(model)``, and loading of weights from engine or
official checkpoints. The official COCO recipe: Adam, lr 1e-3, x0.1 at epochs 170 and 200,
210 epochs, 32 images per GPU on 4 GPUs (``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn

from ...train.engine import TrainConfig, Trainer
from .evaluate import evaluate_coco
from ..heatmap import JointsMSELoss

POSE_RECIPE = dict(optimizer='adam', lr=1e-3, weight_decay=0.0, sched='step', milestones=(170, 200),
                   gamma=0.1, epochs=210, batch_size=32, best_metric='AP', best_mode='max')


def heatmap_loss_fn(criterion: Optional[nn.Module] = None) -> Callable[[nn.Module, Dict[str, Any]], torch.Tensor]:
    """``loss_fn(model, batch)`` for the engine: JointsMSELoss on the batch's targets and weights."""
    criterion = criterion or JointsMSELoss(use_target_weight=True)

    def loss_fn(model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
        return criterion(model(batch['image']), batch['target'], batch['target_weight'])
    return loss_fn


def coco_eval_fn(val_set, batch_size: int = 32, flip_test: bool = True, method: str = 'quarter',
                 sigmas: Optional[Sequence[float]] = None) -> Callable[[nn.Module], Dict[str, float]]:
    """``eval_fn(model)`` for the engine: COCO keypoint AP/AR on ``val_set``."""
    def eval_fn(model: nn.Module) -> Dict[str, float]:
        return evaluate_coco(model, val_set, batch_size=batch_size, flip_test=flip_test, method=method,
                             sigmas=sigmas)
    return eval_fn


def fit_pose(model: nn.Module, train_set, cfg: TrainConfig, val_set=None, flip_test: bool = True,
             method: str = 'quarter', sigmas: Optional[Sequence[float]] = None) -> Dict[str, Any]:
    """Train ``model`` with the engine; evaluates COCO AP on ``val_set`` each epoch and once more
    at the end if training stopped mid-epoch (``max_steps``). Returns the engine's result dict."""
    eval_fn = coco_eval_fn(val_set, cfg.batch_size, flip_test, method, sigmas) if val_set is not None else None
    trainer = Trainer(model, train_set, heatmap_loss_fn(), cfg, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:
        result['metrics'] = trainer.evaluate()
    return result


def load_pose_weights(model: nn.Module, path: str) -> nn.Module:
    """Weights from an engine checkpoint (``last.pth`` / ``best.pth``, with ``'model'``) or from
    an official pose checkpoint / ``.safetensors`` file in the official key layout."""
    from ...train.checkpoint import load_weights
    from .model import load_official_pose_checkpoint
    return load_weights(model, path, official_loader=load_official_pose_checkpoint)
