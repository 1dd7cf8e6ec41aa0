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

``protocol='mmseg'`` (the default of the ``*_mmseg`` models, ``pretrained_cfg['test_protocol']``) is
mmsegmentation's test instead (``EncoderDecoder.inference`` / ``whole_inference`` /
``slide_inference``, ``BaseSegmentor.postprocess_result``, the datasets' ``test_pipeline`` and 0.x
``MultiScaleFlipAug``, with which its figures were measured), per dataset :data:`MMSEG_TESTS`:

1. per ratio ``r`` of ``scales``: the image is resized keeping its aspect (mmcv ``Resize(scale,
   keep_ratio=True)``: factor ``f = min(long / max(h, w), short / min(h, w))`` of the scale
   ``(int(W * r), int(H * r))``, size ``int(side * f + 0.5)``; Cityscapes ``(2048, 1024)``, ADE20K and
   VOC ``(2048, 512)``, ...); with ``flip`` also mirrored;
2. ``'whole'``: the model runs on the whole image; ``'slide'`` (PASCAL-Context: 480x480 crops every
   320 px): on windows stepped by ``stride`` whose last row / column ends at the border (never
   padded), their **logits** averaged where they overlap;
3. logits at the resized image's size (``align_corners``), mirrored back, resized to the input with
   ``align_corners``; the views (ratios x flips) are combined by averaging their **softmax**
   (``SegTTAModel.merge_preds``; 0.x ``aug_test``). ``predict`` returns those probabilities.

Differences left: mmcv resizes the uint8 image with OpenCV before normalising (we resize the
normalised image: the same bilinear rule, other rounding); mmseg 1.x's ``tta_pipeline`` scales the
*original* image by ``r`` rather than the test scale (0.x, used here).
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .loss import IGNORE_INDEX
from .metrics import ConfusionMatrix

__all__ = ['predict', 'sliding_window', 'evaluate', 'swap_channels', 'scaled_size', 'window_boxes', 'mmseg_size',
           'COMBINES', 'WINDOWS', 'PROTOCOLS', 'MMSegTest', 'MMSEG_TESTS']

PROTOCOLS = ('official', 'mmseg')  # HRNet-Semantic-Segmentation's test | mmsegmentation's
# exp(mean logits) summed over scales | mean softmax | mmseg: logits averaged over windows, softmax over views
COMBINES = ('official', 'softmax', 'mmseg')
# BaseDataset.multi_scale_inference | Cityscapes.multi_scale_inference | mmseg test_cfg mode='whole' | 'slide'
WINDOWS = ('base', 'cityscapes', 'whole', 'slide')
MIN_SIZE = 32  # a scaled image is never smaller than this (the trunk's stride; the official code has no floor)

Box = Tuple[int, int, int, int]  # (y0, y1, x0, x1)


@dataclass(frozen=True)
class MMSegTest:
    """mmseg's test of one dataset: the test pipeline's ``Resize(scale, keep_ratio=True)``
    (``scale`` as the config writes it, ``(W, H)``: bounds of the long and the short side) and the
    model's ``test_cfg`` (``mode`` ``'whole'`` or ``'slide'`` with ``crop_size`` / ``stride`` as (H, W))."""
    scale: Tuple[int, int]
    mode: str = 'whole'
    crop_size: Optional[Tuple[int, int]] = None
    stride: Optional[Tuple[int, int]] = None
    source: str = ''


_MMSEG_CFG = 'mmsegmentation 1.2.2 configs/_base_/datasets/'
_SLIDE_480 = dict(mode='slide', crop_size=(480, 480), stride=(320, 320))  # configs/hrnet/fcn_hr*_pascal-context*
# the test of each dataset mmseg published HRNet checkpoints for (every HRNet config runs mode='whole'
# but PASCAL-Context's, configs/hrnet/*pascal-context*.py)
MMSEG_TESTS: Dict[str, MMSegTest] = {
    'cityscapes': MMSegTest((2048, 1024), source=_MMSEG_CFG + 'cityscapes.py'),
    'ade20k': MMSegTest((2048, 512), source=_MMSEG_CFG + 'ade20k.py'),
    'voc12aug': MMSegTest((2048, 512), source=_MMSEG_CFG + 'pascal_voc12_aug.py'),
    'pascal_context': MMSegTest((520, 520), **_SLIDE_480, source=_MMSEG_CFG + 'pascal_context_59.py'),
    'pascal_context_60': MMSegTest((520, 520), **_SLIDE_480, source=_MMSEG_CFG + 'pascal_context.py'),
    'loveda': MMSegTest((1024, 1024), source=_MMSEG_CFG + 'loveda.py'),
    'potsdam': MMSegTest((512, 512), source=_MMSEG_CFG + 'potsdam.py'),
    'vaihingen': MMSegTest((512, 512), source=_MMSEG_CFG + 'vaihingen.py'),
    'isaid': MMSegTest((896, 896), source=_MMSEG_CFG + 'isaid.py'),
}


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


def mmseg_size(height: int, width: int, scale: Tuple[int, int], ratio: float = 1.0) -> Tuple[int, int]:
    """(H, W) of an image after mmcv's ``Resize(scale, keep_ratio=True)`` at test ``ratio`` (0.x
    ``MultiScaleFlipAug``: the scale ``(int(W * ratio), int(H * ratio))``): ``mmcv.rescale_size``'s factor
    ``f = min(long / max(h, w), short / min(h, w))`` and ``int(side * f + 0.5)``."""
    bound = (int(scale[0] * ratio), int(scale[1] * ratio))
    f = min(max(bound) / max(height, width), min(bound) / min(height, width))
    return int(height * f + 0.5), int(width * f + 0.5)


def window_boxes(height: int, width: int, crop_size: Tuple[int, int], windows: str = 'base',
                 stride: Optional[Tuple[int, int]] = None) -> Tuple[Tuple[int, int], List[Box]]:
    """The windows of one scaled image: ``((H, W), [(y0, y1, x0, x1), ...])`` where ``(H, W)`` is the
    image padded to at least one crop (``'base'``) or its own size (``'cityscapes'``, ``'slide'``).
    Rows/columns: ``ceil((H - crop) / stride) + 1``; default stride ``int(crop * 2 / 3)`` (``'base'``)
    or the crop (``'cityscapes'``; ``'slide'``: mmseg's ``slide_inference``, the stride it is given).
    ``'base'`` windows start at ``r * stride`` and end at ``min(start + crop, H)`` (shorter ones are
    padded to a crop); ``'cityscapes'`` / ``'slide'`` windows end there and start ``crop`` before
    (``max(end - crop, 0)``): mmseg's ``h_grids = max(H - crop + stride - 1, 0) // stride + 1``
    windows are the same. ``'whole'`` is one window, the image."""
    if windows not in WINDOWS:
        raise ValueError(f'windows must be one of {WINDOWS}, got {windows!r}')
    if windows == 'whole':
        return (height, width), [(0, height, 0, width)]
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
    (``'official'``), or the averaged softmax (``'softmax'``); ``'mmseg'``: the logits (mmseg
    mirrors whole images, not windows: :func:`_predict_mmseg`)."""
    def mirrored():
        return swap_channels(_logits(model, image.flip(-1), align_corners), flip_pairs).flip(-1)

    logits = _logits(model, image, align_corners)
    if combine == 'mmseg':
        return logits
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


def model_protocol(model: nn.Module, protocol: Optional[str] = None) -> str:
    """``protocol`` or the model's (``pretrained_cfg['test_protocol']``, ``'official'`` if none), checked."""
    protocol = protocol or (getattr(model, 'pretrained_cfg', None) or {}).get('test_protocol') or 'official'
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got {protocol!r}')
    return protocol


def mmseg_test(model: nn.Module, dataset: Optional[str] = None) -> MMSegTest:
    """The :data:`MMSEG_TESTS` entry of ``dataset`` (default the model's ``pretrained_cfg['dataset']``)."""
    dataset = dataset or (getattr(model, 'pretrained_cfg', None) or {}).get('dataset')
    if dataset not in MMSEG_TESTS:
        raise ValueError(f'no mmseg test protocol for dataset {dataset!r}; known: {", ".join(MMSEG_TESTS)} '
                         '(pass test_scale= and windows= / crop_size= / stride= for another)')
    return MMSEG_TESTS[dataset]


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
def _predict_mmseg(model: nn.Module, image: torch.Tensor, scales: Sequence[float], flip: bool,
                   flip_pairs: Sequence[Tuple[int, int]], test: MMSegTest, windows: str,
                   crop_size: Optional[Tuple[int, int]], stride: Optional[Tuple[int, int]],
                   align_corners: bool) -> torch.Tensor:
    """mmseg's protocol (module docstring): softmax averaged over the views (ratios x flips)."""
    h, w = image.shape[-2:]
    crop = tuple(crop_size or test.crop_size or (h, w))
    total = None
    for r in scales:
        x = _resize(image, tuple(max(MIN_SIZE, v) for v in mmseg_size(h, w, test.scale, r)), False)
        for mirror in (False, True) if flip else (False,):
            view = x.flip(-1) if mirror else x
            if windows == 'whole':
                logits = _logits(model, view, align_corners)
            else:
                logits = sliding_window(model, view, crop, tuple(stride or test.stride or crop), windows='slide',
                                        combine='mmseg', align_corners=align_corners)
            if mirror:
                logits = swap_channels(logits, flip_pairs).flip(-1)
            p = _resize(logits, (h, w), align_corners).softmax(1)
            total = p if total is None else total + p
    return total / (len(scales) * (2 if flip else 1))


@torch.no_grad()
def predict(model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
            crop_size: Optional[Tuple[int, int]] = None, stride: Optional[Tuple[int, int]] = None,
            flip_pairs: Sequence[Tuple[int, int]] = (), combine: Optional[str] = None, windows: Optional[str] = None,
            base_size: Optional[int] = None, align_corners: Optional[bool] = None,
            resize_to: Optional[Tuple[int, int]] = None, protocol: Optional[str] = None,
            test_scale: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Class scores ``(N, C, H, W)`` at the input size, by the official protocol or mmseg's (module
    docstring); the argmax is the prediction.

    Args:
        image: a normalised batch ``(N, 3, H, W)``.
        scales: test scales (official ``TEST.SCALE_LIST``), relative to ``base_size``.
        flip: also run the mirrored image (``TEST.FLIP_TEST``); ``flip_pairs`` are left/right
            classes swapped in its prediction (the model's ``pretrained_cfg['flip_pairs']``).
        crop_size: window size (``TEST.IMAGE_SIZE`` as (H, W)); None: ``'base'`` runs whole images,
            ``'cityscapes'`` uses the input's size.
        stride: window step (default: the rule's).
        combine: ``'official'`` (``exp`` of the flip-averaged logits, windows averaged, scales
            summed: unnormalised scores) or ``'softmax'`` (probabilities averaged everywhere);
            default: the protocol's (``'mmseg'`` for mmseg's, the only one it takes).
        windows: ``'base'`` or ``'cityscapes'`` (default: the model's ``pretrained_cfg['test_windows']``,
            ``'cityscapes'`` for the Cityscapes models, else ``'base'``); mmseg's: ``'whole'`` or
            ``'slide'`` (default: the dataset's ``test_cfg`` mode).
        base_size: long side at scale 1 (``TEST.BASE_SIZE``; default the image's long side).
        align_corners: of every score resize (default: the model's, the official ``MODEL.ALIGN_CORNERS``).
        resize_to: (H, W) every image is resized to before inference, the scores resized back to
            the input size with ``align_corners`` (official LIP ``testval``: 473x473).
        protocol: ``'official'`` or ``'mmseg'`` (default: the model's ``pretrained_cfg['test_protocol']``,
            ``'mmseg'`` for the ``*_mmseg`` models, else ``'official'``). mmseg's takes the test of the
            model's dataset (:data:`MMSEG_TESTS`): ``test_scale`` (the ``Resize`` scale, (W, H)),
            ``windows``, ``crop_size`` and ``stride`` override it; ``scales`` are ratios of the scale.
    """
    if image.dim() != 4:
        raise ValueError(f'image must be a (N, 3, H, W) batch, got shape {tuple(image.shape)}')
    if model_protocol(model, protocol) == 'mmseg':
        if combine not in (None, 'mmseg') or base_size is not None or resize_to is not None:
            raise ValueError("protocol='mmseg' combines views as mmseg does and resizes to its test scale: "
                             'combine, base_size and resize_to belong to the official protocol')
        dataset = (getattr(model, 'pretrained_cfg', None) or {}).get('dataset')
        test = mmseg_test(model) if test_scale is None else dataclasses.replace(  # the scale only: mode, crop, stride stay
            MMSEG_TESTS.get(dataset, MMSegTest(tuple(test_scale))), scale=tuple(test_scale))
        windows = windows or ('slide' if crop_size else test.mode)
        if windows not in ('whole', 'slide'):
            raise ValueError(f"mmseg's windows are 'whole' or 'slide', got {windows!r}")
        _, align_corners = _options(model, 'mmseg', windows, align_corners)
        return _predict_mmseg(model, image, scales, flip, flip_pairs, test, windows, crop_size, stride,
                              align_corners)
    combine = combine or 'official'
    if combine == 'mmseg' or windows in ('whole', 'slide'):
        raise ValueError("combine='mmseg' and windows 'whole' / 'slide' are mmseg's protocol: pass protocol='mmseg'")
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
             all_reduce: bool = False, flip_pairs: Sequence[Tuple[int, int]] = (), combine: Optional[str] = None,
             windows: Optional[str] = None, base_size: Optional[int] = None,
             resize_to: Optional[Tuple[int, int]] = None, stride: Optional[Tuple[int, int]] = None,
             protocol: Optional[str] = None, test_scale: Optional[Tuple[int, int]] = None) -> Dict[str, float]:
    """mIoU over ``dataset`` (yielding normalised ``(image, mask)``) with :func:`predict`'s protocol
    (the official ``testval``, or mmseg's for its models: the argmax of the scores at the mask's size). The confusion matrix
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
                         resize_to=resize_to, protocol=protocol, test_scale=test_scale)
        cm.update(scores.argmax(1).cpu(), masks)
    if all_reduce:
        cm.all_reduce()
    model.train(was_training)
    return cm.compute()
