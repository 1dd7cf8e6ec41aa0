"""Paired image/mask transforms for training (paper Sec. 5.2: random scale in [0.5, 2.0], random
crop, horizontal flip) and normalisation, on ``torchvision.transforms.v2``: the pair travels as
``tv_tensors.Image`` / ``tv_tensors.Mask``, so v2 resizes the mask with nearest neighbours (labels
are never interpolated) and the image bilinearly. Each transform also takes a plain
``(image, mask)`` pair of tensors and returns plain tensors. Images are ``uint8``/float tensors
``(3, H, W)`` with values 0-255, masks integer tensors ``(H, W)``. Randomness comes from
``torch`` so DataLoader workers and ``torch.manual_seed`` control it."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .loss import IGNORE_INDEX

__all__ = ['PairTransform', 'Compose', 'RandomScale', 'RandomCrop', 'RandomHorizontalFlip', 'Normalize',
           'train_transforms', 'eval_transforms', 'check_pair']

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


class PairTransform(v2.Transform):
    """A v2 transform that also takes a plain ``(image, mask)`` pair: checked, wrapped as
    ``tv_tensors.Image`` / ``tv_tensors.Mask``, transformed, and returned as plain tensors."""

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) == 2 and not any(isinstance(t, tv_tensors.TVTensor) for t in inputs):
            check_pair(*inputs)
            out = super().forward(tv_tensors.Image(inputs[0]), tv_tensors.Mask(inputs[1]))
            return tuple(t.as_subclass(torch.Tensor) for t in out)
        return super().forward(*inputs)


class Compose(PairTransform, v2.Compose):
    """``v2.Compose`` over an image/mask pair."""

    def __init__(self, transforms: Sequence[Callable]):
        super().__init__(list(transforms))


class RandomScale(PairTransform):
    """Resize by a factor drawn uniformly from ``scale_range``; with ``base_size`` the long side
    becomes ``base_size * factor`` (the official ``multi_scale_aug``), else the image's own size.
    The image becomes float (bilinear, no antialiasing, as the official ``cv2.resize``)."""

    def __init__(self, scale_range: Tuple[float, float] = (0.5, 2.0), base_size: Optional[int] = None):
        super().__init__()
        self.scale_range = scale_range
        self.base_size = base_size

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        lo, hi = self.scale_range
        s = lo + (hi - lo) * float(torch.rand(()))
        h, w = TF.get_size(flat_inputs[0])
        if self.base_size:
            s = self.base_size * s / max(h, w)
        return {'size': [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image) and not inpt.is_floating_point():
            inpt = inpt.to(torch.float32)
        return TF.resize(inpt, params['size'], interpolation=v2.InterpolationMode.BILINEAR, antialias=False)


class RandomCrop(PairTransform):
    """Pad (image with 0, mask with the ignore index) at the bottom / right up to ``size`` and
    crop a random window. Hand-written around ``v2.functional.pad`` / ``crop`` because
    ``v2.RandomCrop(pad_if_needed=True)`` pads both sides by the whole shortfall."""

    def __init__(self, size: Tuple[int, int], ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.size = tuple(size)
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        ch, cw = self.size
        h, w = TF.get_size(flat_inputs[0])
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        y = int(torch.randint(0, h + ph - ch + 1, ()))
        x = int(torch.randint(0, w + pw - cw + 1, ()))
        return {'pad': [0, 0, pw, ph], 'top': y, 'left': x}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if any(params['pad']):
            fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else 0
            inpt = TF.pad(inpt, params['pad'], fill=fill)
        return TF.crop(inpt, params['top'], params['left'], *self.size)


class RandomHorizontalFlip(PairTransform, v2.RandomHorizontalFlip):
    """``v2.RandomHorizontalFlip`` over an image/mask pair; the classes of ``flip_pairs`` (LIP's
    left/right arms, legs, shoes: the official ``lip.py``) exchange labels in a flipped mask."""

    def __init__(self, p: float = 0.5, flip_pairs: Sequence[Tuple[int, int]] = ()):
        super().__init__(p)
        self.flip_pairs = tuple((int(a), int(b)) for a, b in flip_pairs)

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        out = super().transform(inpt, params)
        if self.flip_pairs and isinstance(out, tv_tensors.Mask):
            swapped = out.clone()
            for a, b in self.flip_pairs:
                swapped[out == a], swapped[out == b] = b, a
            out = swapped
        return out


class Normalize(PairTransform):
    """0-255 image -> float ``(x / 255 - mean) / std`` (``v2.functional.normalize``); the mask
    becomes ``int64``. Hand-written scaling: ``v2.ToDtype(scale=True)`` rescales only integer
    images, and images here are 0-255 in any dtype (float after :class:`RandomScale`)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD):
        super().__init__()
        self.mean, self.std = list(mean), list(std)

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return inpt.to(torch.int64)
        return tv_tensors.wrap(TF.normalize(inpt.to(torch.float32) / 255.0, self.mean, self.std), like=inpt)


def train_transforms(crop_size: Tuple[int, int], scale_range: Tuple[float, float] = (0.5, 2.0),
                     base_size: Optional[int] = None, ignore_index: int = IGNORE_INDEX,
                     flip: bool = True, flip_pairs: Sequence[Tuple[int, int]] = ()) -> Compose:
    """The paper's training augmentation: random scale, crop, flip (swapping the labels of
    ``flip_pairs``), then normalisation."""
    ts: List = [RandomScale(scale_range, base_size), RandomCrop(crop_size, ignore_index)]
    if flip:
        ts.append(RandomHorizontalFlip(flip_pairs=flip_pairs))
    return Compose(ts + [Normalize()])


def eval_transforms() -> Compose:
    """Evaluation: normalisation only (whole image; see :mod:`.evaluate` for sliding windows)."""
    return Compose([Normalize()])
