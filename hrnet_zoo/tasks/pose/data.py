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

With ``keypoint_set=`` (a :mod:`hrnet_zoo.tasks.keypoints` set, e.g. the model's) the file may be any
of mmpose's COCO-style annotation files of that set: its flip pairs, body halves and keypoint count
apply, a file without a keypoint category is read as is, COCO-WholeBody's parts are concatenated
into its 133 keypoints (``keypoints``, ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``,
``righthand_kpts``), COCO-WholeBody-Hand gives one sample per valid hand (``lefthand_box`` /
``righthand_box``), and an annotation's ``head_size`` (CMU Panoptic, PCKh) is kept. mmpose 0.x's
hand datasets took the boxes as given: so does the dataset under an ``mmpose0x_*`` codec.
:class:`MPIIKeypoints` reads MPII's own JSON (``mpii_val.json``) with its head boxes.

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
from ..keypoints import KeypointSet, get_keypoint_set
from ..topdown import PIXEL_STD, apply_affine, check_flip_pairs, load_image, normalize
from .specs import COCO_FLIP_PAIRS, COCO_JOINT_WEIGHTS, COCO_UPPER_BODY_IDS

__all__ = ['COCOKeypoints', 'MPIIKeypoints', 'read_coco_json', 'keypoint_category', 'read_detections',
           'half_body_box', 'flip_sample', 'heatmap_targets', 'iter_frames', 'read_mpii_head_boxes']

# COCO-WholeBody's 133 keypoints, in the order of mmpose's coco_wholebody metainfo: the fields of an
# annotation, concatenated (mmpose CocoWholeBodyDataset.parse_data_info)
WHOLEBODY_FIELDS = ('keypoints', 'foot_kpts', 'face_kpts', 'lefthand_kpts', 'righthand_kpts')
# COCO-WholeBody-Hand: one instance per valid hand (mmpose CocoWholeBodyHandDataset: box, keypoints, valid flag)
WHOLEBODY_HANDS = (('lefthand_box', 'lefthand_kpts', 'lefthand_valid'),
                   ('righthand_box', 'righthand_kpts', 'righthand_valid'))

CodecLike = Union[None, str, HeatmapCodec]


def _category(data: dict, category_id: Optional[int], kps: Optional[KeypointSet]) -> dict:
    """The keypoint category of a file; a file read with a keypoint set may have none (mmpose's
    hand, face and animal files name no keypoints): then every category is read (id None)."""
    try:
        return keypoint_category(data, category_id)
    except ValueError:
        if kps is None:
            raise
        return {'id': category_id, 'name': kps.name, 'keypoints': list(kps.keypoint_names)}


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
                    category_id: Optional[int] = 1) -> List[dict]:
    """Person detections of a COCO detection-results file (or list): ``[{image_id, category_id,
    bbox [x, y, w, h], score}, ...]``; keeps ``category_id`` (person; None: every category) with
    ``score >= score_thresh`` and a box of positive size, as the official loader
    (``TEST.IMAGE_THRE``, default 0.0)."""
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
        if (category_id is not None and d.get('category_id', category_id) != category_id
                or float(d.get('score', 1.0)) < score_thresh):
            continue
        if box[2] > 0 and box[3] > 0:
            keep.append({'image_id': d['image_id'], 'bbox': box, 'score': float(d.get('score', 1.0)),
                         'category_id': d.get('category_id', category_id)})
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
        keypoint_set: the keypoint set of the file (a name or a
            :class:`~hrnet_zoo.tasks.keypoints.KeypointSet`): its flip pairs, body halves and
            keypoint count, and its annotation layout (see the module docstring).
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
                 det_score_thresh: float = 0.0, codec: CodecLike = None,
                 keypoint_set: Union[None, str, KeypointSet] = None):
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
        data = self._load_annotations(ann_file)
        kps = self.keypoint_set = get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
        self.category = _category(data, category_id, kps)
        self.num_keypoints = k = kps.num_keypoints if kps is not None else len(self.category['keypoints'])
        if num_keypoints is not None and num_keypoints != k:
            raise ValueError(f'{ann_file}: category {self.category.get("name")!r} has {k} '
                             f'keypoints but {num_keypoints} were expected (model num_keypoints)')
        if flip_pairs is None:
            flip_pairs = kps.flip_pairs if kps is not None else (COCO_FLIP_PAIRS if k == 17 else ())
        check_flip_pairs(flip_pairs, k)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        if upper_body_ids is None:
            upper_body_ids = kps.upper_body_ids if kps is not None else (COCO_UPPER_BODY_IDS if k == 17 else ())
        self.upper_body_ids = tuple(upper_body_ids)
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

    def _load_annotations(self, ann_file: str) -> dict:
        """The file as a COCO-format dict (``images``, ``annotations``, ``categories``)."""
        return read_coco_json(ann_file)

    def with_codec(self, codec: CodecLike) -> 'COCOKeypoints':
        """This dataset under another codec (a shallow copy; the samples are re-made, the box
        cleaning being the codec's)."""
        new = copy.copy(self)
        new.codec = get_codec(codec)
        new._make_samples()
        return new

    def _make_samples(self) -> None:
        """Centre / scale of every record under the active codec; ground-truth boxes cleaned by it
        (as given for hands under mmpose 0.x, whose hand datasets did not clean them)."""
        codec, self.samples, self.num_skipped_boxes = self.active_codec, [], 0
        as_given = codec.mmpose == '0.x' and self.keypoint_set is not None and self.keypoint_set.group == 'hand'
        for r in self.records:
            box = r['bbox']
            if not r['detection']:
                if as_given:
                    box = box if box[2] > 0 and box[3] > 0 else None
                else:
                    box = codec.clean_box(box, r['width'], r['height'], r['area'])
                if box is None:
                    self.num_skipped_boxes += 1
                    continue
            center, scale = codec.center_scale(box, self.aspect_ratio)
            area = float(np.prod(scale * PIXEL_STD)) if r['detection'] else r['area']  # official area of a detection
            self.samples.append({**r, 'clean_bbox': [float(v) for v in box[:4]], 'center': center, 'scale': scale,
                                 'area': area})

    def _record(self, im: dict, box: Sequence[float], keypoints: np.ndarray, area: float, score: float,
                detection: bool, head_size: float = 0.0, category_id: Optional[int] = None) -> Dict:
        return {'file': os.path.join(self.image_root, im['file_name']), 'image_id': im['id'], 'keypoints': keypoints,
                'bbox': [float(v) for v in box[:4]], 'width': im['width'], 'height': im['height'],
                'area': float(area), 'score': float(score), 'detection': detection, 'head_size': float(head_size),
                'category_id': self.category['id'] if category_id is None else category_id}

    def _instances(self, ann: dict) -> List[Tuple[Sequence[float], List[float]]]:
        """``(box, flat keypoints)`` of each instance of an annotation under the set's layout."""
        name = self.keypoint_set.name if self.keypoint_set is not None else ''
        if name == 'coco_wholebody':
            return [(ann['bbox'], [v for f in WHOLEBODY_FIELDS for v in ann.get(f, [])])]
        if name == 'coco_wholebody_hand':
            return [(ann[box], ann[kpts]) for box, kpts, valid in WHOLEBODY_HANDS
                    if ann.get(valid, True) and box in ann and max(ann.get(kpts, [0])) > 0]
        return [(ann['bbox'], ann.get('keypoints', []))]

    def _index(self, data: dict, images: Dict[int, dict]) -> List[Dict]:
        cat_id, k = self.category['id'], self.num_keypoints
        records = []
        for ann in data['annotations']:
            if (cat_id is not None and ann.get('category_id') != cat_id) or ann.get('iscrowd', 0):
                continue
            for box, flat in self._instances(ann):
                kpts = np.asarray(flat, dtype=np.float64)
                if kpts.size != 3 * k:
                    raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has {kpts.size // 3} keypoints '
                                     f'but {k} were expected ({kpts.size} values; {self._what} defines {k})')
                kpts = kpts.reshape(k, 3)
                if kpts[:, 2].max() <= 0:
                    continue
                im = images.get(ann['image_id'])
                if im is None:
                    raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} refers to missing '
                                     f'image {ann["image_id"]}')
                records.append(self._record(im, box, kpts, ann.get('area', box[2] * box[3]), 1.0, False,
                                            ann.get('head_size', 0.0), ann.get('category_id')))
        return records

    @property
    def _what(self) -> str:
        return (f'keypoint set {self.keypoint_set.name!r}' if self.keypoint_set is not None
                else f'category {self.category.get("name")!r}')

    def _detections(self, boxes, images: Dict[int, dict], score_thresh: float) -> List[Dict]:
        records = []
        for det in read_detections(boxes, score_thresh, self.category['id']):
            im = images.get(det['image_id'])
            if im is None:
                raise ValueError(f'{self.boxes_source}: detection on image {det["image_id"]}, which '
                                 f'{self.ann_file} does not have')
            records.append(self._record(im, det['bbox'], np.zeros((self.num_keypoints, 3)), 0.0, det['score'], True,
                                        category_id=det.get('category_id')))
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
        target_codec = self._target_codec()
        if target_codec.target == 'combined' and not self.train:  # evaluation reads no targets; combined ones
            target = np.zeros((len(kpts), *self.heatmap_size), np.float32)  # are not encoded here
            weight = np.zeros((len(kpts), 1), np.float32)
        else:
            target, weight = target_codec.encode(kpts[:, :2], kpts[:, 2], center, scale, rot, self.input_size,
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


def read_mpii_head_boxes(source: Union[str, np.ndarray, Sequence]) -> np.ndarray:
    """MPII's head boxes (N, 4) ``[x1, y1, x2, y2]``, in the order of the annotation file: the
    official ``mpii_gt_val.mat`` (``headboxes_src`` (2, 2, N), read with SciPy), a ``.npy`` / ``.json``
    file or an array of (N, 4) or (N, 2, 2)."""
    if isinstance(source, str):
        if not os.path.isfile(source):
            raise FileNotFoundError(f'MPII head-box file {source!r} does not exist')
        if source.endswith('.mat'):
            try:
                from scipy.io import loadmat
            except ImportError:
                raise ImportError(f'{source}: reading a .mat file needs SciPy (pip install scipy), or pass the head '
                                  'boxes as a .npy / .json array of (N, 4) [x1, y1, x2, y2]') from None
            source = np.transpose(loadmat(source)['headboxes_src'], (2, 0, 1))
        elif source.endswith('.npy'):
            source = np.load(source)
        else:
            with open(source) as f:
                source = json.load(f)
    boxes = np.asarray(source, dtype=np.float64)
    if boxes.ndim == 3 and boxes.shape[1:] == (2, 2):
        boxes = boxes.reshape(-1, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'MPII head boxes must be (N, 4) or (N, 2, 2), got {boxes.shape}')
    return boxes


class MPIIKeypoints(COCOKeypoints):
    """MPII in its own JSON (the official ``mpii_{train,val}.json``, also mmpose's): per person
    ``image``, ``joints`` (16 x 2, 1-based), ``joints_vis``, ``center`` and ``scale`` (200 px units)
    instead of a box. As the official ``MPIIDataset`` and mmpose 0.x ``TopDownMpiiDataset`` (which
    trained mmpose's MPII checkpoints): the centre moves down by ``15 * scale`` px, the scale grows
    by 1.25 and everything becomes 0-based (``- 1``). ``head_boxes`` (``mpii_gt_val.mat``, see
    :func:`read_mpii_head_boxes`) give PCKh's normaliser, one per person in file order; items are
    those of :class:`COCOKeypoints`."""

    def __init__(self, ann_file: str, image_root: str, input_size: Tuple[int, int] = (256, 256),
                 head_boxes: Union[None, str, np.ndarray] = None, **kwargs):
        self._head_boxes = None if head_boxes is None else read_mpii_head_boxes(head_boxes)
        kwargs.setdefault('keypoint_set', 'mpii')
        super().__init__(ann_file, image_root, input_size, **kwargs)
        if self._head_boxes is not None and len(self._head_boxes) != len(self.records):
            raise ValueError(f'{len(self._head_boxes)} head boxes for {len(self.records)} people of {ann_file}: '
                             'give the head boxes of this file (mpii_gt_val.mat for mpii_val.json)')

    def _load_annotations(self, ann_file: str) -> dict:
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
        with open(ann_file) as f:
            people = json.load(f)
        if not isinstance(people, list) or not people or 'joints' not in people[0]:
            raise ValueError(f'{ann_file}: expected MPII\'s JSON (a list of people with image, joints, joints_vis, '
                             'center, scale), e.g. mpii_val.json')
        names = sorted({p['image'] for p in people})
        ids = {n: i for i, n in enumerate(names)}
        return {'images': [{'id': ids[n], 'file_name': n, 'width': 0, 'height': 0} for n in names],
                'annotations': [dict(p, image_id=ids[p['image']], id=i) for i, p in enumerate(people)],
                'categories': []}

    def _index(self, data: dict, images: Dict[int, dict]) -> List[Dict]:
        records = []
        for i, ann in enumerate(data['annotations']):
            joints = np.asarray(ann['joints'], dtype=np.float64).reshape(-1, 2) - 1
            vis = np.asarray(ann['joints_vis'], dtype=np.float64).reshape(-1, 1)
            center = np.asarray(ann['center'], dtype=np.float64).copy()
            scale = float(ann['scale'])
            if center[0] != -1:
                center[1] += 15 * scale
                scale *= 1.25
            center -= 1
            size = scale * PIXEL_STD
            record = self._record(images[ann['image_id']], [center[0] - size / 2, center[1] - size / 2, size, size],
                                  np.concatenate([joints, vis], axis=1), size * size * 0.53, 1.0, False)
            record.update(center=center.astype(np.float32), scale=np.array([scale, scale], dtype=np.float32),
                          head_box=None if self._head_boxes is None else self._head_boxes[i])
            records.append(record)
        return records

    def _make_samples(self) -> None:
        """MPII gives every person's centre and scale: no box to clean."""
        self.samples, self.num_skipped_boxes = [{**r, 'clean_bbox': r['bbox']} for r in self.records], 0


def iter_frames(paths: Sequence[str]) -> Iterator[Tuple[str, torch.Tensor]]:
    """Deprecated: use :func:`hrnet_zoo.tasks.video.open_source` (videos through PyAV, webcams,
    streams, each frame's index and time). ``(name, image (3, H, W) float in [0, 1])`` for every
    frame of ``paths`` (image files, folders, GIFs, videos), named ``file#00003`` inside a GIF or
    video as before."""
    import warnings
    from ..video import open_source
    warnings.warn('hrnet_zoo.tasks.pose.data.iter_frames is deprecated: use hrnet_zoo.tasks.video.open_source',
                  DeprecationWarning, stacklevel=2)
    for path in paths:
        with open_source(path) as source:
            for frame in source:
                yield frame.name, frame.image.float() / 255.0
