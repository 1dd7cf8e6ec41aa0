"""Model + data -> mIoU, with whole-image, sliding-window and multi-scale + flip testing (official
``multi_scale_inference``: per scale, resize, run whole or by overlapping crops, average the
flipped prediction, resize back and accumulate). We average softmax probabilities."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .loss import IGNORE_INDEX
from .metrics import ConfusionMatrix

__all__ = ['predict', 'sliding_window', 'evaluate', 'swap_channels']


def swap_channels(probs: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """``probs`` with the left/right class channels of ``flip_pairs`` exchanged (LIP's arms, legs
    and shoes: what the flipped image calls a left arm is the original's right arm)."""
    index = list(range(probs.shape[1]))
    for a, b in flip_pairs:
        index[a], index[b] = b, a
    return probs[:, index]


def _probs(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    logits = model(image)
    if logits.shape[-2:] != image.shape[-2:]:
        logits = F.interpolate(logits, size=image.shape[-2:], mode='bilinear', align_corners=False)
    return logits.softmax(1)


def _forward(model: nn.Module, image: torch.Tensor, flip: bool,
             flip_pairs: Sequence[Tuple[int, int]] = ()) -> torch.Tensor:
    probs = _probs(model, image)
    if flip:
        probs = 0.5 * (probs + swap_channels(_probs(model, image.flip(-1)).flip(-1), flip_pairs))
    return probs


@torch.no_grad()
def sliding_window(model: nn.Module, image: torch.Tensor, crop_size: Tuple[int, int],
                   stride: Optional[Tuple[int, int]] = None, flip: bool = False,
                   flip_pairs: Sequence[Tuple[int, int]] = ()) -> torch.Tensor:
    """Class probabilities ``(N, C, H, W)`` from overlapping ``crop_size`` windows (default stride
    2/3 of the crop, as the official ``base_dataset``); images smaller than a crop are zero-padded
    (the normalised mean colour) and the padding is cut off again."""
    n, _, h, w = image.shape
    ch, cw = crop_size
    sh, sw = stride or (max(1, ch * 2 // 3), max(1, cw * 2 // 3))
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    padded = F.pad(image, (0, pw, 0, ph)) if (ph or pw) else image
    H, W = padded.shape[-2:]
    rows = max(1, math.ceil((H - ch) / sh) + 1)
    cols = max(1, math.ceil((W - cw) / sw) + 1)
    probs = None
    count = torch.zeros(1, 1, H, W, device=image.device)
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * sh + ch, H), min(c * sw + cw, W)
            y0, x0 = max(y1 - ch, 0), max(x1 - cw, 0)
            p = _forward(model, padded[:, :, y0:y1, x0:x1], flip, flip_pairs)
            if probs is None:
                probs = torch.zeros(n, p.shape[1], H, W, device=image.device, dtype=p.dtype)
            probs[:, :, y0:y1, x0:x1] += p
            count[:, :, y0:y1, x0:x1] += 1
    return (probs / count)[:, :, :h, :w]


@torch.no_grad()
def predict(model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
            crop_size: Optional[Tuple[int, int]] = None, stride: Optional[Tuple[int, int]] = None,
            flip_pairs: Sequence[Tuple[int, int]] = ()) -> torch.Tensor:
    """Class probabilities ``(N, C, H, W)`` at the input size, averaged over ``scales`` (and the
    horizontal flip; ``flip_pairs`` are left/right classes swapped in the flipped prediction, the
    model's ``pretrained_cfg['flip_pairs']``). With ``crop_size``, each scaled image larger than a
    crop is evaluated by :func:`sliding_window`; else the whole image goes through the model."""
    if image.dim() != 4:
        raise ValueError(f'image must be a (N, 3, H, W) batch, got shape {tuple(image.shape)}')
    h, w = image.shape[-2:]
    total = None
    for s in scales:
        size = (max(32, round(h * s)), max(32, round(w * s)))
        x = image if size == (h, w) else F.interpolate(image, size=size, mode='bilinear', align_corners=False)
        if crop_size is not None and (size[0] > crop_size[0] or size[1] > crop_size[1]):
            p = sliding_window(model, x, crop_size, stride, flip, flip_pairs)
        else:
            p = _forward(model, x, flip, flip_pairs)
        if p.shape[-2:] != (h, w):
            p = F.interpolate(p, size=(h, w), mode='bilinear', align_corners=False)
        total = p if total is None else total + p
    return total / len(scales)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 1,
             scales: Sequence[float] = (1.0,), flip: bool = False, crop_size: Optional[Tuple[int, int]] = None,
             ignore_index: int = IGNORE_INDEX, class_names: Optional[Sequence[str]] = None,
             device: Optional[torch.device] = None, num_workers: int = 0,
             all_reduce: bool = False, flip_pairs: Sequence[Tuple[int, int]] = ()) -> Dict[str, float]:
    """mIoU over ``dataset`` (yielding normalised ``(image, mask)``), with optional multi-scale,
    flip and sliding-window testing. The confusion matrix covers the whole set; with
    ``all_reduce`` (every rank evaluating its own shard) it is summed over ranks first. The
    engine's default runs eval_fn on rank 0 over the whole set, so no collective is made."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, class_names or getattr(dataset, 'class_names', None))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, masks in loader:
        probs = predict(model, images.to(device), scales=scales, flip=flip, crop_size=crop_size, flip_pairs=flip_pairs)
        cm.update(probs.argmax(1).cpu(), masks)
    if all_reduce:
        cm.all_reduce()
    model.train(was_training)
    return cm.compute()
