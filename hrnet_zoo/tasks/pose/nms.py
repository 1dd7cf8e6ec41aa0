"""OKS non-maximum suppression of person poses, as in the official HRNet pose code.

The official deep-high-resolution-net.pytorch (``lib/nms/nms.py``: ``oks_iou``, ``oks_nms``,
``soft_oks_nms``) removes duplicate detections of one person by their object keypoint
similarity (OKS) before COCO evaluation. These are the same rules, vectorised over keypoints
and people, on NumPy arrays instead of lists of dicts:

- OKS of pose ``a`` against each pose ``b``: ``e = d^2 / vars / ((area_a + area_b) / 2 + eps) / 2``
  per keypoint, with ``vars = (2 * sigmas) ** 2`` and ``eps = np.spacing(1)``; the OKS is the
  mean of ``exp(-e)`` over the keypoints counted (0 when none is).
- ``vis_thresh``: only the keypoints whose score in ``b`` is above it are counted. The official
  mask ``list(vg > t) and list(vd > t)`` evaluates to its second operand, so the visibility of
  ``a`` (the kept pose) plays no part; this module keeps that rule.
- Order: highest score first; equal scores come last index first (the official reversed
  ``argsort``, made stable here so that the rule holds for any number of people).
- ``oks_nms``: greedy; a pose whose OKS with a kept pose is above ``thresh`` is dropped
  (OKS equal to ``thresh`` survives).
- ``soft_oks_nms``: nothing is dropped; after each pick the others are rescored
  ``score * exp(-oks^2 / thresh)`` and re-sorted; at most ``max_dets`` (20) are kept.

Unlike the official ``oks_iou``, which silently replaces ``sigmas`` given as a list by COCO's,
any array-like ``sigmas`` is used here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ['oks_iou', 'oks_nms', 'soft_oks_nms']

_EPS = np.spacing(1)


def _coco_sigmas() -> np.ndarray:
    # Imported on use: the constant lives in the pose metric module (metric.py, or metrics.py
    # once renamed), and the pose package imports this module.
    try:
        from .metrics import COCO_OKS_SIGMAS
    except ImportError:
        from .metric import COCO_OKS_SIGMAS
    return COCO_OKS_SIGMAS


def _keypoint_variances(sigmas: Optional[Sequence[float]], num_keypoints: int) -> np.ndarray:
    """``(2 * sigma) ** 2`` per keypoint, checked against the number of keypoints."""
    sig = _coco_sigmas() if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sig.shape != (num_keypoints,):
        raise ValueError(f'poses have {num_keypoints} keypoints but sigmas has shape {sig.shape}; '
                         'pass sigmas=[...] with one OKS constant per keypoint')
    if not np.all(sig > 0):
        raise ValueError(f'OKS sigmas must be positive, got {sig}')
    return (sig * 2) ** 2


def _check_areas(areas, name: str, shape: tuple) -> np.ndarray:
    areas = np.asarray(areas, dtype=np.float64)
    if areas.shape != shape:
        raise ValueError(f'{name} must have shape {shape}, got {areas.shape}')
    if not np.all(areas >= 0):
        raise ValueError(f'{name} must be non-negative numbers, got {areas[~(areas >= 0)]}')
    return areas


def _check_keypoints(keypoints, name: str, ndim: int) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    lead = '(M, K, 3)' if ndim == 3 else '(K, 3)'
    if keypoints.ndim != ndim or keypoints.shape[-1] != 3:
        raise ValueError(f'{name} must have shape {lead} (x, y, score per keypoint), '
                         f'got {keypoints.shape}')
    return keypoints


def _oks(pose: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray,
         variances: np.ndarray, vis_thresh: Optional[float]) -> np.ndarray:
    """OKS of ``pose`` (K, 3) against ``others`` (M, K, 3), inputs already checked: (M,)."""
    sq_dist = ((others[..., :2] - pose[:, :2]) ** 2).sum(-1)
    scale = (area + other_areas)[:, None] / 2 + _EPS
    similarity = np.exp(-(sq_dist / variances / scale / 2))
    counted = (np.ones(similarity.shape, dtype=bool) if vis_thresh is None
               else others[..., 2] > vis_thresh)
    num = counted.sum(-1)
    total = np.where(counted, similarity, 0.0).sum(-1)
    return np.where(num > 0, total / np.maximum(num, 1), 0.0)


def oks_iou(keypoints_a, keypoints_b, area_a, areas_b, sigmas: Optional[Sequence[float]] = None,
            vis_thresh: Optional[float] = None) -> np.ndarray:
    """OKS of one pose against each of ``M`` others (official ``oks_iou``).

    Args:
        keypoints_a: (K, 3) x, y, score of the reference pose.
        keypoints_b: (M, K, 3) the poses to compare with it.
        area_a: the reference pose's area (box or segment area, pixels^2).
        areas_b: (M,) the other poses' areas.
        sigmas: (K,) per-keypoint OKS constants; default COCO's 17.
        vis_thresh: count only the keypoints whose score in ``keypoints_b`` is above it.

    Returns:
        (M,) float64 OKS in [0, 1]; 0 for a pose with no keypoint counted.
    """
    pose = _check_keypoints(keypoints_a, 'keypoints_a', 2)
    others = _check_keypoints(keypoints_b, 'keypoints_b', 3)
    if others.shape[1] != pose.shape[0]:
        raise ValueError(f'keypoints_a has {pose.shape[0]} keypoints but keypoints_b has '
                         f'{others.shape[1]}')
    area = float(_check_areas(area_a, 'area_a', ()))
    other_areas = _check_areas(areas_b, 'areas_b', (others.shape[0],))
    return _oks(pose, others, area, other_areas, _keypoint_variances(sigmas, pose.shape[0]),
                vis_thresh)


def _check_people(keypoints, scores, areas):
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape == (0,):
        keypoints = keypoints.reshape(0, 0, 3)
    keypoints = _check_keypoints(keypoints, 'keypoints', 3)
    n = keypoints.shape[0]
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f'scores must have shape ({n},), one per pose in keypoints {keypoints.shape}, '
                         f'got {scores.shape}')
    if np.isnan(scores).any():
        raise ValueError('scores contain NaN')
    return keypoints, scores, _check_areas(areas, 'areas', (n,))


def _by_score(scores: np.ndarray) -> np.ndarray:
    """Indices from highest to lowest score; ties last index first (official reversed argsort)."""
    return np.argsort(scores, kind='stable')[::-1]


def oks_nms(keypoints, scores, areas, thresh: float = 0.9, sigmas: Optional[Sequence[float]] = None,
            vis_thresh: Optional[float] = None) -> np.ndarray:
    """Greedy OKS-NMS (official ``oks_nms``): the indices of the poses kept, best score first.

    Args:
        keypoints: (N, K, 3) x, y, score per keypoint of each pose.
        scores: (N,) pose scores.
        areas: (N,) pose areas (pixels^2, as in COCO).
        thresh: a pose whose OKS with a better kept pose is above this is dropped.
        sigmas: (K,) per-keypoint OKS constants; default COCO's 17.
        vis_thresh: count only keypoints scored above it in the pose compared (see module doc).

    Returns:
        int64 indices into the N poses.
    """
    keypoints, scores, areas = _check_people(keypoints, scores, areas)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    variances = _keypoint_variances(sigmas, keypoints.shape[1])
    order, keep = _by_score(scores), []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        oks = _oks(keypoints[best], keypoints[rest], areas[best], areas[rest], variances, vis_thresh)
        order = rest[oks <= thresh]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(keypoints, scores, areas, thresh: float = 0.9,
                 sigmas: Optional[Sequence[float]] = None, vis_thresh: Optional[float] = None, *,
                 max_dets: int = 20) -> np.ndarray:
    """Soft OKS-NMS with Gaussian rescoring (official ``soft_oks_nms``).

    Arguments as :func:`oks_nms`, except that ``thresh`` is the Gaussian's width: after each
    pick every remaining score becomes ``score * exp(-oks^2 / thresh)`` and the best is picked
    next. Nothing is dropped for overlap; at most ``max_dets`` (official: 20) indices are
    returned, in the order picked (int64).
    """
    keypoints, scores, areas = _check_people(keypoints, scores, areas)
    if not thresh > 0:
        raise ValueError(f'soft_oks_nms thresh (the Gaussian width) must be positive, got {thresh}')
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    variances = _keypoint_variances(sigmas, keypoints.shape[1])
    order = _by_score(scores)
    ranked, keep = scores[order], []
    while order.size and len(keep) < max_dets:
        best, rest = order[0], order[1:]
        keep.append(best)
        oks = _oks(keypoints[best], keypoints[rest], areas[best], areas[rest], variances, vis_thresh)
        ranked = ranked[1:] * np.exp(-oks ** 2 / thresh)
        resort = _by_score(ranked)
        order, ranked = rest[resort], ranked[resort]
    return np.asarray(keep, dtype=np.int64)
