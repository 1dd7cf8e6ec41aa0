"""Run a pose model over a :class:`~.dataset.COCOKeypoints` set and score it with COCO OKS AP."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..heatmap import decode_heatmaps, predict_heatmaps
from .metric import coco_keypoint_ap, keypoint_results


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                    method: str = 'quarter', device: Optional[torch.device] = None,
                    num_workers: int = 0) -> Dict[str, np.ndarray]:
    """Keypoints in image coordinates for every sample: ``image_ids``, ``keypoints`` (N, K, 2),
    ``scores`` (N, K), ``box_scores`` (N,)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {'image_ids': [], 'keypoints': [], 'scores': [], 'box_scores': []}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for batch in loader:
        heatmaps = predict_heatmaps(model, batch['image'].to(device), dataset.flip_pairs, flip_test)
        pts, conf = decode_heatmaps(heatmaps.float().cpu(), batch['center'].numpy(), batch['scale'].numpy(),
                                    method, batch['rotation'].numpy())
        out['image_ids'].append(np.asarray(batch['image_id']))
        out['keypoints'].append(pts)
        out['scores'].append(conf)
        out['box_scores'].append(batch['score'].numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_coco(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                  method: str = 'quarter', sigmas: Optional[Sequence[float]] = None,
                  device: Optional[torch.device] = None, num_workers: int = 0) -> Dict[str, float]:
    """COCO keypoint AP/AR of ``model`` on ``dataset`` (its ground-truth boxes) against
    ``dataset.ann_file``."""
    pred = predict_dataset(model, dataset, batch_size, flip_test, method, device, num_workers)
    results = keypoint_results(pred['image_ids'], pred['keypoints'], pred['scores'], pred['box_scores'],
                               category_id=dataset.category['id'])
    return coco_keypoint_ap(dataset.ann_file, results, sigmas=sigmas)
