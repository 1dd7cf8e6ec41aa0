"""Pose fine-tuning on the shared engine (:mod:`hrnet_zoo.train.engine`): the heatmap loss as
``loss_fn(model, batch)``, COCO AP as ``eval_fn(model)`` and :func:`fit_pose`. The recipe is
``hrnet_zoo/train/recipes/pose_coco.yaml`` (the official COCO config), read by
:func:`hrnet_zoo.train.recipes.load_recipe`; :func:`dataset_options` turns its ``data`` section
into :class:`~.data.COCOKeypoints` arguments. Training runs under one heatmap codec (the train
set's when set, else the model's, else ``codec=``) and records it in the model's
``pretrained_cfg['codec']``, which checkpoints and converted folders carry.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ...train.engine import TrainConfig, Trainer
from ..codecs import HeatmapCodec, training_codec
from ..heatmap import JointsMSELoss
from .evaluate import evaluate_coco

__all__ = ['heatmap_loss_fn', 'coco_eval_fn', 'fit_pose', 'dataset_options', 'DATA_KEYS']

# the recipe's data keys that are COCOKeypoints arguments
DATA_KEYS = ('sigma', 'unbiased', 'scale_factor', 'rotation_factor', 'rotation_prob', 'flip_prob', 'half_body_prob',
             'half_body_min_joints', 'joint_weights')


def dataset_options(data: Mapping[str, Any]) -> Dict[str, Any]:
    """:class:`~.data.COCOKeypoints` keyword arguments from a pose recipe's ``data`` section."""
    return {k: data[k] for k in DATA_KEYS if k in data}


def heatmap_loss_fn(criterion: Optional[nn.Module] = None) -> Callable[[nn.Module, Dict[str, Any]], torch.Tensor]:
    """``loss_fn(model, batch)`` for the engine: JointsMSELoss on the batch's targets and weights."""
    criterion = criterion or JointsMSELoss(use_target_weight=True)

    def loss_fn(model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
        return criterion(model(batch['image']), batch['target'], batch['target_weight'])
    return loss_fn


def coco_eval_fn(val_set, batch_size: int = 32, flip_test: bool = True, method: Optional[str] = None,
                 sigmas: Optional[Sequence[float]] = None, **options: Any) -> Callable[[nn.Module], Dict[str, float]]:
    """``eval_fn(model)`` for the engine: COCO keypoint AP/AR on ``val_set`` under the model's codec
    (``options``: those of :func:`~.evaluate.evaluate_coco`, e.g. ``oks_thresh`` for a set on
    detection boxes, ``codec``)."""
    def eval_fn(model: nn.Module) -> Dict[str, float]:
        return evaluate_coco(model, val_set, batch_size=batch_size, flip_test=flip_test, method=method,
                             sigmas=sigmas, **options)
    return eval_fn


def fit_pose(model: nn.Module, train_set, cfg: TrainConfig, val_set=None, flip_test: bool = True,
             method: Optional[str] = None, sigmas: Optional[Sequence[float]] = None,
             eval_batch_size: Optional[int] = None, codec: Union[None, str, HeatmapCodec] = None) -> Dict[str, Any]:
    """Train ``model`` with the engine under one heatmap codec
    (:func:`~hrnet_zoo.tasks.codecs.training_codec`); evaluates
    COCO AP on ``val_set`` each epoch (the same codec, ``method`` replacing its refinement) and
    once more at the end if training stopped mid-epoch (``max_steps``). Returns the engine's result
    dict."""
    codec, train_set = training_codec(model, train_set, codec)
    eval_fn = (coco_eval_fn(val_set, eval_batch_size or cfg.batch_size, flip_test, method, sigmas, codec=codec)
               if val_set is not None else None)
    trainer = Trainer(model, train_set, heatmap_loss_fn(), cfg, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:
        result['metrics'] = trainer.evaluate()
    return result
