"""Model + data -> mIoU, with the test protocol of the official HRNet-Semantic-Segmentation code
(HRNet-OCR branch, ``lib/datasets/base_dataset.py``, ``cityscapes.py``, ``lip.py``, ``lib/core/function.py``
``testval``); the tests pin each rule with numbers.

Per scale ``s`` (``multi_scale_inference``):

1. resize the (normalised) image so that its long side is ``int(base_size * s + 0.5)`` and the other
   ``int(side * long / long_side + 0.5)`` (``multi_scale_aug``; ``base_size`` is ``TEST.BASE_SIZE``,
   by default the image's own long side). Image resizes are ``cv2.resize`` bilinear: half-pixel
   centres, ``align_corners=False`` whatever the model's ``align_corners``.
2. run the model on the whole image or on windows of ``crop_size`` (``TEST.IMAGE_SIZE``), two rules:

   - ``'base'`` (``BaseDataset``: PASCAL-Context, LIP, ...): the image is padded at the bottom/right
     to at least one crop, windows start every ``int(crop * 2 / 3)`` px, a window running past the
     (padded) image is padded to a full crop again; padding is black (raw 0: ``-mean / std`` after
     normalisation, the official ``padvalue``), and is cut off afterwards. An image within one crop
     is one padded window.
   - ``'cityscapes'`` (``Cityscapes.multi_scale_inference``): scales ``<= 1`` run on the whole image
     (no padding); larger ones on windows stepped by a full crop, the last row/column moved back to
     end at the image border (``h0 = max(h1 - crop, 0)``), never padded. Without ``crop_size`` the
     crop is the image's size at scale 1 (the official ``TEST.IMAGE_SIZE`` 2048x1024 is the
     Cityscapes image).

   Each window (``inference``): logits resized to the window with ``align_corners`` (the official
   ``MODEL.ALIGN_CORNERS``); with flip, the logits of the mirrored window (LIP: left/right class
   channels swapped, ``flip_pairs``) mirrored back and averaged with them, **then** ``exp()``;
   overlapping windows are averaged.
3. resize the scores to the input size with ``align_corners`` and **sum** over the scales
   (unnormalised: not probabilities).

``combine='softmax'`` (the earlier rule of this package) instead averages softmax probabilities
over the flip, the windows and the scales; the argmax differs from the official one on a few
pixels (flip) to a few percent (multi-scale). Single-scale inference without flip is the same
under both (the argmax of ``exp`` and of softmax agree).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .loss import IGNORE_INDEX
from .metrics import ConfusionMatrix

__all__ = ['predict', 'sliding_window', 'evaluate', 'swap_channels', 'scaled_size', 'window_boxes',
           'COMBINES', 'WINDOWS']

COMBINES = ('official', 'softmax')  # exp(mean logits) summed over scales | mean softmax
WINDOWS = ('base', 'cityscapes')  # BaseDataset.multi_scale_inference | Cityscapes.multi_scale_inference
MIN_SIZE = 32  # a scaled image is never smaller than this (the trunk's stride; the official code has no floor)

Box = Tuple[int, int, int, int]  # (y0, y1, x0, x1)


def swap_channels(probs: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """``probs`` with the left/right class channels of ``flip_pairs`` exchanged (LIP's arms, legs
    and shoes: what the flipped image calls a left arm is the original's right arm; the official
    ``LIP.inference`` swaps channels 14/15, 16/17, 18/19 of the flipped logits)."""
    index = list(range(probs.shape[1]))
    for a, b in flip_pairs:
        index[a], index[b] = b, a
    return probs[:, index]


def scaled_size(height: int, width: int, scale: float, base_size: Optional[int] = None) -> Tuple[int, int]:
    """(H, W) of an image at test ``scale`` (official ``BaseDataset.multi_scale_aug``): the long side
    becomes ``int(base_size * scale + 0.5)`` (``base_size``: ``TEST.BASE_SIZE``, default the long
    side), the other side ``int(side * long / long_side + 0.5)``; a square image counts as wide."""
    long = int((base_size or max(height, width)) * scale + 0.5)
    if height > width:
        return long, int(width * long / height + 0.5)
    return int(height * long / width + 0.5), long


def window_boxes(height: int, width: int, crop_size: Tuple[int, int], windows: str = 'base',
                 stride: Optional[Tuple[int, int]] = None) -> Tuple[Tuple[int, int], List[Box]]:
    """The windows of one scaled image: ``((H, W), [(y0, y1, x0, x1), ...])`` where ``(H, W)`` is the
    image padded to at least one crop (``'base'``) or its own size (``'cityscapes'``). Rows/columns:
    ``ceil((H - crop) / stride) + 1``; default stride ``int(crop * 2 / 3)`` (``'base'``) or the crop
    (``'cityscapes'``). ``'base'`` windows start at ``r * stride`` and end at ``min(start + crop, H)``
    (shorter ones are padded to a crop); ``'cityscapes'`` windows end there and start ``crop``
    before (``max(end - crop, 0)``)."""
    if windows not in WINDOWS:
        raise ValueError(f'windows must be one of {WINDOWS}, got {windows!r}')
    ch, cw = crop_size
    if windows == 'base':
        sh, sw = stride or (int(ch * 2 / 3), int(cw * 2 / 3))
        height, width = max(height, ch), max(width, cw)
    else:
        sh, sw = stride or (ch, cw)
    if min(ch, cw, sh, sw) < 1:
        raise ValueError(f'crop_size {crop_size} and stride {stride} must be positive')
    rows = max(1, math.ceil((height - ch) / sh) + 1)
    cols = max(1, math.ceil((width - cw) / sw) + 1)
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * sh + ch, height), min(c * sw + cw, width)
            y0, x0 = (r * sh, c * sw) if windows == 'base' else (max(y1 - ch, 0), max(x1 - cw, 0))
            boxes.append((y0, y1, x0, x1))
    return (height, width), boxes


def _black(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The official ``padvalue``: raw black after normalisation, ``-mean / std`` per channel (the
    model's ``pretrained_cfg`` mean/std), shaped ``(1, C, 1, 1)``; zeros for non-RGB inputs."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    mean, std = cfg.get('mean', IMAGENET_DEFAULT_MEAN), cfg.get('std', IMAGENET_DEFAULT_STD)
    if image.shape[1] != len(mean):
        return image.new_zeros(1, image.shape[1], 1, 1)
    black = -torch.tensor(mean, dtype=image.dtype) / torch.tensor(std, dtype=image.dtype)
    return black.view(1, -1, 1, 1).to(image.device)


def _pad(image: torch.Tensor, size: Tuple[int, int], value: torch.Tensor) -> torch.Tensor:
    """``image`` padded at the bottom/right to at least ``size`` with ``value`` (official ``pad_image``,
    ``cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, BORDER_CONSTANT, padvalue)``)."""
    n, c, h, w = image.shape
    H, W = max(h, size[0]), max(w, size[1])
    if (H, W) == (h, w):
        return image
    out = value.expand(n, c, H, W).clone()
    out[:, :, :h, :w] = image
    return out


def _resize(x: torch.Tensor, size: Tuple[int, int], align_corners: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=align_corners)


def _logits(model: nn.Module, image: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Float logits at the image's size (resized with ``align_corners`` when the model returns fewer)."""
    return _resize(model(image), image.shape[-2:], align_corners).float()


def _scores(model: nn.Module, image: torch.Tensor, flip: bool, flip_pairs: Sequence[Tuple[int, int]],
            combine: str, align_corners: bool) -> torch.Tensor:
    """One window (official ``inference``): ``exp`` of the logits averaged with the mirrored ones
    (``'official'``), or the averaged softmax (``'softmax'``)."""
    def mirrored():
        return swap_channels(_logits(model, image.flip(-1), align_corners), flip_pairs).flip(-1)

    logits = _logits(model, image, align_corners)
    if combine == 'softmax':
        probs = logits.softmax(1)
        return 0.5 * (probs + mirrored().softmax(1)) if flip else probs
    return (0.5 * (logits + mirrored()) if flip else logits).exp()


def _options(model: nn.Module, combine: str, windows: Optional[str], align_corners: Optional[bool]):
    """The protocol options, defaults from the model (``pretrained_cfg['test_windows']``,
    ``align_corners``), checked."""
    if combine not in COMBINES:
        raise ValueError(f'combine must be one of {COMBINES}, got {combine!r}')
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    windows = windows or cfg.get('test_windows') or 'base'
    if windows not in WINDOWS:
        raise ValueError(f'windows must be one of {WINDOWS}, got {windows!r}')
    if align_corners is None:
        align_corners = bool(getattr(model, 'align_corners', cfg.get('align_corners', False)))
    return windows, align_corners


@torch.no_grad()
def sliding_window(model: nn.Module, image: torch.Tensor, crop_size: Tuple[int, int],
                   stride: Optional[Tuple[int, int]] = None, flip: bool = False,
                   flip_pairs: Sequence[Tuple[int, int]] = (), windows: Optional[str] = None,
                   combine: str = 'official', align_corners: Optional[bool] = None) -> torch.Tensor:
    """Scores ``(N, C, H, W)`` of one (already scaled) image from the windows of
    :func:`window_boxes`, averaged where they overlap (``windows``: ``'base'`` or ``'cityscapes'``,
    default the model's ``pretrained_cfg['test_windows']``; ``combine`` and ``align_corners`` as
    :func:`predict`). ``'base'`` pads with black (``-mean / std``) and cuts the padding off."""
    windows, align_corners = _options(model, combine, windows, align_corners)
    n, _, h, w = image.shape
    (H, W), boxes = window_boxes(h, w, crop_size, windows, stride)
    black = _black(model, image)
    padded = _pad(image, (H, W), black)
    scores, count = None, torch.zeros(1, 1, H, W, device=image.device)
    for y0, y1, x0, x1 in boxes:
        window = padded[:, :, y0:y1, x0:x1]
        if windows == 'base':
            window = _pad(window, crop_size, black)
        s = _scores(model, window, flip, flip_pairs, combine, align_corners)[:, :, :y1 - y0, :x1 - x0]
        if scores is None:
            scores = s.new_zeros(n, s.shape[1], H, W)
        scores[:, :, y0:y1, x0:x1] += s
        count[:, :, y0:y1, x0:x1] += 1
    return (scores / count)[:, :, :h, :w]


@torch.no_grad()
def predict(model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
            crop_size: Optional[Tuple[int, int]] = None, stride: Optional[Tuple[int, int]] = None,
            flip_pairs: Sequence[Tuple[int, int]] = (), combine: str = 'official', windows: Optional[str] = None,
            base_size: Optional[int] = None, align_corners: Optional[bool] = None,
            resize_to: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Class scores ``(N, C, H, W)`` at the input size, by the official protocol (module docstring);
    the argmax is the prediction.

    Args:
        image: a normalised batch ``(N, 3, H, W)``.
        scales: test scales (official ``TEST.SCALE_LIST``), relative to ``base_size``.
        flip: also run the mirrored image (``TEST.FLIP_TEST``); ``flip_pairs`` are left/right
            classes swapped in its prediction (the model's ``pretrained_cfg['flip_pairs']``).
        crop_size: window size (``TEST.IMAGE_SIZE`` as (H, W)); None: ``'base'`` runs whole images,
            ``'cityscapes'`` uses the input's size.
        stride: window step (default: the rule's).
        combine: ``'official'`` (``exp`` of the flip-averaged logits, windows averaged, scales
            summed: unnormalised scores) or ``'softmax'`` (probabilities averaged everywhere).
        windows: ``'base'`` or ``'cityscapes'`` (default: the model's ``pretrained_cfg['test_windows']``,
            ``'cityscapes'`` for the Cityscapes models, else ``'base'``).
        base_size: long side at scale 1 (``TEST.BASE_SIZE``; default the image's long side).
        align_corners: of every score resize (default: the model's, the official ``MODEL.ALIGN_CORNERS``).
        resize_to: (H, W) every image is resized to before inference, the scores resized back to
            the input size with ``align_corners`` (official LIP ``testval``: 473x473).
    """
    if image.dim() != 4:
        raise ValueError(f'image must be a (N, 3, H, W) batch, got shape {tuple(image.shape)}')
    windows, align_corners = _options(model, combine, windows, align_corners)
    size_in = tuple(image.shape[-2:])
    x0 = _resize(image, tuple(resize_to), False) if resize_to else image
    h, w = x0.shape[-2:]
    total = None
    for s in scales:
        size = tuple(max(MIN_SIZE, v) for v in scaled_size(h, w, s, base_size))
        x = _resize(x0, size, False)  # cv2.resize INTER_LINEAR
        whole = (windows == 'base' and crop_size is None) or (windows == 'cityscapes' and s <= 1)
        if whole:
            p = _scores(model, x, flip, flip_pairs, combine, align_corners)
        else:
            p = sliding_window(model, x, tuple(crop_size or (h, w)), stride, flip, flip_pairs, windows, combine,
                               align_corners)
        p = _resize(p, (h, w), align_corners)
        total = p if total is None else total + p
    if combine == 'softmax':
        total = total / len(scales)
    return _resize(total, size_in, align_corners)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 1,
             scales: Sequence[float] = (1.0,), flip: bool = False, crop_size: Optional[Tuple[int, int]] = None,
             ignore_index: int = IGNORE_INDEX, class_names: Optional[Sequence[str]] = None,
             device: Optional[torch.device] = None, num_workers: int = 0,
             all_reduce: bool = False, flip_pairs: Sequence[Tuple[int, int]] = (), combine: str = 'official',
             windows: Optional[str] = None, base_size: Optional[int] = None,
             resize_to: Optional[Tuple[int, int]] = None, stride: Optional[Tuple[int, int]] = None) -> Dict[str, float]:
    """mIoU over ``dataset`` (yielding normalised ``(image, mask)``) with :func:`predict`'s protocol
    (the official ``testval``: the argmax of the scores at the mask's size). The confusion matrix
    covers the whole set; with ``all_reduce`` (every rank evaluating its own shard) it is summed
    over ranks first. The engine's default runs eval_fn on rank 0 over the whole set, so no
    collective is made."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, class_names or getattr(dataset, 'class_names', None))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, masks in loader:
        scores = predict(model, images.to(device), scales=scales, flip=flip, crop_size=crop_size, stride=stride,
                         flip_pairs=flip_pairs, combine=combine, windows=windows, base_size=base_size,
                         resize_to=resize_to)
        cm.update(scores.argmax(1).cpu(), masks)
    if all_reduce:
        cm.all_reduce()
    model.train(was_training)
    return cm.compute()
