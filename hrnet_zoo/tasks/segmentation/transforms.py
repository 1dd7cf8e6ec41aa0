"""Joint image/mask transforms for training (paper Sec. 5.2: random scale in [0.5, 2.0], random
crop, horizontal flip) and normalisation. Images are ``uint8``/float tensors ``(3, H, W)`` with
values 0-255, masks integer tensors ``(H, W)``. Randomness comes from ``torch`` so DataLoader
workers and ``torch.manual_seed`` control it."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .loss import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pair = Tuple[torch.Tensor, torch.Tensor]


def check_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise a clear ValueError when an image and its mask do not belong together."""
    if image.dim() != 3:
        raise ValueError(f'image must be (C, H, W), got shape {tuple(image.shape)}')
    if mask.dim() != 2:
        raise ValueError(f'mask must be (H, W) class indices, got shape {tuple(mask.shape)}')
    if image.shape[-2:] != mask.shape:
        raise ValueError(f'image size {tuple(image.shape[-2:])} and mask size {tuple(mask.shape)} differ; '
                         'a mask must label every pixel of its image')


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int]) -> Pair:
    """Bilinear for the image, nearest for the mask (labels are never interpolated)."""
    img = F.interpolate(image[None].float(), size=size, mode='bilinear', align_corners=False)[0]
    msk = F.interpolate(mask[None, None].float(), size=size, mode='nearest')[0, 0].to(mask.dtype)
    return img, msk


class Compose:
    def __init__(self, transforms: Sequence[Callable[[torch.Tensor, torch.Tensor], Pair]]):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Pair:
        check_pair(image, mask)
        for t in self.transforms:
            image, mask = t(image, mask)
        return image, mask


class RandomScale:
    """Resize by a factor drawn uniformly from ``scale_range``; with ``base_size`` the long side
    becomes ``base_size * factor`` (the official ``multi_scale_aug``), else the image's own size."""

    def __init__(self, scale_range: Tuple[float, float] = (0.5, 2.0), base_size: Optional[int] = None):
        self.scale_range = scale_range
        self.base_size = base_size

    def __call__(self, image, mask):
        lo, hi = self.scale_range
        s = lo + (hi - lo) * float(torch.rand(()))
        h, w = mask.shape
        if self.base_size:
            s = self.base_size * s / max(h, w)
        return resize_pair(image, mask, (max(1, round(h * s)), max(1, round(w * s))))


class RandomCrop:
    """Pad (image with 0, mask with the ignore index) up to ``size`` and crop a random window."""

    def __init__(self, size: Tuple[int, int], ignore_index: int = IGNORE_INDEX):
        self.size = tuple(size)
        self.ignore_index = ignore_index

    def __call__(self, image, mask):
        ch, cw = self.size
        h, w = mask.shape
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:
            image = F.pad(image, (0, pw, 0, ph), value=0)
            mask = F.pad(mask, (0, pw, 0, ph), value=self.ignore_index)
            h, w = mask.shape
        y = int(torch.randint(0, h - ch + 1, ()))
        x = int(torch.randint(0, w - cw + 1, ()))
        return image[:, y:y + ch, x:x + cw], mask[y:y + ch, x:x + cw]


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, mask):
        if float(torch.rand(())) < self.p:
            return image.flip(-1), mask.flip(-1)
        return image, mask


class Normalize:
    """0-255 image -> float, ``(x / 255 - mean) / std``; the mask becomes ``int64``."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, image, mask):
        return (image.float() / 255.0 - self.mean) / self.std, mask.long()


def train_transforms(crop_size: Tuple[int, int], scale_range: Tuple[float, float] = (0.5, 2.0),
                     base_size: Optional[int] = None, ignore_index: int = IGNORE_INDEX,
                     flip: bool = True) -> Compose:
    """The paper's training augmentation: random scale, crop, flip, then normalisation."""
    ts: List = [RandomScale(scale_range, base_size), RandomCrop(crop_size, ignore_index)]
    if flip:
        ts.append(RandomHorizontalFlip())
    return Compose(ts + [Normalize()])


def eval_transforms() -> Compose:
    """Evaluation: normalisation only (whole image; see :mod:`.inference` for sliding windows)."""
    return Compose([Normalize()])
