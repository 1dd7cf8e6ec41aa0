"""Detection datasets in torchvision's format: ``(image float (3,H,W) in [0,1], target)`` with
``target = {'boxes': (K,4) xyxy float, 'labels': (K,) int64, 'image_id': int, ['masks': (K,H,W) uint8]}``.

Targets are validated (:func:`check_target`): boxes must be finite with positive width and height
and labels in ``[1, num_classes)`` (0 is the background in torchvision). An image without objects
(``boxes`` of shape ``(0, 4)``) is valid: torchvision's detectors treat it as a negative sample.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ['check_target', 'collate', 'SyntheticBoxes', 'CocoDetectionDataset', 'train_transform']


def check_target(target: Dict[str, torch.Tensor], image: torch.Tensor, num_classes: Optional[int] = None,
                 name: str = 'sample') -> Dict[str, torch.Tensor]:
    """Validate (and normalise the dtypes of) one detection target; clear errors name the sample.
    Hand-written: ``v2.SanitizeBoundingBoxes`` silently drops bad boxes, this must report them."""
    if 'boxes' not in target or 'labels' not in target:
        raise ValueError(f'{name}: a target needs "boxes" and "labels" (use empty tensors for no objects)')
    boxes = torch.as_tensor(target['boxes'], dtype=torch.float32).reshape(-1, 4) if len(target['boxes']) == 0 \
        else torch.as_tensor(target['boxes'], dtype=torch.float32)
    labels = torch.as_tensor(target['labels'], dtype=torch.int64).reshape(-1)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f'{name}: boxes must be (K, 4) [x1, y1, x2, y2], got shape {tuple(boxes.shape)}')
    if len(labels) != len(boxes):
        raise ValueError(f'{name}: {len(boxes)} boxes but {len(labels)} labels')
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f'{name}: boxes contain NaN or inf')
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bool(degenerate.any()):
        raise ValueError(f'{name}: boxes {boxes[degenerate][:3].tolist()} have no positive width/height; '
                         'boxes are [x1, y1, x2, y2] with x2 > x1 and y2 > y1 (convert xywh first)')
    if num_classes is not None and len(labels) and (int(labels.min()) < 1 or int(labels.max()) >= num_classes):
        raise ValueError(f'{name}: labels {sorted(set(labels.tolist()))} must be in [1, {num_classes - 1}] '
                         '(0 is the background; num_classes counts it)')
    out = dict(target, boxes=boxes, labels=labels)
    if 'masks' in target and len(target['masks']) != len(boxes):
        raise ValueError(f'{name}: {len(target["masks"])} masks but {len(boxes)} boxes')
    if 'masks' in target and len(boxes) and tuple(target['masks'].shape[-2:]) != tuple(image.shape[-2:]):
        raise ValueError(f'{name}: masks {tuple(target["masks"].shape[-2:])} and image '
                         f'{tuple(image.shape[-2:])} differ in size')
    if 'masks' in target and len(boxes) == 0:
        out['masks'] = torch.zeros(0, *image.shape[-2:], dtype=torch.uint8)
    return out


def collate(batch: List[Tuple[torch.Tensor, dict]]) -> Tuple[List[torch.Tensor], List[dict]]:
    """Detection batches are lists (images differ in size): ``(images, targets)``."""
    images, targets = zip(*batch)
    return list(images), list(targets)


class SyntheticBoxes(Dataset):
    """Deterministic synthetic detection set: on a noisy background, up to ``max_objects`` filled
    squares (class 1) and discs (class 2, ...) in class colours, with exact boxes and masks; a
    fraction ``empty_ratio`` of images has no object at all (negative samples). The stand-in for
    COCO in tests and ``--data synthetic`` runs."""

    COLOURS = ((0.85, 0.2, 0.2), (0.2, 0.85, 0.2), (0.2, 0.2, 0.85))

    def __init__(self, length: int = 16, size: int = 128, num_classes: int = 3, max_objects: int = 3,
                 empty_ratio: float = 0.0, seed: int = 0, masks: bool = False):
        self.length, self.size, self.num_classes = length, size, num_classes
        self.max_objects, self.empty_ratio, self.seed, self.masks = max_objects, empty_ratio, seed, masks

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed + index)
        s = self.size
        image = torch.rand(3, s, s, generator=g) * 0.2 + 0.3
        yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing='ij')
        boxes, labels, masks = [], [], []
        n = 0 if float(torch.rand((), generator=g)) < self.empty_ratio else \
            int(torch.randint(1, self.max_objects + 1, (), generator=g))
        for _ in range(n):
            k = int(torch.randint(1, self.num_classes, (), generator=g))
            r = int(torch.randint(s // 10, s // 5 + 1, (), generator=g))
            cy, cx = (int(v) for v in torch.randint(r, s - r, (2,), generator=g))
            if k % 2 == 1:
                region = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
            else:
                region = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            colour = torch.tensor(self.COLOURS[(k - 1) % 3]).view(3, 1, 1)
            image = torch.where(region, colour, image)
            ys, xs = region.nonzero(as_tuple=True)
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
            labels.append(k)
            masks.append(region.to(torch.uint8))
        target = dict(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                      labels=torch.tensor(labels, dtype=torch.int64), image_id=index + 1,
                      size=torch.tensor([s, s]))
        if self.masks:
            target['masks'] = torch.stack(masks) if masks else torch.zeros(0, s, s, dtype=torch.uint8)
        return image, check_target(target, image, self.num_classes, f'synthetic[{index}]')


class CocoDetectionDataset(Dataset):
    """COCO-format detection data (``images_dir`` + instances JSON) via torchvision's
    ``CocoDetection`` and its transforms-v2 wrapper (boxes xyxy, labels = COCO category ids, masks).
    Crowd annotations are dropped; ``transform(image, target)`` (a ``transforms.v2`` transform,
    e.g. :func:`train_transform`) is applied last to ``tv_tensors`` (``Image``, ``BoundingBoxes``,
    ``Mask``); the sample comes out as plain tensors."""

    def __init__(self, images_dir, ann_file, masks: bool = False, transform: Optional[Callable] = None):
        from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
        keys = {'boxes', 'labels', 'image_id', 'iscrowd'} | ({'masks'} if masks else set())
        self.base = CocoDetection(str(images_dir), str(ann_file))
        self.ds = wrap_dataset_for_transforms_v2(self.base, target_keys=keys)
        self.coco = self.base.coco
        self.masks = masks
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        image, target = self.ds[index]
        image = tv_tensors.Image(TF.to_dtype(TF.to_image(image), torch.float32, scale=True))
        h, w = image.shape[-2:]
        boxes = torch.as_tensor(target.get('boxes', torch.zeros(0, 4))).reshape(-1, 4).float()
        labels = torch.as_tensor(target.get('labels', torch.zeros(0))).long()
        keep = ~torch.as_tensor(target.get('iscrowd', torch.zeros(len(labels)))).bool()
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out = dict(boxes=tv_tensors.BoundingBoxes(boxes[keep], format='XYXY', canvas_size=(h, w)),
                   labels=labels[keep], image_id=int(target['image_id']), size=torch.tensor([h, w]))
        if self.masks:
            m = torch.as_tensor(target.get('masks', torch.zeros(0, h, w))).to(torch.uint8)
            out['masks'] = tv_tensors.Mask(m[keep] if len(m) else torch.zeros(0, h, w, dtype=torch.uint8))
        if self.transform is not None:
            image, out = self.transform(image, out)
        image, out = _plain(image), {k: _plain(v) for k, v in out.items()}
        return image, check_target(out, image, None, f'{self.base.ids[index]}')


def train_transform(hflip: float = 0.5) -> v2.Transform:
    """The detectors' training augmentation on ``(image, target)`` with tv_tensors (what
    :class:`CocoDetectionDataset` passes): flip image, boxes and masks with probability ``hflip``
    (``v2.RandomHorizontalFlip``; torchvision's GeneralizedRCNNTransform resizes and normalises)."""
    return v2.RandomHorizontalFlip(hflip)


def _plain(value):
    """A tv_tensor as a plain tensor (what the detectors and :func:`check_target` take)."""
    return value.as_subclass(torch.Tensor) if isinstance(value, tv_tensors.TVTensor) else value
