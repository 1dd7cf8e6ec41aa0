"""Landmark heatmaps -> image coordinates: the pose decoder (argmax + quarter-pixel shift, or DARK)
followed by back-projection through the square face crop."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from ..heatmap import decode_heatmaps


def decode_landmarks(heatmaps: torch.Tensor, centers, scales, method: str = 'quarter',
                     rotations=None) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, L, h, w) -> landmarks (N, L, 2) in image pixels and peak scores (N, L).
    ``scales`` (N,) or (N, 2) are the crops' sizes in units of 200 px."""
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim == 1:
        scales = np.stack([scales, scales], axis=1)
    return decode_heatmaps(heatmaps, centers, scales, method, rotations)
