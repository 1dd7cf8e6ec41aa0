"""Pose inference and evaluation on one top-down path: person boxes -> crops -> heatmaps (flip
test) -> keypoints in image coordinates -> the official rescoring (box score x mean keypoint score
above 0.2) -> OKS-NMS per image. Crops, flip test and decoding follow the heatmap codec the model
was trained with (``model.pretrained_cfg['codec']``, :mod:`hrnet_zoo.tasks.codecs`; ``codec=``
overrides it, ``method=`` replaces only its refinement: ``'argmax'``, ``'quarter'``, ``'dark'``).

* :func:`evaluate_coco`: COCO keypoint AP of a model on a :class:`~.data.COCOKeypoints` set, on
  its ground-truth boxes (no NMS, as before) or on person detections (``boxes=``: rescoring and
  OKS-NMS, as the official ``COCODataset.evaluate``), optionally writing the COCO results file.
* :func:`predict`: every person of one image, from given boxes, a detector or the whole image.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..codecs import HeatmapCodec, dataset_with_codec, resolve_codec
from ..topdown import PIXEL_STD, load_image, normalize
from .metrics import COCO_OKS_SIGMAS, coco_keypoint_ap, keypoint_results, rescore
from .nms import oks_nms, soft_oks_nms

__all__ = ['predict', 'predict_dataset', 'evaluate_coco', 'select_people', 'detection_results',
           'keypoints_of_crops', 'build_detector', 'detect_people']


CodecLike = Union[None, str, HeatmapCodec]


def keypoints_of_crops(model: nn.Module, crops: torch.Tensor, centers, scales, rotations=None,
                       flip_test: bool = True, method: Optional[str] = None,
                       codec: CodecLike = None) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised crops (N, 3, H, W) with their crop geometry -> image keypoints (N, K, 2) and
    scores (N, K): heatmaps (averaged with the flipped crop's under ``flip_test``), decoded by the
    model's codec (or ``codec``)."""
    codec = resolve_codec(model, codec, method)
    device = next(model.parameters()).device
    heatmaps = codec.predict_heatmaps(model, crops.to(device), model.flip_pairs, flip_test)
    return codec.decode(heatmaps.float().cpu(), np.asarray(centers), np.asarray(scales),
                        None if rotations is None else np.asarray(rotations))


def select_people(keypoints: np.ndarray, scores: np.ndarray, box_scores: Sequence[float], areas: Sequence[float],
                  vis_thresh: float = 0.2, oks_thresh: float = 0.9, soft_nms: bool = False,
                  sigmas: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The people of one image to keep: the official rescoring then (soft) OKS-NMS (``sigmas``:
    COCO's for 17 keypoints, else their mean for every keypoint unless given). Returns the kept
    indices (best first) and every candidate's person score."""
    person = rescore(scores, box_scores, vis_thresh)
    k = np.shape(scores)[-1]
    if sigmas is None and k != len(COCO_OKS_SIGMAS):  # no OKS constants known: COCO's mean for every keypoint
        sigmas = np.full(k, COCO_OKS_SIGMAS.mean())
    poses = np.concatenate([np.asarray(keypoints, dtype=np.float64), np.asarray(scores)[..., None]], axis=-1)
    keep = (soft_oks_nms if soft_nms else oks_nms)(poses, person, np.asarray(areas, dtype=np.float64),
                                                   oks_thresh, sigmas)
    return keep, person


def _shard() -> Tuple[int, int]:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                    method: Optional[str] = None, device: Optional[torch.device] = None, num_workers: int = 0,
                    progress: bool = False, shard: Optional[Tuple[int, int]] = None,
                    codec: CodecLike = None) -> Dict[str, np.ndarray]:
    """Keypoints in image coordinates for every sample of ``dataset``: ``image_ids``,
    ``keypoints`` (N, K, 2), ``scores`` (N, K), ``box_scores`` (N,), ``areas`` (N,), in dataset order.
    The dataset crops under the model's codec (``codec``) when its own is unset; a dataset set to
    a codec of another crop is an error.

    Under ``torch.distributed`` (or with ``shard=(rank, world_size)``) each process runs every
    ``world_size``-th sample and the results are gathered, so any number of processes gives the
    same arrays."""
    from ...train.distributed import all_gather_object
    codec = resolve_codec(model, codec, method)
    dataset = dataset_with_codec(dataset, codec)
    if device is not None:
        model.to(device)
    rank, world = shard or _shard()
    was_training = model.training
    model.eval()
    indices = list(range(rank, len(dataset), world))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc='pose eval', unit='batch', disable=rank != 0)
    parts: Dict[str, List[np.ndarray]] = defaultdict(list)
    for batch in loader:
        pts, conf = keypoints_of_crops(model, batch['image'], batch['center'].numpy(), batch['scale'].numpy(),
                                       batch['rotation'].numpy(), flip_test, codec=codec)
        for key, value in (('image_ids', np.asarray(batch['image_id'])), ('keypoints', pts), ('scores', conf),
                           ('box_scores', batch['score'].numpy()), ('areas', batch['area'].numpy()),
                           ('index', np.asarray(batch['index']))):
            parts[key].append(value)
    model.train(was_training)
    mine = {k: np.concatenate(v) for k, v in parts.items()}
    if shard is None and world > 1:
        gathered = [g for g in all_gather_object(mine) if g]
        mine = {k: np.concatenate([g[k] for g in gathered]) for k in gathered[0]}
    order = np.argsort(mine.pop('index'), kind='stable')
    return {k: v[order] for k, v in mine.items()}


def detection_results(pred: Dict[str, np.ndarray], category_id: int = 1, vis_thresh: float = 0.2,
                      oks_thresh: float = 0.9, soft_nms: bool = False,
                      sigmas: Optional[Sequence[float]] = None) -> List[dict]:
    """COCO keypoint result records from :func:`predict_dataset` on detection boxes: per image,
    rescored and OKS-NMSed (the official ``COCODataset.evaluate``)."""
    by_image: Dict[int, List[int]] = defaultdict(list)
    for i, image_id in enumerate(pred['image_ids'].tolist()):
        by_image[image_id].append(i)
    results = []
    for image_id, rows in sorted(by_image.items()):
        rows = np.asarray(rows)
        keep, person = select_people(pred['keypoints'][rows], pred['scores'][rows], pred['box_scores'][rows],
                                     pred['areas'][rows], vis_thresh, oks_thresh, soft_nms, sigmas)
        for j in keep:
            r = rows[j]
            flat = np.concatenate([pred['keypoints'][r], pred['scores'][r][:, None]], axis=1).reshape(-1)
            results.append({'image_id': int(image_id), 'category_id': int(category_id),
                            'keypoints': [round(float(v), 3) for v in flat], 'score': float(person[j])})
    return results


def evaluate_coco(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                  method: Optional[str] = None, sigmas: Optional[Sequence[float]] = None,
                  device: Optional[torch.device] = None, num_workers: int = 0, vis_thresh: float = 0.2,
                  oks_thresh: float = 0.9, soft_nms: bool = False, results_json: Optional[str] = None,
                  progress: bool = False, codec: CodecLike = None) -> Dict[str, float]:
    """COCO keypoint AP/AR of ``model`` on ``dataset`` against ``dataset.ann_file``, crops and
    decoding under the model's codec (``codec`` overrides it; see :func:`predict_dataset`).

    On ground-truth boxes (the default dataset) every prediction is kept. On detection boxes
    (``COCOKeypoints(..., boxes=DETS.json)``) each person is rescored and duplicates are removed
    by OKS-NMS per image (``oks_thresh``; ``soft_nms`` for the Gaussian variant), as the official
    evaluation. ``results_json``: also write the COCO results file there."""
    pred = predict_dataset(model, dataset, batch_size, flip_test, method, device, num_workers, progress,
                           codec=codec)
    cat = dataset.category['id']
    if getattr(dataset, 'boxes_source', None) is None:
        results = keypoint_results(pred['image_ids'], pred['keypoints'], pred['scores'], pred['box_scores'],
                                   category_id=cat, in_vis_thre=vis_thresh)
    else:
        results = detection_results(pred, cat, vis_thresh, oks_thresh, soft_nms, sigmas)
    if results_json and _shard()[0] == 0:
        folder = os.path.dirname(os.path.abspath(results_json))
        os.makedirs(folder, exist_ok=True)
        with open(results_json + '.tmp', 'w') as f:
            json.dump(results, f)
        os.replace(results_json + '.tmp', results_json)
    return coco_keypoint_ap(dataset.ann_file, results, sigmas=sigmas)


# --- one image ------------------------------------------------------------------------------------
ImageLike = Union[str, os.PathLike, torch.Tensor, np.ndarray, Any]


def as_image_tensor(image: ImageLike) -> torch.Tensor:
    """A path, PIL image, HWC uint8 array or (3, H, W) tensor (uint8, or float in [0, 1]) ->
    (3, H, W) float tensor in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(str(image))
    if isinstance(image, torch.Tensor):
        return image.float() / 255 if image.dtype == torch.uint8 else image.float()
    arr = np.asarray(image.convert('RGB') if hasattr(image, 'convert') else image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f'expected an RGB image (H, W, 3), got an array of shape {arr.shape}')
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _boxes_array(boxes) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) xywh boxes and (N,) scores from an (N, 4|5) array or COCO detection dicts."""
    if not len(boxes):
        return np.zeros((0, 4)), np.zeros(0)
    if isinstance(boxes[0], dict):
        return (np.array([b['bbox'][:4] for b in boxes], dtype=np.float64).reshape(-1, 4),
                np.array([b.get('score', 1.0) for b in boxes], dtype=np.float64))
    arr = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    if arr.shape[1] not in (4, 5):
        raise ValueError(f'boxes must be (N, 4) [x, y, w, h] or (N, 5) with a score, got {arr.shape}')
    return arr[:, :4], (arr[:, 4] if arr.shape[1] == 5 else np.ones(len(arr)))


def build_detector(name: str, checkpoint: Optional[str] = None,
                   device: Union[str, torch.device, None] = None) -> nn.Module:
    """A person detector by name: a torchvision detection model (``'fasterrcnn_resnet50_fpn_v2'``,
    with its COCO weights, downloaded by torchvision, or ``checkpoint``) or a registered hrnet-zoo
    detector (``'fasterrcnn_hrnetv2p_w18'``, weights from ``checkpoint``)."""
    import torchvision
    from ... import create_model, list_models
    if name in list_models(task='detection'):
        if not checkpoint:
            raise ValueError(f'detector {name!r} needs its weights: pass --detector-checkpoint FILE '
                             '(python -m hrnet_zoo.tasks.detection train writes one), or person boxes with '
                             '--det-boxes DETS.json')
        model = create_model(name, checkpoint_path=checkpoint)
    elif name in torchvision.models.list_models(module=torchvision.models.detection):
        if checkpoint:
            from ...checkpoint import load_strict, read_state_dict
            model = load_strict(torchvision.models.get_model(name, weights=None, weights_backbone=None),
                                read_state_dict(checkpoint), checkpoint)
        else:
            try:
                model = torchvision.models.get_model(name, weights='DEFAULT')
            except Exception as e:  # no network: URLError / OSError / RuntimeError from the hub download
                raise RuntimeError(
                    f'could not get the COCO weights of torchvision detector {name!r} ({type(e).__name__}: '
                    f'{str(e).splitlines()[0] if str(e) else ""}); download them elsewhere and pass '
                    '--detector-checkpoint FILE (detector_checkpoint=), or give person boxes with --det-boxes '
                    'DETS.json (a COCO detection-results file)') from None
    else:
        raise ValueError(f'unknown detector {name!r}: a torchvision detection model '
                         "(torchvision.models.list_models(module=torchvision.models.detection)) or one of "
                         f'{list_models(task="detection")}')
    return model.to(device or 'cpu').eval()


@torch.no_grad()
def detect_people(detector: nn.Module, image: torch.Tensor, score_thresh: float = 0.5,
                  person_label: int = 1) -> np.ndarray:
    """Person boxes (N, 5) [x, y, w, h, score] of a torchvision-style detector on one image."""
    device = next(detector.parameters()).device
    out = detector.eval()([image.to(device)])[0]
    keep = (out['labels'] == person_label) & (out['scores'] >= score_thresh)
    from torchvision.ops import box_convert
    boxes = box_convert(out['boxes'][keep].float().cpu(), 'xyxy', 'xywh')
    return torch.cat([boxes, out['scores'][keep].float().cpu()[:, None]], 1).numpy()


@torch.no_grad()
def predict(model: nn.Module, image: ImageLike, boxes=None, detector: Union[None, str, nn.Module] = None, *,
            flip_test: bool = True, method: Optional[str] = None, det_score_thresh: float = 0.0,
            vis_thresh: float = 0.2, oks_thresh: float = 0.9, soft_nms: bool = False,
            sigmas: Optional[Sequence[float]] = None, batch_size: int = 32,
            codec: CodecLike = None) -> List[Dict[str, Any]]:
    """Every person of ``image``: keypoints in image coordinates with scores, OKS-NMS applied.

    Args:
        model: a pose model (its ``input_size`` and ``flip_pairs`` are used).
        image: a path, PIL image, HWC uint8 array or (3, H, W) tensor.
        boxes: person boxes, (N, 4) [x, y, w, h] / (N, 5) with scores, or COCO detection dicts.
        detector: a torchvision-style detection model, or a name for :func:`build_detector`, used
            when ``boxes`` is None. With neither, the whole image is one person box.
        det_score_thresh: boxes scoring below it are dropped.
        codec: the heatmap codec of crops and decoding (default: the model's); ``method`` replaces
            its refinement.
    Returns one dict per person, best first: ``bbox`` [x, y, w, h], ``bbox_score``, ``keypoints``
    (K, 2), ``keypoint_scores`` (K,), ``score`` (the official rescoring).
    """
    image = as_image_tensor(image)
    h, w = image.shape[-2:]
    if boxes is None and detector is not None:
        detector = build_detector(detector) if isinstance(detector, str) else detector
        boxes = detect_people(detector, image, det_score_thresh)
    xywh, box_scores = _boxes_array([[0.0, 0.0, float(w), float(h)]] if boxes is None else boxes)
    good = (box_scores >= det_score_thresh) & (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    xywh, box_scores = xywh[good], box_scores[good]
    if not len(xywh):
        return []
    codec = resolve_codec(model, codec, method)
    crops, centers, scales = zip(*(codec.crop_box(image, b, model.input_size) for b in xywh))
    pts, conf = [], []
    for i in range(0, len(crops), batch_size):
        batch = torch.stack([normalize(c) for c in crops[i:i + batch_size]])
        p, c = keypoints_of_crops(model.eval(), batch, centers[i:i + batch_size], scales[i:i + batch_size],
                                  flip_test=flip_test, codec=codec)
        pts.append(p)
        conf.append(c)
    pts, conf = np.concatenate(pts), np.concatenate(conf)
    areas = np.prod(np.asarray(scales) * PIXEL_STD, axis=1)
    keep, person = select_people(pts, conf, box_scores, areas, vis_thresh, oks_thresh, soft_nms, sigmas)
    return [{'bbox': xywh[i].tolist(), 'bbox_score': float(box_scores[i]), 'keypoints': pts[i],
             'keypoint_scores': conf[i], 'score': float(person[i])} for i in keep]
