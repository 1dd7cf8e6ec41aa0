"""Face crops with landmark heatmap targets from the official HRNet-Facial-Landmark-Detection CSV
files (``face_landmarks_wflw_test.csv``, ...): a header row, then per face
``image_name, scale, center_w, center_h, x1, y1, ..., xL, yL``; AFLW files have a ``box_size``
column after ``scale``. ``scale`` is the face size in units of 200 px; the crop is padded by 1.25
(official). Crops and targets follow the heatmap codec (:mod:`hrnet_zoo.tasks.codecs`; ``'face'``:
the official crop and ``transform_pixel`` targets); unset, the dataset follows the model it is
evaluated or trained with, and ``'udp'`` when read on its own. Training samples get random scale
(+-25%), rotation (+-30 degrees, probability 0.6) and flip of the image (with the set's flip
pairs), as in the official configs (the ``augment`` section of the ``landmarks_*`` recipes).
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

__all__ = ['FACE_PADDING', 'FaceLandmarks', 'crop_face', 'read_landmark_csv']

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
        self.samples = read_landmark_csv(csv_file, spec.num_landmarks)
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
        if flip:  # the official code mirrors the image, the landmarks and the centre, then crops
            image, pts, center = codec.flip_image(image, pts, center, self.flip_pairs)
        crop = codec.crop_image(image, center, scale, rot, self.input_size)
        target, weight = codec.encode(pts, np.ones(len(pts)), center, scale, rot, self.input_size,
                                      self.heatmap_size, self.sigma)
        return {
            'image': normalize(crop),
            'target': torch.from_numpy(target), 'target_weight': torch.from_numpy(weight),
            'landmarks': torch.from_numpy(s['points']).float(),
            'center': torch.tensor(center, dtype=torch.float32), 'scale': torch.tensor(scale, dtype=torch.float32),
            'rotation': torch.tensor(rot, dtype=torch.float32),
            'box_size': torch.tensor(s['box_size'] or 0.0, dtype=torch.float32), 'index': index,
        }
