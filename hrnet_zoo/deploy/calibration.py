"""Calibration images for int8 post-training quantization, from whatever the user has: a tensor,
an iterable of batches (a DataLoader, a list, a generator), a list of frames (PIL images or uint8
arrays, as a video decoder gives them), or a folder of images; raw images and frames are read
with the model's own preprocessing (timm's eval transform from its ``pretrained_cfg``)."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, List, Optional

import numpy as np
import torch
from torch import nn

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
DEFAULT_CALIBRATION_SIZE = 300  # images; nncf.quantize's default subset_size
# The fewest images deploy(dtype=torch.int8) calibrates on. Activation ranges are the min / max over
# the calibration images; on a random hrnet_w18_small with data-set BatchNorm statistics (32 px,
# tests/test_deploy.py sane_model), int8 against float32 on 64 held-out images had a cosine of mean
# 0.972-0.980 (worst image 0.81-0.88) with 1-8 calibration images and 0.985-0.986 (worst 0.93-0.95)
# with 16, no better with 32 or 64, on both OpenVINO and ONNX Runtime.
MIN_CALIBRATION_IMAGES = 16
SOURCES = ('an image batch tensor (N, C, H, W), an iterable of batches (e.g. a DataLoader), a list of frames '
           '(PIL images or uint8 H x W x C arrays) or a folder of images')


def model_transform(model: nn.Module) -> Callable:
    """timm's eval transform for ``model`` (PIL image -> normalised float tensor): resize keeping
    the aspect ratio to ``input_size / crop_pct``, centre crop to ``input_size``, normalise with
    its ``pretrained_cfg`` mean / std (timm's defaults where the model has no such config)."""
    from timm.data import create_transform, resolve_model_data_config
    return create_transform(**resolve_model_data_config(model), is_training=False)


def _frame_to_pil(frame: Any, in_channels: int):
    """A raw frame (PIL image, or a uint8 array / tensor laid out H x W x C or C x H x W) as an RGB
    PIL image, or None if ``frame`` is not one."""
    from PIL import Image
    if isinstance(frame, Image.Image):
        return frame.convert('RGB')
    if isinstance(frame, torch.Tensor) and frame.dtype == torch.uint8:
        frame = frame.cpu().numpy()
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3):
        return None
    if frame.shape[-1] != in_channels and frame.shape[0] == in_channels:
        frame = frame.transpose(1, 2, 0)  # C x H x W (torchvision.io) -> H x W x C
    return Image.fromarray(np.ascontiguousarray(frame)).convert('RGB')


def _images_of(item: Any, in_channels: int, transform: Callable[[], Callable]) -> torch.Tensor:
    """The image tensor of one calibration item: a batch (N, C, H, W), one image (C, H, W), a raw
    frame (PIL image or uint8 H x W x C array, through the model's ``transform``), or the first
    element of an ``(images, targets, ...)`` tuple / an ``{'image': ...}`` dict."""
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    elif isinstance(item, dict):
        key = next((k for k in ('image', 'images', 'input', 'pixel_values') if k in item), None)
        if key is None:
            raise ValueError(f'calibration: a dict batch needs an "image" key, got keys {sorted(item)}')
        item = item[key]
    frame = _frame_to_pil(item, in_channels)
    if frame is not None:
        return transform()(frame).unsqueeze(0)
    if isinstance(item, np.ndarray) and item.dtype.kind == 'f':
        item = torch.from_numpy(item)
    if not isinstance(item, torch.Tensor) or item.dim() not in (3, 4) or not item.is_floating_point():
        raise ValueError('calibration: each item must be a float image batch (N, C, H, W), one image (C, H, W), '
                         'an (images, targets) pair, or a raw frame (a PIL image or a uint8 H x W x C array); got '
                         f'{type(item).__name__} {tuple(getattr(item, "shape", ()))} {getattr(item, "dtype", "")}')
    return item if item.dim() == 4 else item.unsqueeze(0)


def folder_paths(folder: str) -> List[str]:
    """The image files under ``folder`` (recursively, sorted by path)."""
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f'calibration folder {folder!r} has no images ({", ".join(IMAGE_EXTENSIONS)})')
    return paths


def folder_images(model: nn.Module, folder: str, limit: int) -> torch.Tensor:
    """Up to ``limit`` images from ``folder`` (recursively, sorted by path) through
    :func:`model_transform` (resize, centre crop, normalise as its ``pretrained_cfg`` says)."""
    from PIL import Image
    transform = model_transform(model)
    with torch.no_grad():
        return torch.stack([transform(Image.open(p).convert('RGB')) for p in folder_paths(folder)[:limit]])


def calibration_images(calibration: Any, model: nn.Module, in_channels: int, limit: Optional[int] = None,
                       minimum: int = 1) -> List[torch.Tensor]:
    """Single-image float32 CPU batches (1, C, H, W), at most ``limit`` (default 300), from
    ``calibration``: a tensor, an iterable of batches or of frames, or an image folder path. Raw
    images (files, PIL images, uint8 frames) go through :func:`model_transform`; tensors are taken
    as model inputs. Fewer than ``minimum`` images is an error (deploy asks for
    :data:`MIN_CALIBRATION_IMAGES`). A top-down pose or landmark model is best calibrated on its
    own crops: pass them as tensors."""
    limit = limit or DEFAULT_CALIBRATION_SIZE
    if limit < minimum:
        raise ValueError(f'calibration_size={limit}: int8 quantization needs at least {minimum} calibration images')
    if calibration is None:
        raise ValueError(f'dtype=torch.int8 needs calibration=: a few hundred representative inputs, as {SOURCES}')
    cache: List[Callable] = []

    def transform() -> Callable:  # built on first use: timm's transform is only needed for raw images
        if not cache:
            cache.append(model_transform(model))
        return cache[0]

    if isinstance(calibration, (str, os.PathLike)):
        if not os.path.isdir(calibration):
            raise ValueError(f'calibration={str(calibration)!r} is not a folder of images')
        batches: Iterable = [folder_images(model, os.fspath(calibration), limit)]
    elif isinstance(calibration, torch.Tensor) or _frame_to_pil(calibration, in_channels) is not None:
        batches = [calibration]
    elif hasattr(calibration, '__iter__'):
        batches = calibration
    else:
        raise ValueError(f'calibration= must be {SOURCES}; got {type(calibration).__name__}')
    images: List[torch.Tensor] = []
    with torch.no_grad():
        for item in batches:
            for image in _images_of(item, in_channels, transform).detach().float().cpu():
                if image.shape[0] != in_channels:
                    raise ValueError(f'calibration images have {image.shape[0]} channels, '
                                     f'the model takes {in_channels}')
                images.append(image.unsqueeze(0).contiguous())
                if len(images) >= limit:
                    return images
    if len(images) < minimum:
        raise ValueError(f'calibration= gave {len(images)} image(s); int8 quantization needs at least {minimum} '
                         'representative inputs (a few hundred is best; NNCF uses up to 300): pass more images or '
                         'frames, or deploy without dtype=torch.int8')
    return images
