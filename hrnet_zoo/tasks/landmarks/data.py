"""Face crops with landmark heatmap targets from the official HRNet-Facial-Landmark-Detection CSV
files (``face_landmarks_wflw_test.csv``, ...): a header row, then per face
``image_name, scale, center_w, center_h, x1, y1, ..., xL, yL``; AFLW files have a ``box_size``
column after ``scale``. ``scale`` is the face size in units of 200 px; the crop is padded by 1.25
(official). Crops and targets follow the heatmap codec (:mod:`hrnet_zoo.tasks.codecs`; ``'face'``:
the official crop and ``transform_pixel`` targets); unset, the dataset follows the model it is
evaluated or trained with, and ``'udp'`` when read on its own. Training samples get random scale
(+-25%), rotation (+-30 degrees, probability 0.6) and flip of the image (with the set's flip
pairs), as in the official configs (the ``augment`` section of the ``landmarks_*`` recipes).

mmpose's face files (COCO-style JSON, :func:`read_landmark_json`) are read too: per face
``center`` and ``scale`` (WFLW, 300W, 300W-LP, COFW; AFLW adds ``box_size``) or COCO-WholeBody's
``face_box`` / ``face_kpts`` / ``face_valid`` (the box's centre, its longer side as the scale), the
landmarks' visibility flags kept (NME leaves out the invisible ones, as mmpose's ``NME``).
"""
from __future__ import annotations

import copy
import csv
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..codecs import HeatmapCodec, get_codec
from ..topdown import apply_affine, check_flip_pairs, load_image, normalize
from .specs import FACE_DATASETS, FaceDatasetSpec

__all__ = ['FACE_PADDING', 'FaceLandmarks', 'crop_face', 'read_landmark_csv', 'read_landmark_json']

FACE_PADDING = 1.25


def read_landmark_csv(path: str, num_landmarks: int):
    """Rows of an official landmark CSV as dicts (name, scale, box_size or None, center, points)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'landmark file {path!r} does not exist')
    with open(path, newline='') as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise ValueError(f'{path}: no faces (expected a header row and one row per face)')
    rows = rows[1:]
    plain, with_box = 4 + 2 * num_landmarks, 5 + 2 * num_landmarks
    out = []
    for i, r in enumerate(rows):
        if len(r) not in (plain, with_box):
            raise ValueError(f'{path}: row {i + 2} has {len(r)} columns; {num_landmarks} landmarks need '
                             f'{plain} (name, scale, center_w, center_h, points) or {with_box} (AFLW, with box_size)')
        vals = [float(v) for v in r[1:]]
        box = vals.pop(1) if len(r) == with_box else None
        out.append({'name': r[0], 'scale': vals[0], 'box_size': box, 'center': np.array(vals[1:3]),
                    'points': np.array(vals[3:], dtype=np.float64).reshape(num_landmarks, 2)})
    return out


def read_landmark_json(path: str, num_landmarks: int):
    """Faces of an mmpose face annotation file (COCO-style JSON) as the rows of
    :func:`read_landmark_csv` (``name``, ``scale`` in 200 px units before the 1.25 padding,
    ``box_size``, ``center``, ``points``) plus ``visible`` (L,): ``center`` / ``scale`` annotations
    (mmpose ``Face300WDataset``, ``WFLWDataset``, ``COFWDataset``, ``AFLWDataset``: ``box_size``), or
    COCO-WholeBody's ``face_box`` / ``face_kpts`` of valid faces (``CocoWholeBodyFaceDataset``)."""
    import json
    if not os.path.isfile(path):
        raise FileNotFoundError(f'landmark file {path!r} does not exist')
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or 'annotations' not in data or 'images' not in data:
        raise ValueError(f'{path}: expected a COCO-style face file (images, annotations with center / scale / '
                         'keypoints, or face_box / face_kpts)')
    names = {im['id']: im['file_name'] for im in data['images']}
    rows = []
    for ann in data['annotations']:
        if 'face_kpts' in ann:
            if not ann.get('face_valid', True) or max(ann['face_kpts']) <= 0:
                continue
            x, y, w, h = (float(v) for v in ann['face_box'])
            kpts, center, scale = ann['face_kpts'], np.array([x + w / 2, y + h / 2]), max(w, h) / 200.0
        else:
            kpts, center, scale = ann['keypoints'], np.asarray(ann['center'], dtype=np.float64), float(ann['scale'])
        kpts = np.asarray(kpts, dtype=np.float64).reshape(-1, 3)
        if len(kpts) != num_landmarks:
            raise ValueError(f'{path}: annotation {ann.get("id")} has {len(kpts)} landmarks, the model {num_landmarks}')
        rows.append({'name': names[ann['image_id']], 'scale': scale, 'box_size': ann.get('box_size'),
                     'center': center, 'points': kpts[:, :2], 'visible': kpts[:, 2] > 0})
    if not rows:
        raise ValueError(f'{path}: no face with landmarks')
    return rows


def crop_face(image: torch.Tensor, points: np.ndarray, center, scale: float, rotation: float = 0.0,
              flip: bool = False, output_size: Tuple[int, int] = (256, 256),
              flip_pairs: Sequence[Tuple[int, int]] = (),
              codec: Union[str, HeatmapCodec] = 'udp') -> Tuple[torch.Tensor, np.ndarray]:
    """The face crop (3, H, W) of ``codec`` (default ``'udp'``) and its landmarks (L, 2) in crop
    pixels, then optionally the crop mirrored: torchvision's flip (image and ``KeyPoints``, ``x ->
    W - 1 - x``) followed by the left/right swap. (:class:`FaceLandmarks` mirrors the image before
    cropping instead, as the official code.)"""
    codec = get_codec(codec)
    m = codec.crop_matrix(center, scale, rotation, output_size, image_size=tuple(image.shape[-2:]))
    crop = tv_tensors.Image(codec.crop_image(image, center, scale, rotation, output_size))
    pts = tv_tensors.KeyPoints(torch.from_numpy(apply_affine(points, m)), canvas_size=tuple(output_size))
    if flip:
        crop, pts = TF.horizontal_flip(crop), TF.horizontal_flip(pts)
        perm = list(range(len(pts)))
        for a, b in flip_pairs:
            perm[a], perm[b] = perm[b], perm[a]
        pts = pts[perm]
    return crop.as_subclass(torch.Tensor), pts.as_subclass(torch.Tensor).numpy()


class FaceLandmarks(Dataset):
    """Items: ``image`` (3, H, W), ``target`` (L, h, w), ``target_weight`` (L, 1), ``landmarks``
    (L, 2) in image pixels, ``center`` (2,), ``scale`` (scalar, 200 px units incl. padding),
    ``rotation``, ``box_size`` (AFLW's normaliser, else 0), ``index``."""

    def __init__(self, csv_file: str, image_root: str, dataset: str = 'wflw',
                 input_size: Tuple[int, int] = (256, 256), train: bool = False, sigma: float = 1.5,
                 stride: int = 4, scale_factor: float = 0.25, rotation_factor: float = 30.0,
                 rotation_prob: float = 0.6, flip_prob: float = 0.5, spec: Optional[FaceDatasetSpec] = None,
                 codec: Union[None, str, HeatmapCodec] = None):
        if spec is None:
            if dataset not in FACE_DATASETS:
                raise ValueError(f'unknown face dataset {dataset!r}; choose one of {sorted(FACE_DATASETS)} '
                                 'or pass spec=FaceDatasetSpec(...)')
            spec = FACE_DATASETS[dataset]
        check_flip_pairs(spec.flip_pairs, spec.num_landmarks)
        self.spec, self.flip_pairs = spec, spec.flip_pairs
        self.image_root, self.csv_file = image_root, csv_file
        self.input_size = tuple(input_size)
        self.heatmap_size = (-(-self.input_size[0] // stride), -(-self.input_size[1] // stride))
        self.train, self.sigma = train, sigma
        self.scale_factor, self.rotation_factor = scale_factor, rotation_factor
        self.rotation_prob, self.flip_prob = rotation_prob, flip_prob
        self.samples = (read_landmark_json if str(csv_file).endswith('.json') else read_landmark_csv)(
            csv_file, spec.num_landmarks)
        self.codec = None if codec is None else get_codec(codec)

    @property
    def active_codec(self) -> HeatmapCodec:
        """The codec items are made with: ``codec``, else ``'udp'``."""
        return self.codec or get_codec('udp')

    def with_codec(self, codec: Union[str, HeatmapCodec]) -> 'FaceLandmarks':
        """This dataset under another codec (a shallow copy)."""
        new = copy.copy(self)
        new.codec = get_codec(codec)
        return new

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Dict[str, object]:
        s = self.samples[index]
        image = load_image(os.path.join(self.image_root, s['name']))
        center, scale, rot, flip = s['center'], s['scale'] * FACE_PADDING, 0.0, False
        if self.train:
            scale *= 1 + self.scale_factor * (2 * torch.rand(()).item() - 1)
            if torch.rand(()).item() < self.rotation_prob:
                rot = self.rotation_factor * (2 * torch.rand(()).item() - 1)
            flip = torch.rand(()).item() < self.flip_prob
        codec, pts = self.active_codec, s['points']
        visible = np.asarray(s.get('visible', np.ones(len(pts))), dtype=np.float64)
        if flip:  # the official code mirrors the image, the landmarks and the centre, then crops
            image, flipped, center = codec.flip_image(image, np.column_stack([pts, visible]), center, self.flip_pairs)
            pts, visible = flipped[:, :2], flipped[:, 2]  # the flags ride along with their landmarks
        crop = codec.crop_image(image, center, scale, rot, self.input_size)
        target, weight = codec.encode(pts, visible, center, scale, rot, self.input_size, self.heatmap_size, self.sigma)
        return {
            'image': normalize(crop),
            'target': torch.from_numpy(target), 'target_weight': torch.from_numpy(weight),
            'landmarks': torch.from_numpy(s['points']).float(),
            'center': torch.tensor(center, dtype=torch.float32), 'scale': torch.tensor(scale, dtype=torch.float32),
            'rotation': torch.tensor(rot, dtype=torch.float32),
            'box_size': torch.tensor(s['box_size'] or 0.0, dtype=torch.float32), 'index': index,
            'visible': torch.from_numpy(np.asarray(s.get('visible', np.ones(len(s['points']), dtype=bool)))),
        }

