"""Face-alignment metrics: normalised mean error (NME), failure rate and the area under the
cumulative error distribution (AUC).

``NME_i = mean_l ||p_il - g_il|| / d_i`` with ``d_i`` the inter-ocular distance (outer eye corners;
300W, WFLW, COFW) or the face box size (AFLW), as in the official ``compute_nme``. The failure
rate at ``t`` is the fraction of faces with ``NME_i > t``; ``AUC_t = (1/t) * integral_0^t
CED(x) dx = mean_i max(0, t - NME_i) / t`` (exact, no sampling of the curve).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from .specs import FaceDatasetSpec, spec_for


def interocular(gt: np.ndarray, eye_corners: Sequence[int]) -> np.ndarray:
    """Distance between the two outer eye corners of each face (N,)."""
    a, b = eye_corners
    return np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)


def normalisers(gt: np.ndarray, spec: Optional[FaceDatasetSpec] = None,
                box_sizes: Optional[Sequence[float]] = None) -> np.ndarray:
    """The NME normaliser of each face: box size when given (AFLW), else inter-ocular."""
    gt = np.asarray(gt, dtype=np.float64)
    spec = spec or spec_for(gt.shape[1])
    if box_sizes is not None:
        return np.asarray(box_sizes, dtype=np.float64).reshape(-1)
    if spec is None or spec.eye_corners is None:
        raise ValueError(f'no inter-ocular definition for {gt.shape[1]} landmarks '
                         f'({spec.name if spec else "unknown set"}); pass box_sizes=... (face box size)')
    return interocular(gt, spec.eye_corners)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, visible: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-face NME (N,) of predictions (N, L, 2) against ground truth with normalisers (N,); with
    ``visible`` (N, L) the mean over the visible landmarks of each face (mmpose's ``NME`` masks
    invisible ones; COCO-WholeBody-Face)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'predictions {pred.shape} and ground truth {gt.shape} differ in shape')
    norm = np.asarray(norm, dtype=np.float64).reshape(-1)
    if np.any(norm <= 0):
        raise ValueError('a normaliser is <= 0 (coinciding eye corners or an empty box)')
    dist = np.linalg.norm(pred - gt, axis=-1)
    if visible is None:
        return dist.mean(axis=1) / norm
    vis = np.asarray(visible, dtype=bool).reshape(dist.shape)
    return (dist * vis).sum(axis=1) / np.maximum(vis.sum(axis=1), 1) / norm


def failure_rate(nmes: np.ndarray, threshold: float = 0.1) -> float:
    """Fraction of faces whose NME exceeds ``threshold``."""
    return float(np.mean(np.asarray(nmes) > threshold))


def auc(nmes: np.ndarray, threshold: float = 0.1) -> float:
    """Area under the cumulative error distribution up to ``threshold``, normalised to [0, 1]."""
    return float(np.mean(np.clip(threshold - np.asarray(nmes, dtype=np.float64), 0, None)) / threshold)


def landmark_metrics(pred: np.ndarray, gt: np.ndarray, spec: Optional[FaceDatasetSpec] = None,
                     box_sizes: Optional[Sequence[float]] = None, threshold: float = 0.1,
                     visible: Optional[np.ndarray] = None) -> Dict[str, float]:
    """``nme``, ``fr`` (failure rate at ``threshold``), ``fr_0.08`` and ``auc`` for a set of faces
    (``visible`` (N, L): only those landmarks count)."""
    e = nme(pred, gt, normalisers(gt, spec, box_sizes), visible)
    return {'nme': float(e.mean()), 'fr': failure_rate(e, threshold), 'fr_0.08': failure_rate(e, 0.08),
            'auc': auc(e, threshold)}
