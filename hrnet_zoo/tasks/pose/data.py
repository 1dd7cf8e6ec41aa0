"""COCO-format top-down keypoint data: the dataset, the detection-results reader and the paired
image/keypoint transforms of the official training recipe.

:class:`COCOKeypoints` reads a COCO download as is (``annotations/person_keypoints_val2017.json`` +
``val2017/*.jpg``) or any COCO-format file. By default one sample per annotated person box
(ground-truth boxes): non-crowd annotations with at least one labelled keypoint, boxes cleaned as
the codec says (``msra``: the official sanitizing ``x2 = min(W - 1, x1 + max(0, w - 1))``; ``udp``:
clipped to ``[0, W-1] x [0, H-1]``); a box with nothing left is skipped and counted in
``num_skipped_boxes``. With ``boxes=`` (a COCO detection-results file, e.g. the official
``COCO_val2017_detections_AP_H_56_person.json``) the samples are the person detections instead,
as the official ``_load_coco_person_detection_results``: category 1, score >= ``det_score_thresh``,
boxes used as given.

Crops and targets follow the heatmap codec (:mod:`hrnet_zoo.tasks.codecs`): ``codec=`` names it;
unset, the dataset follows the model it is evaluated or trained with (:func:`~.evaluate.evaluate_coco`,
:func:`~.training.fit_pose` call :meth:`COCOKeypoints.with_codec`), and ``'udp'`` when read on its
own. Training samples get the official augmentation (``lib/dataset/JointsDataset.py``): half-body
crops (probability 0.3 for people with more than 8 labelled joints), random scale (factor 0.35),
rotation (45 degrees, with probability 0.6) and horizontal flip of the image with the flip pairs;
targets are Gaussian heatmaps with per-joint target weights.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ..codecs import HeatmapCodec, get_codec
from ..heatmap import gaussian_heatmaps
from ..topdown import PIXEL_STD, apply_affine, check_flip_pairs, load_image, normalize
from .specs import COCO_FLIP_PAIRS, COCO_JOINT_WEIGHTS, COCO_UPPER_BODY_IDS

__all__ = ['COCOKeypoints', 'read_coco_json', 'keypoint_category', 'read_detections', 'half_body_box',
           'flip_sample', 'heatmap_targets', 'iter_frames']

CodecLike = Union[None, str, HeatmapCodec]


def read_coco_json(path: str) -> dict:
    """Parse a COCO annotation file with clear errors for a missing, malformed or empty file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'annotation file {path!r} does not exist')
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'annotation file {path!r} is not valid JSON: {e}') from e
    if not isinstance(data, dict) or not data.get('images') or not data.get('annotations'):
        raise ValueError(f'annotation file {path!r} has no images or no annotations; expected a '
                         'COCO keypoints file such as person_keypoints_val2017.json')
    return data


def keypoint_category(data: dict, category_id: Optional[int] = None) -> dict:
    """The category whose ``keypoints`` names define the keypoint set (person by default)."""
    cats = [c for c in data.get('categories', []) if c.get('keypoints')]
    if category_id is not None:
        cats = [c for c in cats if c['id'] == category_id]
    if not cats:
        raise ValueError('the annotation file has no category with a "keypoints" list'
                         + (f' and id {category_id}' if category_id is not None else ''))
    return cats[0]


def read_detections(detections: Union[str, Sequence[dict]], score_thresh: float = 0.0,
                    category_id: int = 1) -> List[dict]:
    """Person detections of a COCO detection-results file (or list): ``[{image_id, category_id,
    bbox [x, y, w, h], score}, ...]``; keeps ``category_id`` (person) with ``score >= score_thresh``
    and a box of positive size, as the official loader (``TEST.IMAGE_THRE``, default 0.0)."""
    where = detections if isinstance(detections, str) else '<detections>'
    if isinstance(detections, str):
        if not os.path.isfile(detections):
            raise FileNotFoundError(f'detection results file {detections!r} does not exist')
        with open(detections) as f:
            try:
                detections = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'detection results file {where!r} is not valid JSON: {e}') from e
    if not isinstance(detections, list) or any(not isinstance(d, dict) or 'bbox' not in d for d in detections):
        raise ValueError(f'{where}: expected a COCO detection-results list [{{"image_id", "category_id", '
                         f'"bbox": [x, y, w, h], "score"}}, ...]')
    keep = []
    for d in detections:
        box = [float(v) for v in d['bbox'][:4]]
        if d.get('category_id', category_id) != category_id or float(d.get('score', 1.0)) < score_thresh:
            continue
        if box[2] > 0 and box[3] > 0:
            keep.append({'image_id': d['image_id'], 'bbox': box, 'score': float(d.get('score', 1.0))})
    return keep


def half_body_box(keypoints: np.ndarray, upper_body_ids: Sequence[int], aspect_ratio: float,
                  choose_upper: bool) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The official half-body crop: the labelled joints of the upper body (``choose_upper`` and
    more than 2 of them) or else of the lower body (if more than 2, else the upper), their mean as
    the centre and their extent grown to ``aspect_ratio`` and by 1.5 as the scale. ``None`` when
    fewer than 2 joints are chosen."""
    vis = keypoints[:, 2] > 0
    upper = np.zeros(len(keypoints), dtype=bool)
    upper[list(upper_body_ids)] = True
    up, low = keypoints[vis & upper, :2], keypoints[vis & ~upper, :2]
    chosen = up if choose_upper and len(up) > 2 else (low if len(low) > 2 else up)
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0).astype(np.float32)
    w, h = chosen.max(axis=0) - chosen.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float32) / PIXEL_STD * 1.5


def flip_sample(crop: torch.Tensor, keypoints: np.ndarray, flip_pairs: Sequence[Tuple[int, int]]):
    """Mirror a crop and its keypoints (K, 3) with torchvision (``x -> W - 1 - x``) and swap the
    left/right pairs. Equal to flipping the image before a ``'udp'`` crop; the datasets flip the
    image itself (:meth:`~hrnet_zoo.tasks.codecs.HeatmapCodec.flip_image`), as the official code."""
    h, w = crop.shape[-2:]
    image = TF.horizontal_flip(tv_tensors.Image(crop))
    pts = TF.horizontal_flip(tv_tensors.KeyPoints(torch.from_numpy(keypoints[:, :2]), canvas_size=(h, w)))
    out = keypoints.copy()
    out[:, :2] = pts.numpy()
    for a, b in flip_pairs:
        out[[a, b]] = out[[b, a]]
    return image.as_subclass(torch.Tensor), out


def heatmap_targets(keypoints: np.ndarray, input_size: Tuple[int, int], heatmap_size: Tuple[int, int],
                    sigma: float = 2.0, unbiased: bool = True, joint_weights: Optional[Sequence[float]] = None,
                    codec: CodecLike = 'udp') -> Tuple[np.ndarray, np.ndarray]:
    """Crop keypoints (K, 3) -> Gaussian heatmaps (K, h, w) and target weights (K, 1), the crop ->
    heatmap map of ``codec`` (default ``'udp'``, as before codecs); ``unbiased=False`` rounds the
    centres as the official code. The datasets use :meth:`HeatmapCodec.encode` (from image pixels)."""
    hm_pts = get_codec(codec).crop_to_heatmap(keypoints[:, :2], input_size, heatmap_size)
    return gaussian_heatmaps(hm_pts, keypoints[:, 2], heatmap_size, sigma, unbiased, joint_weights)


class COCOKeypoints(Dataset):
    """Person crops with Gaussian heatmap targets from a COCO keypoints annotation file.

    Args:
        ann_file: COCO-format keypoints JSON.
        image_root: folder of the images (``file_name`` of each image is relative to it).
        input_size: network input ``(height, width)``; heatmaps are 1/``stride`` of it.
        train: the official augmentation (half body, scale, rotation, flip).
        num_keypoints: if given, the file must have this many keypoints per person.
        flip_pairs: left/right pairs (default COCO's when there are 17 keypoints, else none).
        half_body_prob, half_body_min_joints, upper_body_ids: half-body crops for people with more
            than ``half_body_min_joints`` labelled joints (upper body: COCO's for 17 keypoints; no
            half-body crops for other keypoint sets unless ``upper_body_ids`` is given).
        joint_weights: per-joint target weights (``'coco'``: the official COCO weights).
        unbiased: deprecated (the codec decides): True centres the targets at the exact sub-pixel
            position, False rounds them as the official code, whatever the codec's encoding.
        boxes: a COCO detection-results file or list: evaluate on these person boxes.
        det_score_thresh: detections scoring below it are dropped.
        codec: the heatmap codec of crops, box cleaning and targets (a name of
            :data:`~hrnet_zoo.tasks.codecs.CODECS`); None: the model's when paired with one by
            evaluation / training, else ``'udp'``.
    Each item is a dict: ``image`` (3, H, W), ``target`` (K, h, w), ``target_weight`` (K, 1),
    ``keypoints`` (K, 3) in crop pixels, ``center``, ``scale``, ``rotation``, ``image_id``,
    ``score`` (1.0 for ground-truth boxes, the detection's score), ``area``, ``index``.
    """

    def __init__(self, ann_file: str, image_root: str, input_size: Tuple[int, int] = (256, 192),
                 train: bool = False, sigma: float = 2.0, stride: int = 4,
                 num_keypoints: Optional[int] = None, flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                 scale_factor: float = 0.35, rotation_factor: float = 45.0, rotation_prob: float = 0.6,
                 flip_prob: float = 0.5, half_body_prob: float = 0.3, half_body_min_joints: int = 8,
                 upper_body_ids: Optional[Sequence[int]] = None,
                 joint_weights: Union[None, str, Sequence[float]] = None, unbiased: Optional[bool] = None,
                 category_id: Optional[int] = None, boxes: Union[None, str, Sequence[dict]] = None,
                 det_score_thresh: float = 0.0, codec: CodecLike = None):
        self.ann_file, self.image_root = ann_file, image_root
        self.input_size = tuple(input_size)
        self.heatmap_size = (-(-self.input_size[0] // stride), -(-self.input_size[1] // stride))
        self.train, self.sigma = train, sigma
        if unbiased is not None:
            warnings.warn('COCOKeypoints(unbiased=...) is deprecated: the codec decides the targets '
                          "(codec='msra' rounds as the official code; 'udp' / 'dark' are sub-pixel)",
                          DeprecationWarning, stacklevel=2)
        self.unbiased = unbiased
        self.codec = None if codec is None else get_codec(codec)
        self.scale_factor, self.rotation_factor = scale_factor, rotation_factor
        self.rotation_prob, self.flip_prob = rotation_prob, flip_prob
        self.half_body_prob, self.half_body_min_joints = half_body_prob, half_body_min_joints
        data = read_coco_json(ann_file)
        self.category = keypoint_category(data, category_id)
        self.num_keypoints = k = len(self.category['keypoints'])
        if num_keypoints is not None and num_keypoints != k:
            raise ValueError(f'{ann_file}: category {self.category.get("name")!r} has {k} '
                             f'keypoints but {num_keypoints} were expected (model num_keypoints)')
        if flip_pairs is None:
            flip_pairs = COCO_FLIP_PAIRS if k == 17 else ()
        check_flip_pairs(flip_pairs, k)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.upper_body_ids = tuple(upper_body_ids if upper_body_ids is not None
                                    else (COCO_UPPER_BODY_IDS if k == 17 else ()))
        self.joint_weights = COCO_JOINT_WEIGHTS if joint_weights == 'coco' else joint_weights
        self.aspect_ratio = self.input_size[1] / self.input_size[0]
        self.boxes_source = boxes if isinstance(boxes, str) else (None if boxes is None else '<detections>')
        if boxes is not None and train:
            raise ValueError('detection boxes are for evaluation; training uses the ground-truth boxes')
        images = {im['id']: im for im in data['images']}
        self.records = self._index(data, images) if boxes is None else self._detections(boxes, images,
                                                                                      det_score_thresh)
        self._make_samples()
        if not self.samples:
            raise ValueError(f'{ann_file}: no non-crowd person annotation with labelled keypoints '
                             'inside its image; nothing to train or evaluate on' if boxes is None else
                             f'{self.boxes_source}: no person detection with score >= {det_score_thresh}')

    @property
    def active_codec(self) -> HeatmapCodec:
        """The codec items are made with: ``codec``, else ``'udp'``."""
        return self.codec or get_codec('udp')

    def with_codec(self, codec: CodecLike) -> 'COCOKeypoints':
        """This dataset under another codec (a shallow copy; the samples are re-made, the box
        cleaning being the codec's)."""
        new = copy.copy(self)
        new.codec = get_codec(codec)
        new._make_samples()
        return new

    def _make_samples(self) -> None:
        """Centre / scale of every record under the active codec; ground-truth boxes cleaned by it."""
        codec, self.samples, self.num_skipped_boxes = self.active_codec, [], 0
        for r in self.records:
            box = r['bbox']
            if not r['detection']:
                box = codec.clean_box(box, r['width'], r['height'], r['area'])
                if box is None:
                    self.num_skipped_boxes += 1
                    continue
            center, scale = codec.center_scale(box, self.aspect_ratio)
            area = float(np.prod(scale * PIXEL_STD)) if r['detection'] else r['area']  # official area of a detection
            self.samples.append({**r, 'center': center, 'scale': scale, 'area': area})

    def _record(self, im: dict, box: Sequence[float], keypoints: np.ndarray, area: float, score: float,
                detection: bool) -> Dict:
        return {'file': os.path.join(self.image_root, im['file_name']), 'image_id': im['id'], 'keypoints': keypoints,
                'bbox': [float(v) for v in box[:4]], 'width': im['width'], 'height': im['height'],
                'area': float(area), 'score': float(score), 'detection': detection}

    def _index(self, data: dict, images: Dict[int, dict]) -> List[Dict]:
        cat_id, k = self.category['id'], self.num_keypoints
        records = []
        for ann in data['annotations']:
            if ann.get('category_id') != cat_id or ann.get('iscrowd', 0):
                continue
            kpts = np.asarray(ann.get('keypoints', []), dtype=np.float64)
            if kpts.size != 3 * k:
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has {kpts.size // 3} keypoints '
                                 f'({kpts.size} values) but category {self.category.get("name")!r} defines {k}')
            kpts = kpts.reshape(k, 3)
            if kpts[:, 2].max() <= 0:
                continue
            im = images.get(ann['image_id'])
            if im is None:
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} refers to missing '
                                 f'image {ann["image_id"]}')
            box = ann['bbox']
            records.append(self._record(im, box, kpts, ann.get('area', box[2] * box[3]), 1.0, False))
        return records

    def _detections(self, boxes, images: Dict[int, dict], score_thresh: float) -> List[Dict]:
        records = []
        for det in read_detections(boxes, score_thresh, self.category['id']):
            im = images.get(det['image_id'])
            if im is None:
                raise ValueError(f'{self.boxes_source}: detection on image {det["image_id"]}, which '
                                 f'{self.ann_file} does not have')
            records.append(self._record(im, det['bbox'], np.zeros((self.num_keypoints, 3)), 0.0, det['score'], True))
        return records

    def __len__(self) -> int:
        return len(self.samples)

    def _augment(self, s: Dict) -> Tuple[np.ndarray, np.ndarray, float, bool]:
        center, scale = s['center'], s['scale']
        if (self.upper_body_ids and (s['keypoints'][:, 2] > 0).sum() > self.half_body_min_joints
                and torch.rand(()).item() < self.half_body_prob):
            half = half_body_box(s['keypoints'], self.upper_body_ids, self.aspect_ratio,
                                 choose_upper=torch.randn(()).item() < 0.5)  # official: randn() < 0.5
            if half is not None:
                center, scale = half
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * float(np.clip(torch.randn(()).item() * sf + 1, 1 - sf, 1 + sf))
        rot = 0.0
        if torch.rand(()).item() < self.rotation_prob:
            rot = float(np.clip(torch.randn(()).item() * rf, -2 * rf, 2 * rf))
        flip = bool(torch.rand(()).item() < self.flip_prob)
        return center, scale, rot, flip

    def _target_codec(self) -> HeatmapCodec:
        codec = self.active_codec
        if self.unbiased is None or codec.crop == 'face':
            return codec
        import dataclasses
        return dataclasses.replace(codec, target='subpixel' if self.unbiased else 'rounded')

    def __getitem__(self, index: int) -> Dict[str, object]:
        s, codec = self.samples[index], self.active_codec
        image = load_image(s['file'])
        center, scale, rot, flip = s['center'], s['scale'], 0.0, False
        if self.train:
            center, scale, rot, flip = self._augment(s)
        kpts = s['keypoints'].copy()
        if flip:  # the official code mirrors the image, the joints and the centre, then crops
            image, kpts, center = codec.flip_image(image, kpts, center, self.flip_pairs)
        crop = codec.crop_image(image, center, scale, rot, self.input_size)
        target, weight = self._target_codec().encode(kpts[:, :2], kpts[:, 2], center, scale, rot, self.input_size,
                                                     self.heatmap_size, self.sigma, self.joint_weights)
        crop_kpts = kpts.copy()
        crop_kpts[:, :2] = apply_affine(kpts[:, :2], codec.crop_matrix(center, scale, rot, self.input_size,
                                                                       image_size=tuple(image.shape[-2:])))
        return {
            'image': normalize(crop), 'target': torch.from_numpy(target),
            'target_weight': torch.from_numpy(weight), 'keypoints': torch.from_numpy(crop_kpts).float(),
            'center': torch.from_numpy(np.asarray(center, dtype=np.float32)),
            'scale': torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            'rotation': torch.tensor(rot, dtype=torch.float32), 'image_id': s['image_id'],
            'score': torch.tensor(s['score']), 'area': torch.tensor(s['area']), 'index': index,
        }


IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def iter_frames(paths: Sequence[str]) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(name, image (3, H, W) float in [0, 1])`` for every image of ``paths``: image files,
    folders (their images, sorted), animated GIFs (``torchvision.io.decode_gif``, one item per
    frame, named ``file#00003``) and videos (decoded by torchcodec, torchvision's video decoder
    since torchvision.io dropped video reading)."""
    from torchvision.io import decode_gif, read_file
    for path in paths:
        if os.path.isdir(path):
            files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES + ('.gif',)))
            yield from iter_frames([os.path.join(path, f) for f in files])
        elif not os.path.isfile(path):
            raise FileNotFoundError(f'image, folder or video {path!r} does not exist')
        elif path.lower().endswith('.gif'):
            frames = decode_gif(read_file(path))
            frames = frames[None] if frames.dim() == 3 else frames  # (N, C, H, W) uint8
            for i, frame in enumerate(frames):
                yield f'{path}#{i:05d}', frame[:3].float() / 255.0
        elif path.lower().endswith(VIDEO_SUFFIXES):
            try:
                from torchcodec.decoders import VideoDecoder
            except ImportError:
                raise ImportError(f'{path}: video input needs torchcodec (pip install torchcodec); or pass a '
                                  'folder of frames or an animated GIF') from None
            for i, frame in enumerate(VideoDecoder(path)):
                yield f'{path}#{i:05d}', frame[:3].float() / 255.0
        else:
            yield path, load_image(path)
