"""Pose inference and evaluation on one top-down path: person boxes -> crops -> heatmaps (flip
test) -> keypoints in image coordinates -> the official rescoring (box score x mean keypoint score
above 0.2) -> OKS-NMS per image. Crops, flip test and decoding follow the heatmap codec the model
was trained with (``model.pretrained_cfg['codec']``, :mod:`hrnet_zoo.tasks.codecs`; ``codec=``
overrides it, ``method=`` replaces only its refinement: ``'argmax'``, ``'quarter'``, ``'dark'``).

* :func:`evaluate_coco`: COCO keypoint AP of a model on a :class:`~.data.COCOKeypoints` set, on
  its ground-truth boxes (no NMS, as before) or on person detections (``boxes=``: rescoring and
  OKS-NMS, as the official ``COCODataset.evaluate``), optionally writing the COCO results file.
* :func:`evaluate_keypoints`: the field's metric of the model's keypoint set
  (:mod:`hrnet_zoo.tasks.keypoints`): OKS AP with the set's sigmas (COCO-style sets, by the box
  area where mmpose's evaluator does (``use_area=False``: AIC, CrowdPose), per part for
  COCO-WholeBody, on the first 17 outputs for COCO+AIC "combine"), PCKh@0.5 with MPII's head boxes
  (:class:`~.data.MPIIKeypoints`), or PCK / PCKh / AUC / EPE / NME on ground-truth boxes (hands,
  fashion, Human3.6M, Horse-10, AnimalKingdom), under mmpose's names.
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
from ..keypoints import KeypointSet
from ..topdown import PIXEL_STD, load_image, normalize
from .metrics import COCO_OKS_SIGMAS, coco_keypoint_ap, keypoint_results, rescore
from .nms import oks_nms, soft_oks_nms
from .pck import mpii_pckh, set_metrics

__all__ = ['predict', 'predict_dataset', 'evaluate_coco', 'evaluate_keypoints', 'coco_results', 'oks_ground_truth',
           'select_people', 'detection_results', 'keypoints_of_crops', 'build_detector', 'detect_people',
           'WHOLEBODY_PARTS']

# COCO-WholeBody's parts in its 133 keypoints (mmpose CocoWholeBodyMetric's cuts: 17, 6, 68, 21, 21)
WHOLEBODY_PARTS = {'Body': (0, 17), 'Foot': (17, 23), 'Face': (23, 91), 'Left hand': (91, 112),
                   'Right hand': (112, 133)}


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
    rescored and OKS-NMSed (the official ``COCODataset.evaluate``); each box's own category when
    ``pred`` has ``category_ids``."""
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
            cat = pred['category_ids'][r] if 'category_ids' in pred else category_id
            results.append({'image_id': int(image_id), 'category_id': int(cat),
                            'keypoints': [round(float(v), 3) for v in flat], 'score': float(person[j])})
    return results


def coco_results(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                 method: Optional[str] = None, sigmas: Optional[Sequence[float]] = None,
                 device: Optional[torch.device] = None, num_workers: int = 0, vis_thresh: float = 0.2,
                 oks_thresh: float = 0.9, soft_nms: bool = False, progress: bool = False, codec: CodecLike = None,
                 keypoint_indices: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO keypoint result records of ``model`` on ``dataset`` (see :func:`evaluate_coco`), each
    with the category of its box; ``keypoint_indices``: only these outputs (COCO+AIC "combine":
    its first 17 on COCO)."""
    pred = predict_dataset(model, dataset, batch_size, flip_test, method, device, num_workers, progress,
                           codec=codec)
    if keypoint_indices is not None:
        idx = list(keypoint_indices)
        pred['keypoints'], pred['scores'] = pred['keypoints'][:, idx], pred['scores'][:, idx]
    samples = getattr(dataset, 'samples', None)
    cats = dataset.category['id'] if samples is None else np.array(
        [s.get('category_id', dataset.category['id']) or 1 for s in samples])
    if getattr(dataset, 'boxes_source', None) is None:
        return keypoint_results(pred['image_ids'], pred['keypoints'], pred['scores'], pred['box_scores'],
                                category_id=cats if cats is not None else 1, in_vis_thre=vis_thresh)
    if samples is not None:
        pred['category_ids'] = cats
    return detection_results(pred, dataset.category['id'] or 1, vis_thresh, oks_thresh, soft_nms, sigmas)


def _write_results(results: List[dict], results_json: Optional[str]) -> None:
    if results_json and _shard()[0] == 0:
        folder = os.path.dirname(os.path.abspath(results_json))
        os.makedirs(folder, exist_ok=True)
        with open(results_json + '.tmp', 'w') as f:
            json.dump(results, f)
        os.replace(results_json + '.tmp', results_json)


def evaluate_coco(model: nn.Module, dataset, batch_size: int = 32, flip_test: bool = True,
                  method: Optional[str] = None, sigmas: Optional[Sequence[float]] = None,
                  device: Optional[torch.device] = None, num_workers: int = 0, vis_thresh: float = 0.2,
                  oks_thresh: float = 0.9, soft_nms: bool = False, results_json: Optional[str] = None,
                  progress: bool = False, codec: CodecLike = None) -> Dict[str, float]:
    """COCO keypoint AP/AR of ``model`` on ``dataset`` against ``dataset.ann_file``, crops and
    decoding under the model's codec (``codec`` overrides it; see :func:`predict_dataset`); other
    keypoint sets: :func:`evaluate_keypoints`.

    On ground-truth boxes (the default dataset) every prediction is kept. On detection boxes
    (``COCOKeypoints(..., boxes=DETS.json)``) each person is rescored and duplicates are removed
    by OKS-NMS per image (``oks_thresh``; ``soft_nms`` for the Gaussian variant), as the official
    evaluation. ``results_json``: also write the COCO results file there."""
    results = coco_results(model, dataset, batch_size, flip_test, method, sigmas, device, num_workers, vis_thresh,
                           oks_thresh, soft_nms, progress, codec)
    _write_results(results, results_json)
    return coco_keypoint_ap(dataset.ann_file, results, sigmas=sigmas)


def oks_ground_truth(ann: Union[str, dict], kps: KeypointSet) -> dict:
    """The ground truth of an mmpose COCO-style file as COCOeval reads it for the set ``kps``:
    COCO-WholeBody's parts concatenated into its 133 keypoints (``num_keypoints`` recounted), and
    for sets evaluated by the box (``normalizer='bbox_area'``: mmpose ``CocoMetric(use_area=
    False)``, xtcocotools) every area replaced by ``0.53 * w * h`` of the box."""
    from .data import WHOLEBODY_FIELDS, read_coco_json
    data = read_coco_json(ann) if isinstance(ann, str) else ann
    metric = kps.metrics[0] if kps.metrics else None
    out = dict(data, annotations=[])
    for a in data['annotations']:
        a = dict(a)
        if kps.name == 'coco_wholebody':
            a['keypoints'] = [v for f in WHOLEBODY_FIELDS for v in a.get(f, [])]
            a['num_keypoints'] = int(np.count_nonzero(np.asarray(a['keypoints'])[2::3] > 0))
        if metric is not None and metric.normalizer == 'bbox_area':
            a['area'] = 0.53 * a['bbox'][2] * a['bbox'][3]
        out['annotations'].append(a)
    if not any(c.get('keypoints') for c in out.get('categories', [])):  # mmpose's animal / hand files
        cats = sorted({a.get('category_id', 1) for a in out['annotations']})
        out['categories'] = [{'id': c, 'name': str(c), 'keypoints': list(kps.keypoint_names)} for c in cats]
    return out


def _part(gt: dict, results: List[dict], lo: int, hi: int) -> Tuple[dict, List[dict]]:
    """Ground truth and results cut to keypoints ``lo .. hi - 1`` (one part of a whole-body set)."""
    anns = []
    for a in gt['annotations']:
        k = a['keypoints'][3 * lo:3 * hi]
        anns.append(dict(a, keypoints=k, num_keypoints=int(np.count_nonzero(np.asarray(k)[2::3] > 0))))
    return dict(gt, annotations=anns), [dict(r, keypoints=r['keypoints'][3 * lo:3 * hi]) for r in results]


def evaluate_keypoints(model: nn.Module, dataset, kps: Optional[KeypointSet] = None, batch_size: int = 32,
                       flip_test: bool = True, method: Optional[str] = None, sigmas: Optional[Sequence[float]] = None,
                       codec: CodecLike = None, results_json: Optional[str] = None, **options: Any) -> Dict[str, float]:
    """The field's metric of the keypoint set ``kps`` (default: the model's,
    :func:`~.specs.keypoint_set_of`, else the dataset's) for ``model`` on ``dataset``:

    * ``'AP'`` sets: :func:`evaluate_coco` with the set's sigmas (``sigmas`` overrides) against
      :func:`oks_ground_truth`, on the set's scored outputs (``keypoint_indices``); COCO-WholeBody
      adds ``Body AP`` ... ``Right hand AP`` (one COCOeval per part, its sigmas);
    * MPII (``'PCKh'`` by head boxes, :class:`~.data.MPIIKeypoints`): the official table
      (:func:`~.pck.mpii_pckh`: ``Head`` ... ``Mean``, ``Mean@0.1``);
    * PCK / PCKh / AUC / EPE / NME sets: :func:`~.pck.set_metrics` on the ground-truth boxes
      (the cleaned box of each sample, an annotation's ``head_size``).
    ``options``: those of :func:`evaluate_coco` (``oks_thresh``, ``vis_thresh``, ``num_workers``, ...)."""
    from .specs import keypoint_set_of
    kps = kps or keypoint_set_of(model) or getattr(dataset, 'keypoint_set', None)
    metric = kps.metrics[0] if kps is not None and kps.metrics else None
    if metric is None or metric.metric == 'AP':
        sig = sigmas if sigmas is not None else (kps.sigmas if kps is not None else None)
        if kps is None:
            return evaluate_coco(model, dataset, batch_size, flip_test, method, sig, codec=codec,
                                 results_json=results_json, **options)
        idx = metric.keypoint_indices
        sig = None if sig is None else (np.asarray(sig)[list(idx)] if idx is not None else sig)
        gt = oks_ground_truth(dataset.ann_file, kps)
        results = coco_results(model, dataset, batch_size, flip_test, method, sig, codec=codec, keypoint_indices=idx,
                               **options)
        _write_results(results, results_json)
        stats = coco_keypoint_ap(gt, results, sigmas=sig)
        if kps.name == 'coco_wholebody':
            for part, (lo, hi) in WHOLEBODY_PARTS.items():
                part_gt, part_results = _part(gt, results, lo, hi)
                stats[f'{part} AP'] = coco_keypoint_ap(part_gt, part_results, sigmas=sig[lo:hi])['AP']
        return stats
    if metric.metric == 'mAP':
        raise ValueError(f'{kps.name} is evaluated with PoseTrack\'s multi-person mAP (poseval), which hrnet-zoo '
                         'does not implement: write the results and run poseval, or evaluate another set')
    pred = predict_dataset(model, dataset, batch_size, flip_test, method, codec=codec,
                           **{k: options[k] for k in ('device', 'num_workers', 'progress') if k in options})
    samples = dataset.samples
    gt = np.stack([s['keypoints'][:, :2] for s in samples])
    mask = np.stack([s['keypoints'][:, 2] > 0 for s in samples])
    if metric.metric == 'PCKh' and metric.normalizer == 'head' and kps.name == 'mpii':
        heads = [s.get('head_box') for s in samples]
        if any(h is None for h in heads):
            raise ValueError('MPII PCKh needs the head boxes: MPIIKeypoints(..., head_boxes=mpii_gt_val.mat)')
        return mpii_pckh(pred['keypoints'], gt, mask, np.stack(heads), metric.threshold)
    boxes = np.array([s.get('clean_bbox', s['bbox']) for s in samples], dtype=np.float64)
    heads = np.array([s.get('head_size', 0.0) for s in samples], dtype=np.float64)
    return set_metrics(kps.metrics, pred['keypoints'], gt, mask, bboxes=boxes, head_sizes=heads)


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
