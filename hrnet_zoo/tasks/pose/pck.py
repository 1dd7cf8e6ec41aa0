"""The keypoint metrics other than COCO AP and NME: PCK, PCKh (MPII), EPE and the AUC of the PCK
curve, as mmpose computes them (``mmpose/evaluation/functional/keypoint_eval.py`` and
``metrics/keypoint_2d_metrics.py``, open-mmlab/mmpose @ 759b39c) and, for MPII, as the official
evaluation does (deep-high-resolution-net.pytorch ``lib/dataset/mpii.py`` ``evaluate``).

Inputs: predictions and ground truth ``(N, K, D)`` in the same pixel convention, a visibility mask
``(N, K)`` (``True``/1 where the ground-truth keypoint is annotated; masked keypoints are left
out; ``None`` keeps all) and a normaliser per instance: a scalar, ``(N,)``, or ``(N, D)`` per axis.
An instance whose normaliser is 0 is left out (mmpose ``_calc_distances``); a negative one is an
error. All results are fractions (x 100 for the tables that print percent).

- ``pck``: the mean over keypoints of each keypoint's share of instances with
  ``||pred - gt|| / s < thr`` (strict, as mmpose's ``keypoint_pck_accuracy``); keypoints with no
  visible instance are left out of the mean. mmpose's ``PCKAccuracy`` normalises by the box,
  ``s = max(w, h)`` (:func:`bbox_size`).
- ``mpii_pckh``: PCKh@0.5 with the official constants: head size ``s = 0.6 * ||(x2, y2) - (x1, y1)||``
  of the annotated head box (``SC_BIAS = 0.6``, :func:`head_size`), correct when the normalised
  distance is ``<= 0.5`` (inclusive, as the official code and mmpose 0.x; mmpose 1.x uses ``<``),
  the 'Mean' over every visible joint but pelvis (6) and thorax (7), and 'Mean@0.1' at threshold 0.1.
  The official code adds 1 to 0-based predictions because ``gt_valid.mat`` is 1-based: give both in
  one convention.
- ``epe``: the mean distance in pixels over the visible keypoints.
- ``pck_auc``: mmpose's ``keypoint_auc``: the mean of ``pck`` at thresholds ``i / num_thresholds``
  (``i = 0 .. num_thresholds - 1``) of ``norm_factor`` pixels (defaults 20 and 30 px: 0, 1.5, ...,
  28.5 px). Threshold 0 counts nothing (strict ``<``), so perfect predictions score
  ``(num_thresholds - 1) / num_thresholds`` = 0.95, as in mmpose's published AUCs.
- ``keypoint_nme``: mmpose's ``keypoint_nme``: the mean normalised distance over the visible
  keypoints (Horse-10: normalised by the nose-eye distance of each instance).
- :func:`set_metrics`: every metric a keypoint set lists (:class:`~hrnet_zoo.tasks.keypoints.Metric`)
  but COCO AP, under mmpose's names (``PCK@0.2``, ``PCKh@0.7``, ``AUC``, ``EPE``, ``NME``).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['MPII_SC_BIAS', 'MPII_JOINT_GROUPS', 'bbox_size', 'head_size', 'pck_accuracy', 'pck', 'pckh',
           'mpii_pckh', 'epe', 'pck_auc', 'keypoint_nme', 'set_metrics']

ArrayLike = Union[np.ndarray, Sequence]
MPII_SC_BIAS = 0.6  # head size = 0.6 x head-box diagonal (official evaluate, mmpose MpiiDataset)
# MPII's 16 joints (0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 6 pelvis, 7 thorax,
# 8 upper_neck, 9 head_top, 10 r_wrist, 11 r_elbow, 12 r_shoulder, 13 l_shoulder, 14 l_elbow,
# 15 l_wrist) in the official table's groups; pelvis and thorax are in no group and not in 'Mean'
MPII_JOINT_GROUPS = {'Head': (9,), 'Shoulder': (12, 13), 'Elbow': (11, 14), 'Wrist': (10, 15),
                     'Hip': (2, 3), 'Knee': (1, 4), 'Ankle': (0, 5)}
_MPII_LEFT_OUT = (6, 7)


def _coords(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(f'predictions {pred.shape} and ground truth {gt.shape} must both be (N, K, D)')
    if mask is None:
        return pred, gt, np.ones(pred.shape[:2], dtype=bool)
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:  # mmpose's keypoints_visible (N, K, 1)
        mask = mask[..., 0]
    if mask.shape != pred.shape[:2]:
        raise ValueError(f'mask {mask.shape} does not match {pred.shape[:2]} (N instances, K keypoints)')
    return pred, gt, mask > 0


def _norm(norm: ArrayLike, n: int, d: int) -> np.ndarray:
    """The normaliser as (N, D)."""
    s = np.asarray(norm, dtype=np.float64)
    if s.ndim == 0:
        s = np.full((n, d), float(s))
    elif s.shape in ((n,), (n, 1)):
        s = np.repeat(s.reshape(n, 1), d, axis=1)
    elif s.shape != (n, d):
        raise ValueError(f'normaliser of shape {s.shape}: give a scalar, (N,) or (N, D) = ({n},) or ({n}, {d})')
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError('a normaliser is negative or not finite (box or head size); check the boxes')
    return s


def _distances(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike], norm: ArrayLike) -> np.ndarray:
    """Normalised distances (N, K), NaN where masked or the instance's normaliser is 0."""
    pred, gt, mask = _coords(pred, gt, mask)
    n, _, d = pred.shape
    s = _norm(norm, n, d)
    keep = mask & np.all(s > 0, axis=1)[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        dist = np.linalg.norm((pred - gt) / s[:, None, :], axis=-1)
    return np.where(keep, dist, np.nan)


def _share_within(dist: np.ndarray, thresholds: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Per threshold and keypoint the share of visible instances within it (T, K); NaN where a
    keypoint has no visible instance."""
    valid = ~np.isnan(dist)
    d = np.where(valid, dist, np.inf)[None]
    t = thresholds.reshape(-1, 1, 1)
    hits = (d <= t) if inclusive else (d < t)
    count = valid.sum(axis=0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, hits.sum(axis=1) / count, np.nan)


def bbox_size(boxes: ArrayLike, box_format: str = 'xywh') -> np.ndarray:
    """``max(w, h)`` of each box (N,): PCK's normaliser in mmpose. ``box_format``: ``'xywh'``
    (COCO, this project's convention) or ``'xyxy'``."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f'boxes must be (N, 4), got {b.shape}')
    if box_format == 'xywh':
        return b[:, 2:].max(axis=1)
    if box_format == 'xyxy':
        return (b[:, 2:] - b[:, :2]).max(axis=1)
    raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")


def head_size(head_boxes: ArrayLike, sc_bias: float = MPII_SC_BIAS) -> np.ndarray:
    """MPII's head size (N,): ``sc_bias`` x the diagonal of each head box ``[x1, y1, x2, y2]``
    (``(N, 4)`` or ``(N, 2, 2)``, the layout of ``gt_valid.mat`` ``headboxes_src`` per person)."""
    b = np.asarray(head_boxes, dtype=np.float64)
    if b.ndim == 3 and b.shape[1:] == (2, 2):
        b = b.reshape(-1, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f'head boxes must be (N, 4) [x1, y1, x2, y2] or (N, 2, 2), got {b.shape}')
    return sc_bias * np.linalg.norm(b[:, 2:] - b[:, :2], axis=1)


def pck_accuracy(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike], norm: ArrayLike,
                 thr: float = 0.2) -> np.ndarray:
    """Each keypoint's PCK@``thr`` (K,): the share of its visible instances with normalised
    distance ``< thr``; NaN for a keypoint never visible."""
    return _share_within(_distances(pred, gt, mask, norm), np.array([thr]))[0]


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else 0.0


def pck(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike] = None, *, norm: Optional[ArrayLike] = None,
        bboxes: Optional[ArrayLike] = None, box_format: str = 'xywh', thr: float = 0.2) -> float:
    """PCK@``thr``: the mean of :func:`pck_accuracy` over the keypoints that are visible somewhere
    (0.0 when none is). Normalised by ``norm`` or by :func:`bbox_size` of ``bboxes`` (one of them)."""
    if (norm is None) == (bboxes is None):
        raise ValueError('give one normaliser: norm= (scalar, (N,) or (N, D)) or bboxes= (N, 4)')
    s = bbox_size(bboxes, box_format) if norm is None else norm
    return _nanmean(pck_accuracy(pred, gt, mask, s, thr))


def pckh(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike], head_sizes: ArrayLike,
         thr: float = 0.5) -> np.ndarray:
    """Each keypoint's PCKh@``thr`` (K,): share of visible instances within ``thr`` x head size,
    inclusive (``<=``, the official MPII evaluation); NaN for a keypoint never visible."""
    return _share_within(_distances(pred, gt, mask, head_sizes), np.array([thr]), inclusive=True)[0]


def mpii_pckh(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike], head_boxes: ArrayLike,
              thr: float = 0.5) -> Dict[str, float]:
    """The official MPII table: PCKh@``thr`` per joint group (:data:`MPII_JOINT_GROUPS`, the mean
    of left and right), ``'Mean'`` over all visible joints but pelvis and thorax, and ``'Mean@0.1'``.
    ``pred``/``gt`` (N, 16, 2); ``head_boxes`` (N, 4) ``[x1, y1, x2, y2]`` (see :func:`head_size`)."""
    pred, gt, mask = _coords(pred, gt, mask)
    if pred.shape[1] != 16:
        raise ValueError(f'MPII has 16 joints, got {pred.shape[1]}')
    dist = _distances(pred, gt, mask, head_size(head_boxes))
    per_joint = _share_within(dist, np.array([thr, 0.1]), inclusive=True)  # (2, 16)
    out = {group: float(np.mean(per_joint[0, list(ids)])) for group, ids in MPII_JOINT_GROUPS.items()}
    counted = np.ones(16, dtype=bool)
    counted[list(_MPII_LEFT_OUT)] = False
    visible = (~np.isnan(dist)).sum(axis=0)[counted]  # the official jnt_count, the weights of 'Mean'
    for key, row in (('Mean', per_joint[0]), ('Mean@0.1', per_joint[1])):
        out[key] = float(np.nansum(row[counted] * visible) / max(visible.sum(), 1))
    return out


def epe(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike] = None) -> float:
    """End-point error: the mean pixel distance over the visible keypoints (0.0 when none is)."""
    return _nanmean(_distances(pred, gt, mask, 1.0).ravel())


def pck_auc(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike] = None, norm_factor: float = 30.0,
            num_thresholds: int = 20) -> float:
    """mmpose's AUC: the mean of PCK at thresholds ``i / num_thresholds`` x ``norm_factor`` pixels,
    ``i = 0 .. num_thresholds - 1`` (perfect predictions: 0.95 with 20 thresholds)."""
    if norm_factor <= 0 or num_thresholds < 1:
        raise ValueError(f'norm_factor must be > 0 and num_thresholds >= 1, got {norm_factor}, {num_thresholds}')
    thresholds = np.arange(num_thresholds) / num_thresholds
    curve = _share_within(_distances(pred, gt, mask, norm_factor), thresholds)  # (T, K)
    return float(np.mean([_nanmean(row) for row in curve]))


def keypoint_nme(pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike], norm: ArrayLike) -> float:
    """mmpose's ``keypoint_nme``: the mean of ``||pred - gt|| / s`` over the visible keypoints of
    instances whose normaliser ``s`` (scalar, (N,) or (N, D)) is positive (0.0 when none)."""
    return _nanmean(_distances(pred, gt, mask, norm).ravel())


def set_metrics(metrics: Sequence, pred: ArrayLike, gt: ArrayLike, mask: Optional[ArrayLike] = None,
                bboxes: Optional[ArrayLike] = None, head_sizes: Optional[ArrayLike] = None) -> Dict[str, float]:
    """The metrics a keypoint set lists (its :class:`~hrnet_zoo.tasks.keypoints.Metric` entries; not
    ``'AP'`` / ``'mAP'``, which need the COCO / PoseTrack evaluators), named as mmpose reports them:
    ``PCK@t`` (normalised by ``bbox_size`` of ``bboxes`` (N, 4) xywh, by ``head_sizes`` (N,), or by
    the distance of two keypoints of each instance), ``PCKh@t`` (head), ``AUC`` (pixels), ``EPE``
    and ``NME`` (the keypoints' distance or the box size). Instances whose normaliser is 0 are left
    out of a metric, as mmpose does."""
    pred_, gt_, mask_ = _coords(pred, gt, mask)
    out: Dict[str, float] = {}
    for m in metrics:
        if m.metric in ('AP', 'mAP'):
            raise ValueError(f'{m.metric} is a COCO / PoseTrack evaluation; use evaluate_coco')
        if m.metric == 'EPE':
            out['EPE'] = epe(pred_, gt_, mask_)
            continue
        if m.metric == 'AUC':
            out['AUC'] = pck_auc(pred_, gt_, mask_, m.norm_factor or 30.0, m.num_thresholds or 20)
            continue
        norm = _normaliser(m, gt_, bboxes, head_sizes)
        if m.metric == 'NME':
            out['NME'] = keypoint_nme(pred_, gt_, mask_, norm)
        elif m.metric in ('PCK', 'PCKh'):
            out[f'{m.metric}@{m.threshold:g}'] = _nanmean(pck_accuracy(pred_, gt_, mask_, norm, m.threshold))
        else:
            raise ValueError(f'unknown metric {m.metric!r}')
    return out


def _normaliser(m, gt: np.ndarray, bboxes: Optional[ArrayLike], head_sizes: Optional[ArrayLike]) -> np.ndarray:
    """The per-instance normaliser (N,) a :class:`~hrnet_zoo.tasks.keypoints.Metric` names."""
    if m.normalizer in ('bbox', 'bbox_size'):
        if bboxes is None:
            raise ValueError(f'{m.metric} is normalised by the box: pass bboxes (N, 4) [x, y, w, h]')
        return bbox_size(bboxes)
    if m.normalizer == 'head':
        if head_sizes is None:
            raise ValueError(f'{m.metric} is normalised by the head size: pass head_sizes (N,)')
        return np.asarray(head_sizes, dtype=np.float64).reshape(-1)
    if m.normalizer == 'keypoints':
        a, b = m.norm_keypoints
        return np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    if m.normalizer == 'pixels':
        return np.full(len(gt), float(m.norm_factor))
    raise ValueError(f'{m.metric}: unsupported normaliser {m.normalizer!r}')
