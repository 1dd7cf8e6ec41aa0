"""Landmark evaluation and fine-tuning on the shared engine. The official recipe
(``experiments/wflw/face_alignment_wflw_hrnet_w18.yaml``): Adam, lr 1e-4, x0.1 at epochs 30 and
50, 60 epochs, batch 16, sigma 1.5, plain heatmap MSE loss (``nn.MSELoss``)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ...train.engine import TrainConfig, Trainer
from ..heatmap import predict_heatmaps
from .decode import decode_landmarks
from .metrics import landmark_metrics

FACE_RECIPE = dict(optimizer='adam', lr=1e-4, weight_decay=0.0, sched='step', milestones=(30, 50), gamma=0.1,
                   epochs=60, batch_size=16, best_metric='nme', best_mode='min')


def landmark_loss_fn(model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
    """``loss_fn(model, batch)`` for the engine: mean squared error of the heatmaps (official)."""
    return F.mse_loss(model(batch['image']), batch['target'])


@torch.no_grad()
def predict_landmarks(model: nn.Module, dataset, batch_size: int = 16, flip_test: bool = False,
                      method: str = 'quarter', num_workers: int = 0) -> Dict[str, np.ndarray]:
    """Landmarks in image pixels for every face: ``pred`` (N, L, 2), ``gt``, ``scores``, ``box_size``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {'pred': [], 'gt': [], 'scores': [], 'box_size': []}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers):
        heatmaps = predict_heatmaps(model, batch['image'].to(device), dataset.flip_pairs, flip_test)
        pts, conf = decode_landmarks(heatmaps.float().cpu(), batch['center'].numpy(), batch['scale'].numpy(), method)
        out['pred'].append(pts)
        out['scores'].append(conf)
        out['gt'].append(batch['landmarks'].numpy())
        out['box_size'].append(batch['box_size'].numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_landmarks(model: nn.Module, dataset, batch_size: int = 16, flip_test: bool = False,
                       method: str = 'quarter', num_workers: int = 0) -> Dict[str, float]:
    """NME, failure rate at 0.1 (and 0.08) and AUC@0.1 of ``model`` on ``dataset``; AFLW-style
    files (with ``box_size``) are normalised by the box size, the others inter-ocularly."""
    p = predict_landmarks(model, dataset, batch_size, flip_test, method, num_workers)
    box = p['box_size'] if (p['box_size'] > 0).all() and dataset.spec.eye_corners is None else None
    return landmark_metrics(p['pred'], p['gt'], dataset.spec, box)


def fit_landmarks(model: nn.Module, train_set, cfg: TrainConfig, val_set=None, flip_test: bool = False,
                  method: str = 'quarter') -> Dict[str, Any]:
    """Train with the engine, evaluating NME on ``val_set`` each epoch (and at the end when
    stopped mid-epoch by ``max_steps``)."""
    eval_fn: Optional[Callable] = None
    if val_set is not None:
        def eval_fn(m):
            return evaluate_landmarks(m, val_set, cfg.batch_size, flip_test, method)
    trainer = Trainer(model, train_set, landmark_loss_fn, cfg, eval_fn=eval_fn)
    result = trainer.fit()
    if eval_fn is not None and not result['metrics']:
        result['metrics'] = trainer.evaluate()
    return result


def load_face_weights(model: nn.Module, path: str) -> nn.Module:
    """Weights from an engine checkpoint or an official HRNet-Facial-Landmark-Detection ``.pth``."""
    from ...train.checkpoint import load_weights
    from .model import load_official_face_checkpoint
    return load_weights(model, path, official_loader=load_official_face_checkpoint)
