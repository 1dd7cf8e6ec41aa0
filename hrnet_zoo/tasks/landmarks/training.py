"""Landmark fine-tuning on the shared engine: the loss, the evaluation and :func:`fit_landmarks`.
The official recipes (``experiments/*/face_alignment_*_hrnet_w18.yaml``) are the data files
``hrnet_zoo/train/recipes/landmarks_{wflw,300w,aflw,cofw}.yaml`` (Adam, lr 1e-4 (AFLW 2e-4), x0.1 at
epochs 30 and 50, 60 epochs, batch 16, sigma 1.5 (300W 1.0)); the loss is the official plain heatmap
MSE (``nn.MSELoss``). Training runs under one heatmap codec (the train set's when set, else the
model's, else ``codec=``: :func:`~hrnet_zoo.tasks.codecs.training_codec`), recorded in the model's
``pretrained_cfg['codec']``."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...train.engine import TrainConfig, Trainer
from ..codecs import HeatmapCodec, training_codec
from .evaluate import evaluate_landmarks

__all__ = ['landmark_loss_fn', 'landmark_eval_fn', 'fit_landmarks']


def landmark_loss_fn(model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
    """``loss_fn(model, batch)`` for the engine: mean squared error of the heatmaps (official)."""
    return F.mse_loss(model(batch['image']), batch['target'])


def landmark_eval_fn(val_set, batch_size: int = 16, flip_test: bool = False, method: Optional[str] = None,
                     codec: Union[None, str, HeatmapCodec] = None) -> Callable[[nn.Module], Dict[str, float]]:
    """``eval_fn(model)`` for the engine: NME / FR / AUC on ``val_set`` (the model's codec, or ``codec``)."""
    def eval_fn(model: nn.Module) -> Dict[str, float]:
        return evaluate_landmarks(model, val_set, batch_size, flip_test, method, codec=codec)
    return eval_fn


def fit_landmarks(model: nn.Module, train_set, cfg: TrainConfig, val_set=None, flip_test: bool = False,
                  method: Optional[str] = None, eval_batch_size: Optional[int] = None,
                  codec: Union[None, str, HeatmapCodec] = None) -> Dict[str, Any]:
    """Train with the engine under one heatmap codec, evaluating NME on ``val_set`` each epoch (the
    same codec, ``method`` replacing its refinement; and at the end when stopped mid-epoch by
    ``max_steps``)."""
    codec, train_set = training_codec(model, train_set, codec)
    eval_fn = None if val_set is None else landmark_eval_fn(val_set, eval_batch_size or cfg.batch_size,
                                                            flip_test, method, codec)
    trainer = Trainer(model, train_set, landmark_loss_fn, cfg, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:
        result['metrics'] = trainer.evaluate()
    return result
