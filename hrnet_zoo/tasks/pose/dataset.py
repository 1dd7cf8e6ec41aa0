"""A top-down COCO keypoints dataset that reads a COCO download as is
(``annotations/person_keypoints_val2017.json`` + ``val2017/*.jpg``) or any COCO-format file.

One sample per annotated person box (ground-truth boxes): non-crowd annotations with at least one
labelled keypoint. Boxes are clipped to the image (``[0, W-1] x [0, H-1]``); a box with nothing
inside the image is skipped and counted in ``num_skipped_boxes`` (documented clipping, as the
official code's box sanitising). Training samples get the official augmentation: random scale
(factor 0.35), rotation (45 degrees, with probability 0.6) and horizontal flip with flip pairs.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..heatmap import gaussian_heatmaps
from ..topdown import (load_image, normalize, COCO_FLIP_PAIRS, affine_matrix, apply_affine, box_to_center_scale,
                         check_flip_pairs, clip_box, flip_keypoints, warp_image)

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


class COCOKeypoints(Dataset):
    """Person crops with Gaussian heatmap targets from a COCO keypoints annotation file.

    Args:
        ann_file: COCO-format keypoints JSON.
        image_root: folder of the images (``file_name`` of each image is relative to it).
        input_size: network input ``(height, width)``; heatmaps are 1/``stride`` of it.
        train: random scale / rotation / flip augmentation.
        num_keypoints: if given, the file must have this many keypoints per person.
        flip_pairs: left/right pairs (default COCO's when there are 17 keypoints, else none).
    Each item is a dict: ``image`` (3, H, W), ``target`` (K, h, w), ``target_weight`` (K, 1),
    ``keypoints`` (K, 3) in crop pixels, ``center``, ``scale``, ``rotation``, ``image_id``,
    ``score`` (1.0 for ground-truth boxes), ``index``.
    """

    def __init__(self, ann_file: str, image_root: str, input_size: Tuple[int, int] = (256, 192),
                 train: bool = False, sigma: float = 2.0, stride: int = 4,
                 num_keypoints: Optional[int] = None, flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                 scale_factor: float = 0.35, rotation_factor: float = 45.0, rotation_prob: float = 0.6,
                 flip_prob: float = 0.5, unbiased: bool = True, category_id: Optional[int] = None):
        self.ann_file, self.image_root = ann_file, image_root
        self.input_size = tuple(input_size)
        self.heatmap_size = (-(-self.input_size[0] // stride), -(-self.input_size[1] // stride))
        self.train, self.sigma, self.unbiased = train, sigma, unbiased
        self.scale_factor, self.rotation_factor = scale_factor, rotation_factor
        self.rotation_prob, self.flip_prob = rotation_prob, flip_prob
        data = read_coco_json(ann_file)
        self.category = keypoint_category(data, category_id)
        self.num_keypoints = len(self.category['keypoints'])
        if num_keypoints is not None and num_keypoints != self.num_keypoints:
            raise ValueError(f'{ann_file}: category {self.category.get("name")!r} has {self.num_keypoints} '
                             f'keypoints but {num_keypoints} were expected (model num_keypoints)')
        if flip_pairs is None:
            flip_pairs = COCO_FLIP_PAIRS if self.num_keypoints == 17 else ()
        check_flip_pairs(flip_pairs, self.num_keypoints)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.aspect_ratio = self.input_size[1] / self.input_size[0]
        self.num_skipped_boxes = 0
        self.samples = self._index(data)
        if not self.samples:
            raise ValueError(f'{ann_file}: no non-crowd person annotation with labelled keypoints '
                             'inside its image; nothing to train or evaluate on')

    def _index(self, data: dict) -> List[Dict]:
        images = {im['id']: im for im in data['images']}
        cat_id, k = self.category['id'], self.num_keypoints
        samples = []
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
            box = clip_box(ann['bbox'], im['width'], im['height'])
            if box is None:
                self.num_skipped_boxes += 1
                continue
            center, scale = box_to_center_scale(box, self.aspect_ratio)
            samples.append({'file': os.path.join(self.image_root, im['file_name']), 'image_id': im['id'],
                            'keypoints': kpts, 'center': center, 'scale': scale,
                            'area': float(ann.get('area', box[2] * box[3]))})
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def _augment(self, scale: np.ndarray) -> Tuple[np.ndarray, float, bool]:
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * float(np.clip(torch.randn(()).item() * sf + 1, 1 - sf, 1 + sf))
        rot = 0.0
        if torch.rand(()).item() < self.rotation_prob:
            rot = float(np.clip(torch.randn(()).item() * rf, -2 * rf, 2 * rf))
        flip = bool(torch.rand(()).item() < self.flip_prob)
        return scale, rot, flip

    def __getitem__(self, index: int) -> Dict[str, object]:
        s = self.samples[index]
        image = load_image(s['file'])
        center, scale, rot, flip = s['center'], s['scale'], 0.0, False
        if self.train:
            scale, rot, flip = self._augment(scale)
        crop = warp_image(image, affine_matrix(center, scale, rot, self.input_size), self.input_size)
        kpts = s['keypoints'].copy()
        kpts[:, :2] = apply_affine(kpts[:, :2], affine_matrix(center, scale, rot, self.input_size))
        if flip:
            crop = crop.flip(-1)
            kpts = flip_keypoints(kpts, self.input_size[1], self.flip_pairs)
        stride_x = self.input_size[1] / self.heatmap_size[1]
        stride_y = self.input_size[0] / self.heatmap_size[0]
        hm_pts = np.stack([(kpts[:, 0] + 0.5) / stride_x - 0.5, (kpts[:, 1] + 0.5) / stride_y - 0.5], axis=1)
        target, weight = gaussian_heatmaps(hm_pts, kpts[:, 2], self.heatmap_size, self.sigma, self.unbiased)
        return {
            'image': normalize(crop), 'target': torch.from_numpy(target),
            'target_weight': torch.from_numpy(weight), 'keypoints': torch.from_numpy(kpts).float(),
            'center': torch.from_numpy(np.asarray(center, dtype=np.float32)),
            'scale': torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            'rotation': torch.tensor(rot, dtype=torch.float32), 'image_id': s['image_id'],
            'score': torch.tensor(1.0), 'area': torch.tensor(s['area']), 'index': index,
        }
