"""COCO keypoint AP (object keypoint similarity, OKS) through ``pycocotools``' COCOeval.

Predictions become COCO result records; their score is the box score times the mean confidence
of the keypoints above ``in_vis_thre`` (0.2), the official rescoring (:func:`rescore`). With
ground-truth boxes (one prediction per annotated person) no OKS-NMS is applied; with detection
boxes :mod:`.evaluate` removes duplicates with OKS-NMS (:mod:`.nms`) first.
"""
from __future__ import annotations

import contextlib
import io
import json
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = ['COCO_OKS_SIGMAS', 'STAT_NAMES', 'coco_keypoint_ap', 'keypoint_results', 'rescore', 'load_coco']

STAT_NAMES = ('AP', 'AP50', 'AP75', 'AP_M', 'AP_L', 'AR', 'AR50', 'AR75', 'AR_M', 'AR_L')
# OKS per-keypoint constants of COCO's 17 keypoints (pycocotools' defaults, Ronchi & Perona).
COCO_OKS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                            .87, .87, .89, .89]) / 10.0


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:  # pragma: no cover
        raise ImportError('COCO keypoint AP needs pycocotools: pip install pycocotools') from e
    return COCO, COCOeval


def load_coco(ann: Union[str, dict]):
    """A pycocotools ``COCO`` from an annotation file path or an already-parsed dict (quietly)."""
    COCO, _ = _pycocotools()
    coco = COCO()
    if isinstance(ann, str):
        with open(ann) as f:
            ann = json.load(f)
    coco.dataset = ann
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def keypoint_results(image_ids: Sequence[int], keypoints: np.ndarray, scores: np.ndarray,
                     box_scores: Optional[Sequence[float]] = None, category_id: Union[int, Sequence[int]] = 1,
                     in_vis_thre: float = 0.2) -> List[dict]:
    """COCO result records from image keypoints (N, K, 2) and keypoint confidences (N, K);
    ``category_id`` one for all or one per instance (AP-10K: the species of its box)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(image_ids)
    if keypoints.shape[0] != n or scores.shape[:2] != keypoints.shape[:2]:
        raise ValueError(f'{n} image ids, keypoints {keypoints.shape}, scores {scores.shape} do not match')
    person = rescore(scores, np.ones(n) if box_scores is None else box_scores, in_vis_thre)
    flat = np.concatenate([keypoints, scores[..., None]], axis=-1).reshape(n, -1)
    cats = np.broadcast_to(np.asarray(category_id), (n,))
    return [{'image_id': int(image_ids[i]), 'category_id': int(cats[i]),
             'keypoints': [float(v) for v in flat[i]], 'score': float(person[i])} for i in range(n)]


def rescore(scores: np.ndarray, box_scores: Sequence[float], vis_thresh: float = 0.2) -> np.ndarray:
    """The official person score: box score x the mean confidence of the keypoints scoring above
    ``vis_thresh`` (0 when none does). ``scores`` (N, K), ``box_scores`` (N,) -> (N,)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(box_scores), -1)
    good = scores > vis_thresh
    mean = np.where(good, scores, 0.0).sum(1) / np.maximum(good.sum(1), 1)
    return mean * np.asarray(box_scores, dtype=np.float64)


def coco_keypoint_ap(ann: Union[str, dict, object], results: List[dict],
                     sigmas: Optional[Sequence[float]] = None, verbose: bool = False) -> Dict[str, float]:
    """Run COCOeval('keypoints') on ``results`` against annotation file / dict / COCO ``ann``.

    ``sigmas``: per-keypoint OKS constants; default COCO's 17. A keypoint set of another size
    must pass its own. Returns the 10 standard stats (``AP``, ``AP50``, ..., ``AR_L``).
    """
    _, COCOeval = _pycocotools()
    coco_gt = ann if hasattr(ann, 'loadRes') else load_coco(ann)
    if not results:
        raise ValueError('no keypoint predictions to evaluate (results is empty)')
    k = len(results[0]['keypoints']) // 3
    sig = COCO_OKS_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if len(sig) != k:
        raise ValueError(f'predictions have {k} keypoints but {len(sig)} OKS sigmas were given; '
                         'pass sigmas=[...] with one constant per keypoint')
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, 'keypoints')
        ev.params.kpt_oks_sigmas = sig
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
