"""Training targets: one Gaussian heatmap per keypoint (sigma 2 at 1/4 resolution for COCO) with a
per-keypoint target weight, and the heatmap MSE loss with target weights (the official
``JointsMSELoss``: 0.5 * mean squared error per joint, averaged over joints).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn


def gaussian_heatmaps(keypoints: np.ndarray, visible: np.ndarray, heatmap_size: Tuple[int, int],
                      sigma: float = 2.0, unbiased: bool = True,
                      joint_weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Encode keypoints (K, 2) in heatmap coordinates as K Gaussian heatmaps of peak 1.

    ``visible`` (K,) > 0 marks annotated keypoints. ``heatmap_size`` is ``(height, width)``.
    Each Gaussian is cut to a window of radius ``3 * sigma``. With ``unbiased=True`` (default) it is
    centred at the exact sub-pixel position (DARK's unbiased encoding, so decoding can recover
    sub-pixel locations); ``unbiased=False`` rounds the centre to the nearest pixel as the official
    code does. The target weight (K, 1) is 0 for unannotated keypoints and for keypoints whose
    window lies wholly outside the heatmap, else 1 (times ``joint_weights`` when given).
    """
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible).reshape(-1)
    if len(vis) != len(kpts):
        raise ValueError(f'{len(kpts)} keypoints but {len(vis)} visibility flags')
    h, w = heatmap_size
    centers = kpts if unbiased else np.floor(kpts + 0.5)
    radius = 3 * sigma
    inside = ((centers[:, 0] + radius >= 0) & (centers[:, 0] - radius <= w - 1)
              & (centers[:, 1] + radius >= 0) & (centers[:, 1] - radius <= h - 1))
    weight = ((vis > 0) & inside).astype(np.float32)
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    dx = xs - centers[:, 0, None, None]
    dy = ys - centers[:, 1, None, None]
    g = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    g = g * ((np.abs(dx) <= radius) & (np.abs(dy) <= radius))
    g = g * weight[:, None, None]
    if joint_weights is not None:
        jw = np.asarray(joint_weights, dtype=np.float32).reshape(-1)
        if len(jw) != len(kpts):
            raise ValueError(f'{len(jw)} joint weights for {len(kpts)} keypoints')
        weight = weight * jw
    return g.astype(np.float32), weight[:, None]


class JointsMSELoss(nn.Module):
    """``0.5 * mean((w_k * (pred_k - target_k))^2)`` over all pixels of every joint ``k``: the
    official pose loss (per-joint 0.5 * MSE, averaged over joints) with per-joint target weights
    ``w`` (N, K, 1) or (N, K)."""

    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                target_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f'heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape')
        diff = (pred - target).flatten(2)
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError('use_target_weight=True needs target_weight (N, K, 1)')
            diff = diff * target_weight.reshape(diff.shape[0], diff.shape[1], 1).to(diff.dtype)
        return 0.5 * diff.pow(2).mean()
