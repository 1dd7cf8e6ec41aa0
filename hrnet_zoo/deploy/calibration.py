"""Calibration images for int8 post-training quantization, from whatever the user has: a tensor,
an iterable of batches (a DataLoader, a list, a generator), or a folder of images read with the
model's own preprocessing (timm's eval transform from its ``pretrained_cfg``)."""
from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

import torch
from torch import nn

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
DEFAULT_CALIBRATION_SIZE = 300  # images; nncf.quantize's default subset_size


def _images_of(item: Any) -> torch.Tensor:
    """The image tensor of one calibration item: a batch (N, C, H, W), one image (C, H, W), or the
    first element of an ``(images, targets, ...)`` tuple / an ``{'image': ...}`` dict."""
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    elif isinstance(item, dict):
        key = next((k for k in ('image', 'images', 'input', 'pixel_values') if k in item), None)
        if key is None:
            raise ValueError(f'calibration: a dict batch needs an "image" key, got keys {sorted(item)}')
        item = item[key]
    if not isinstance(item, torch.Tensor) or item.dim() not in (3, 4) or not item.is_floating_point():
        raise ValueError('calibration: each item must be a float image batch (N, C, H, W), one image (C, H, W), '
                         f'or an (images, targets) pair; got {type(item).__name__} '
                         f'{tuple(getattr(item, "shape", ()))} {getattr(item, "dtype", "")}')
    return item if item.dim() == 4 else item.unsqueeze(0)


def folder_images(model: nn.Module, folder: str, limit: int) -> torch.Tensor:
    """Up to ``limit`` images from ``folder`` (recursively, sorted by path) through timm's eval
    transform for ``model`` (resize, centre crop, normalise as its ``pretrained_cfg`` says)."""
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f'calibration folder {folder!r} has no images ({", ".join(IMAGE_EXTENSIONS)})')
    transform = create_transform(**resolve_model_data_config(model), is_training=False)
    with torch.no_grad():
        return torch.stack([transform(Image.open(p).convert('RGB')) for p in paths[:limit]])


def calibration_images(calibration: Any, model: nn.Module, in_channels: int,
                       limit: Optional[int] = None) -> List[torch.Tensor]:
    """Single-image float32 CPU batches (1, C, H, W), at most ``limit`` (default 300), from
    ``calibration``: a tensor, an iterable of batches, or an image folder path."""
    limit = limit or DEFAULT_CALIBRATION_SIZE
    if calibration is None:
        raise ValueError('dtype=torch.int8 needs calibration=: a few hundred representative inputs, as an image '
                         'batch tensor, an iterable of batches (e.g. a DataLoader) or a folder of images')
    if isinstance(calibration, (str, os.PathLike)):
        if not os.path.isdir(calibration):
            raise ValueError(f'calibration={str(calibration)!r} is not a folder of images')
        batches: Iterable = [folder_images(model, os.fspath(calibration), limit)]
    elif isinstance(calibration, torch.Tensor):
        batches = [calibration]
    elif hasattr(calibration, '__iter__'):
        batches = calibration
    else:
        raise ValueError(f'calibration= must be a tensor, an iterable of batches or a folder, got {type(calibration).__name__}')
    images: List[torch.Tensor] = []
    for item in batches:
        for image in _images_of(item).detach().float().cpu():
            if image.shape[0] != in_channels:
                raise ValueError(f'calibration images have {image.shape[0]} channels, the model takes {in_channels}')
            images.append(image.unsqueeze(0).contiguous())
            if len(images) >= limit:
                return images
    if not images:
        raise ValueError('calibration= gave no images')
    return images
