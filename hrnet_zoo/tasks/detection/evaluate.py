"""Detector + data -> COCO box (and mask) AP: run the model in eval mode over a loader of
``(images, targets)`` lists and score its outputs with :class:`~.metrics.CocoEvaluator`."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import collate
from .metrics import CocoEvaluator

__all__ = ['evaluate_detector', 'evaluate_dataset', 'iou_types_of']


def iou_types_of(model: nn.Module) -> Sequence[str]:
    """``('bbox', 'segm')`` for a detector that predicts masks, else ``('bbox',)``."""
    roi_heads = getattr(model, 'roi_heads', None)
    return ('bbox', 'segm') if roi_heads is not None and roi_heads.has_mask() else ('bbox',)


@torch.no_grad()
def evaluate_detector(model: nn.Module, loader, device=None, iou_types: Optional[Sequence[str]] = None,
                      coco_gt=None) -> Dict[str, float]:
    """Run ``model`` (eval mode) over ``loader`` (yielding ``(images, targets)`` lists) on ``device``
    (default: the model's) and return COCO AP (``bbox_AP``, ``bbox_AP50``, ..., ``segm_AP``)."""
    device = next(model.parameters()).device if device is None else device
    evaluator = CocoEvaluator(iou_types or iou_types_of(model), coco_gt)
    was_training = model.training
    model.eval()
    for images, targets in loader:
        outputs = model([im.to(device) for im in images])
        evaluator.update([{k: v.cpu() if torch.is_tensor(v) else v for k, v in t.items()} for t in targets],
                         [{k: v.cpu() for k, v in o.items()} for o in outputs])
    model.train(was_training)
    return evaluator.compute()


def evaluate_dataset(model: nn.Module, dataset: Dataset, batch_size: int = 2, num_workers: int = 0,
                     device=None, iou_types: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """COCO AP of ``model`` on a detection dataset (its ``coco`` ground truth when it has one, e.g.
    :class:`~.data.CocoDetectionDataset`; otherwise built from the targets)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    return evaluate_detector(model, loader, device, iou_types, getattr(dataset, 'coco', None))
