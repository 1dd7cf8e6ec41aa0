"""Segmentation datasets: Cityscapes (official list files or torchvision's ``Cityscapes``), a
generic image/mask folder, and a synthetic shapes set for tests and smoke runs.

Every dataset yields ``(image, mask)`` after its ``transform``; without one, ``image`` is a
``uint8`` tensor ``(3, H, W)`` and ``mask`` an ``int64`` tensor ``(H, W)``. Masks are validated:
a value outside ``[0, num_classes)`` that is not the ignore index, or a mask whose size differs
from its image, raises a ValueError naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .loss import IGNORE_INDEX
from .metainfo import get_dataset

# Cityscapes label id -> train id (the official ``label_mapping`` of lib/datasets/cityscapes.py);
# every other id (0-6, 9, 10, 14-16, 18, 29, 30, -1) becomes the ignore index.
CITYSCAPES_ID_TO_TRAINID: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = get_dataset('cityscapes').classes  # the 19 train ids' names (.metainfo)
CITYSCAPES_PALETTE = get_dataset('cityscapes').palette
# Per-class loss weights of the official Cityscapes dataset class (``class_weights``), used by its
# cross-entropy for the 19 train ids.
CITYSCAPES_CLASS_WEIGHTS = (
    0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843,
    1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507)
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def label_lut(mapping: Dict[int, int], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """A 256-entry lookup table: ``lut[raw_id] = train_id`` (unmapped ids -> ignore)."""
    lut = np.full(256, ignore_index, dtype=np.int64)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def read_image(path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert('RGB'))).permute(2, 0, 1).contiguous()


def read_mask(path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ('L', 'P', 'I', 'I;16'):
            raise ValueError(f'{path}: a mask must be a single-channel (L/P) image of class indices, '
                             f'got mode {im.mode}')
        return np.array(im).astype(np.int64)


def validate_sample(image: torch.Tensor, mask: torch.Tensor, num_classes: int, ignore_index: int, name: str) -> None:
    """Clear errors for a size mismatch or labels outside the classes (other than ignore)."""
    if tuple(image.shape[-2:]) != tuple(mask.shape):
        raise ValueError(f'{name}: image size {tuple(image.shape[-2:])} and mask size {tuple(mask.shape)} differ')
    bad = (mask != ignore_index) & ((mask < 0) | (mask >= num_classes))
    if bool(bad.any()):
        values = torch.unique(mask[bad])[:10].tolist()
        raise ValueError(f'{name}: mask values {values} are outside the {num_classes} classes and are not the '
                         f'ignore index {ignore_index}; pass a label_map or fix the mask')


class SegmentationDataset(Dataset):
    """Base: subclasses fill ``self.samples`` with (image path, mask path) pairs."""

    def __init__(self, num_classes: int, transform: Optional[Callable] = None, ignore_index: int = IGNORE_INDEX,
                 label_map: Optional[Dict[int, int]] = None, class_names: Optional[Sequence[str]] = None):
        self.num_classes = num_classes
        self.transform = transform
        self.ignore_index = ignore_index
        self.lut = None if label_map is None else label_lut(label_map, ignore_index)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.samples: List[Tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        img_path, mask_path = self.samples[index]
        image = read_image(img_path)
        raw = read_mask(mask_path)
        if self.lut is not None:
            if raw.min() < 0 or raw.max() > 255:
                raise ValueError(f'{mask_path}: label ids must be 0-255 to use a label_map')
            raw = self.lut[raw]
        mask = torch.from_numpy(raw)
        validate_sample(image, mask, self.num_classes, self.ignore_index, str(mask_path))
        return image, mask

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask


class ImageMaskFolder(SegmentationDataset):
    """``root/<images>/<name>.<ext>`` paired with ``root/<masks>/<name>.png`` (same stem).

    Args:
        num_classes: classes; mask values must be in ``[0, num_classes)`` or ``ignore_index``.
        label_map: optional raw value -> class index map (others become ignore).
    """

    def __init__(self, root, num_classes: int, images: str = 'images', masks: str = 'masks', **kwargs):
        super().__init__(num_classes, **kwargs)
        root = Path(root)
        img_dir, mask_dir = root / images, root / masks
        for d in (img_dir, mask_dir):
            if not d.is_dir():
                raise FileNotFoundError(f'{d} is not a folder; expected {root}/{images} and {root}/{masks}')
        masks_by_stem = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
        images_ = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        missing = [p.name for p in images_ if p.stem not in masks_by_stem]
        if missing:
            raise FileNotFoundError(f'{len(missing)} images in {img_dir} have no mask in {mask_dir} '
                                    f'(same file stem), e.g. {missing[:3]}')
        if not images_:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in {img_dir}')
        self.samples = [(str(p), str(masks_by_stem[p.stem])) for p in images_]


class CityscapesList(SegmentationDataset):
    """Cityscapes through the official list files (``data/list/cityscapes/{train,val}.lst``: one
    ``leftImg8bit/... gtFine/..._gtFine_labelIds.png`` pair per line, relative to ``root``). Label ids
    are mapped to the 19 train ids; the rest is ignored."""

    def __init__(self, root, list_file, **kwargs):
        kwargs.setdefault('label_map', CITYSCAPES_ID_TO_TRAINID)
        kwargs.setdefault('class_names', CITYSCAPES_CLASSES)
        super().__init__(19, **kwargs)
        root = Path(root)
        list_path = Path(list_file) if os.path.isabs(str(list_file)) else root / list_file
        if not list_path.is_file():
            raise FileNotFoundError(f'list file {list_path} not found')
        for n, line in enumerate(list_path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f'{list_path}:{n}: expected "<image> <label>" per line, got {line!r}')
            self.samples.append((str(root / parts[0]), str(root / parts[1])))


class CityscapesTorchvision(SegmentationDataset):
    """Cityscapes read by ``torchvision.datasets.Cityscapes`` (``mode='fine'``,
    ``target_type='semantic'``), with the label ids mapped to the 19 train ids."""

    def __init__(self, root, split: str = 'train', **kwargs):
        from torchvision.datasets import Cityscapes
        kwargs.setdefault('label_map', CITYSCAPES_ID_TO_TRAINID)
        kwargs.setdefault('class_names', CITYSCAPES_CLASSES)
        super().__init__(19, **kwargs)
        tv = Cityscapes(str(root), split=split, mode='fine', target_type='semantic')
        self.samples = list(zip(tv.images, tv.targets))
        self.samples = [(i, t if isinstance(t, str) else t[0]) for i, t in self.samples]


SHAPE_COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200))


def draw_shapes(size: int, num_classes: int, generator: torch.Generator, max_shapes: int = 3):
    """One synthetic sample: noisy background (class 0) with up to ``max_shapes`` objects; class
    ``k`` (1..num_classes-1) is a fixed shape (square / disc / triangle / cross, cycling) in a
    fixed colour, placed and sized at random. Returns ``(uint8 image (3,S,S), int64 mask (S,S))``."""
    g = generator
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    image = (torch.rand(3, size, size, generator=g) * 60 + 60)
    mask = torch.zeros(size, size, dtype=torch.int64)
    for _ in range(int(torch.randint(1, max_shapes + 1, (), generator=g))):
        k = int(torch.randint(1, num_classes, (), generator=g))
        r = float(torch.randint(size // 8, size // 4 + 1, (), generator=g))
        cy, cx = (float(v) for v in torch.randint(int(r), size - int(r), (2,), generator=g))
        dy, dx = (yy - cy).abs(), (xx - cx).abs()
        shape = (k - 1) % 4
        if shape == 0:
            region = (dy <= r) & (dx <= r)
        elif shape == 1:
            region = dy ** 2 + dx ** 2 <= r ** 2
        elif shape == 2:
            region = (yy - cy <= r) & (yy - cy >= -r) & (dx <= (yy - cy + r) / 2)
        else:
            region = ((dy <= r) & (dx <= r / 3)) | ((dx <= r) & (dy <= r / 3))
        colour = torch.tensor(SHAPE_COLOURS[(k - 1) % len(SHAPE_COLOURS)], dtype=torch.float32).view(3, 1, 1)
        image = torch.where(region, colour + torch.randn(3, size, size, generator=g) * 15, image)
        mask[region] = k
    return image.clamp(0, 255).to(torch.uint8), mask


class SyntheticShapes(Dataset):
    """``length`` deterministic samples of :func:`draw_shapes` (sample i uses seed ``seed + i``)."""

    def __init__(self, length: int = 64, size: int = 64, num_classes: int = 4, seed: int = 0,
                 transform: Optional[Callable] = None):
        if num_classes < 2:
            raise ValueError('SyntheticShapes needs at least 2 classes (background + one shape)')
        self.length, self.size, self.num_classes, self.seed = length, size, num_classes, seed
        self.transform = transform
        self.ignore_index = IGNORE_INDEX
        self.class_names = ['background'] + [f'shape{k}' for k in range(1, num_classes)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        image, mask = draw_shapes(self.size, self.num_classes, torch.Generator().manual_seed(self.seed + index))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask


def palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """Colours: the Cityscapes palette for 19 classes, else the bit-interleaved PASCAL palette
    (the official ``get_palette``)."""
    if num_classes == 19:
        return list(CITYSCAPES_PALETTE)
    out = []
    for j in range(num_classes):
        lab, rgb, i = j, [0, 0, 0], 0
        while lab:
            for c in range(3):
                rgb[c] |= ((lab >> c) & 1) << (7 - i)
            i += 1
            lab >>= 3
        out.append(tuple(rgb))
    return out


def overlay(image: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 0.5) -> Image.Image:
    """``image`` (uint8 (3, H, W)) with the class-index ``labels`` (H, W) blended in in the
    :func:`palette` colours (``torchvision.utils.draw_segmentation_masks``)."""
    from torchvision.utils import draw_segmentation_masks
    masks = labels[None] == torch.arange(num_classes, device=labels.device)[:, None, None]
    out = draw_segmentation_masks(image, masks, alpha=alpha, colors=palette(num_classes))
    return Image.fromarray(out.permute(1, 2, 0).cpu().numpy())


def colorize(mask: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Image.Image:
    """A class-index mask ``(H, W)`` as a paletted PNG-ready image (ignore -> white)."""
    pal = palette(num_classes)
    flat = [v for rgb in pal for v in rgb] + [0] * (3 * (256 - len(pal)))
    flat[3 * 255:3 * 256] = [255, 255, 255]
    arr = mask.cpu().numpy().astype(np.int64)
    arr = np.where((arr == ignore_index) | (arr < 0) | (arr >= num_classes), 255, arr).astype(np.uint8)
    im = Image.fromarray(arr, mode='P')
    im.putpalette(flat)
    return im
