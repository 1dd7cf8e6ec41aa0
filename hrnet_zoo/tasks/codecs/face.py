"""The official face geometry of HRNet-Facial-Landmark-Detection (``lib/utils/transforms.py``
``get_transform`` / ``transform_pixel`` / ``crop``, ``lib/core/evaluation.py`` ``decode_preds``),
written again with NumPy and torchvision: the pieces the ``'face'`` codecs put together.

The official map of an image point to an output of ``W x H`` pixels around ``center`` (face size
``h = 200 * scale``) is ``T(x) = W * (x - cx) / h + W / 2`` (likewise y, then a rotation about the
output centre), applied 1-based: :func:`transform_pixel` subtracts 1, maps and ends in
``astype(int) + 1`` (truncation). So

* the crop takes the integer image box ``ul = transform_pixel((0, 0), invert)``, ``br =
  transform_pixel((W, H), invert)`` (``[ul, br)``, zeros outside the image) and resizes it to the
  output; a face of ``h = 200`` px centred at x = 300 gives the box 200 .. 399 and the centre lands
  on crop pixel ``(300 - 200 + 0.5) * 256 / 200 - 0.5 = 128.14`` of 256 (``128.5 - 128 / h`` for
  any large face), not on 127.5 (the UDP crop) or 128 (the MSRA crop);
* a landmark's target is the Gaussian at heatmap pixel ``int(T(x))`` (``transform_pixel(pts + 1) -
  1`` at the heatmap size), and ``decode_preds`` maps heatmap pixel ``u`` (0-based, after the
  quarter offset) back to ``int(T^-1(u + 0.5)) + 1``: the bin centre, cast as published
  (on average ``T^-1(u + 0.5) + 0.5``); without the cast ``T^-1(u + 0.5)`` inverts the encoding
  without bias.

``scipy.misc.imresize`` (removed from SciPy 1.3) is ``toimage`` + PIL bilinear resize: the float
crop is first stretched to the full 0..255 range (``bytescale``: min -> 0, max -> 255 over all
channels), then resized with PIL's antialiasing bilinear filter; here the stretch is
:func:`bytescale` on 0..1 values and the resize torchvision's ``resize(antialias=True)`` (PIL's
filter), equal up to uint8 rounding.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = ['face_transform', 'transform_pixel', 'crop_window', 'crop_matrix', 'face_crop', 'bytescale',
           'heatmap_coordinates', 'back_project']

PIXEL_STD = 200.0


def _sizes(scale) -> np.ndarray:
    """Face size (x, y) in pixels from a scalar scale (official) or a (2,) scale."""
    return np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1)[:2], (2,)) * PIXEL_STD


def face_transform(center, scale, output_size: Tuple[int, int], rot: float = 0.0) -> np.ndarray:
    """The official ``get_transform`` (3x3): image -> an output of ``output_size`` (H, W) pixels,
    ``x -> W * (x - cx) / h + W / 2`` with ``h = 200 * scale``, then ``-rot`` degrees about the
    output centre (``rot`` > 0 turns the content counter-clockwise on screen, as the crop's
    ``imrotate``)."""
    out_h, out_w = output_size
    hx, hy = _sizes(scale)
    cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64).reshape(-1)[:2])
    t = np.array([[out_w / hx, 0.0, out_w * (-cx / hx + 0.5)],
                  [0.0, out_h / hy, out_h * (-cy / hy + 0.5)],
                  [0.0, 0.0, 1.0]])
    if rot != 0:
        a = math.radians(-rot)
        rot_mat = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        shift = np.eye(3)
        shift[:2, 2] = [-out_w / 2, -out_h / 2]
        back = np.eye(3)
        back[:2, 2] = [out_w / 2, out_h / 2]
        t = back @ rot_mat @ shift @ t
    return t


def _apply(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ t[:2, :2].T + t[:2, 2]


def transform_pixel(points, center, scale, output_size: Tuple[int, int], invert: bool = False,
                    rot: float = 0.0) -> np.ndarray:
    """The official ``transform_pixel`` for points (..., 2), 1-based in and out: ``int(T(p - 1))
    + 1`` (``T^-1`` with ``invert``), ``int`` truncating towards zero as ``astype(int)``."""
    t = face_transform(center, scale, output_size, rot)
    if invert:
        t = np.linalg.inv(t)
    return np.trunc(_apply(np.asarray(points, dtype=np.float64) - 1, t)).astype(np.int64) + 1


def crop_window(center, scale, output_size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The integer image box ``[ul, br)`` (x, y) the official ``crop`` cuts out before resizing."""
    out_h, out_w = output_size
    ul = transform_pixel([0, 0], center, scale, output_size, invert=True)
    br = transform_pixel([out_w, out_h], center, scale, output_size, invert=True)
    return ul, br


def _prescale(center, scale, output_size: Tuple[int, int], image_size: Tuple[int, int]):
    """The official "preprocessing for efficient cropping": a face more than twice the output
    (``sf = 200 * scale / H >= 2``) is cropped from the image resized to ``floor(size / sf)``,
    with the centre and scale divided by ``sf``. Returns ``(new image size or None, center, scale)``."""
    sf = float(_sizes(scale)[1]) / output_size[0]
    if sf < 2:
        return None, center, scale
    ht, wd = image_size
    if math.floor(max(ht, wd) / sf) < 2:
        return (0, 0), center, scale
    return ((math.floor(ht / sf), math.floor(wd / sf)), np.asarray(center, dtype=np.float64) / sf,
            np.asarray(scale, dtype=np.float64) / sf)


def crop_matrix(center, scale, rot: float, output_size: Tuple[int, int],
                image_size: Optional[Tuple[int, int]] = None, inverse: bool = False) -> np.ndarray:
    """The 2x3 map image -> crop of :func:`face_crop` (``inverse``: crop -> image), pixel centres
    at integer coordinates: the box ``[ul, br)`` of ``n`` pixels resized to ``W`` puts image
    ``x`` on crop ``(x - ul + 0.5) * W / n - 0.5``; the official rotation (about the padded box's
    centre) and pre-scaling of faces over twice the output size included (exact with the
    ``image_size`` (H, W), else taken as a resize by ``1 / sf``)."""
    out_h, out_w = output_size
    m = np.eye(3)
    sf = float(_sizes(scale)[1]) / out_h
    new_size, center, scale = _prescale(center, scale, output_size, image_size or (1 << 20, 1 << 20))
    if new_size is not None:  # PIL resize of the whole image
        s = (np.array([new_size[1] / image_size[1], new_size[0] / image_size[0]]) if image_size
             else np.array([1 / sf, 1 / sf]))
        m = np.array([[s[0], 0, 0.5 * s[0] - 0.5], [0, s[1], 0.5 * s[1] - 0.5], [0, 0, 1]]) @ m
    ul, br = crop_window(center, scale, output_size)
    n = (br - ul).astype(np.float64)
    pad = _rotation_pad(ul, br) if rot else 0
    if rot:
        side = n + 2 * pad
        c = (side - 1) / 2  # the padded box's centre, in its own pixel coordinates
        a = math.radians(rot)
        lin = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        to_box = np.array([[1, 0, pad - ul[0]], [0, 1, pad - ul[1]], [0, 0, 1]], dtype=np.float64)
        turn = np.eye(3)
        turn[:2, :2], turn[:2, 2] = lin, c - lin @ c - pad
        m = turn @ to_box @ m
    else:
        m = np.array([[1, 0, -ul[0]], [0, 1, -ul[1]], [0, 0, 1]], dtype=np.float64) @ m
    k = np.array([out_w, out_h]) / n
    m = np.array([[k[0], 0, 0.5 * k[0] - 0.5], [0, k[1], 0.5 * k[1] - 0.5], [0, 0, 1]]) @ m
    return (np.linalg.inv(m) if inverse else m)[:2]


def _rotation_pad(ul: np.ndarray, br: np.ndarray) -> int:
    """The official padding of a rotated crop: ``int(|br - ul| / 2 - (br_y - ul_y) / 2)``."""
    return int(np.linalg.norm(br - ul) / 2 - float(br[1] - ul[1]) / 2)


def bytescale(image: torch.Tensor) -> torch.Tensor:
    """``scipy.misc.bytescale`` on 0..1 values: the minimum -> 0, the maximum -> 1 (all channels
    together); a constant image -> 0."""
    lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo) if hi > lo else torch.zeros_like(image)


def face_crop(image: torch.Tensor, center, scale, output_size: Tuple[int, int], rot: float = 0.0) -> torch.Tensor:
    """The official face crop of ``image`` (C, H, W float in [0, 1]) -> (C, *output_size): the
    integer box of :func:`crop_window` (zeros outside the image), stretched by :func:`bytescale`,
    rotated by ``rot`` degrees about its centre when asked (the official pads the box first and cuts
    the padding off after ``imrotate``), resized with PIL's antialiasing bilinear filter."""
    out_h, out_w = output_size
    new_size, center, scale = _prescale(center, scale, output_size, tuple(image.shape[-2:]))
    if new_size is not None:
        if min(new_size) < 2:
            return image.new_zeros(image.shape[0], out_h, out_w)
        image = TF.resize(bytescale(image), list(new_size), InterpolationMode.BILINEAR, antialias=True)
    ul, br = crop_window(center, scale, output_size)
    pad = _rotation_pad(ul, br) if rot else 0
    ul, br = ul - pad, br + pad
    if (br <= ul).any():
        raise ValueError(f'face crop of scale {scale} is smaller than one pixel; check the face box / scale')
    h, w = image.shape[-2:]
    region = image.new_zeros(image.shape[0], int(br[1] - ul[1]), int(br[0] - ul[0]))
    x0, y0, x1, y1 = max(0, ul[0]), max(0, ul[1]), min(w, br[0]), min(h, br[1])
    if x1 > x0 and y1 > y0:
        region[:, y0 - ul[1]:y1 - ul[1], x0 - ul[0]:x1 - ul[0]] = image[:, y0:y1, x0:x1]
    region = bytescale(region)
    if rot and pad > 0:
        region = TF.rotate(region, rot, InterpolationMode.BILINEAR)[:, pad:-pad, pad:-pad]
    return TF.resize(region, [out_h, out_w], InterpolationMode.BILINEAR, antialias=True)


def heatmap_coordinates(points: np.ndarray, center, scale, heatmap_size: Tuple[int, int],
                        rot: float = 0.0) -> np.ndarray:
    """Landmarks (L, 2) in image pixels (0-based) -> the heatmap pixels (0-based integers) their
    official targets are centred on: ``transform_pixel(pts + 1, ..., rot) - 1`` = ``int(T(x))``."""
    return (transform_pixel(np.asarray(points, dtype=np.float64) + 1, center, scale, heatmap_size, rot=rot) - 1
            ).astype(np.float64)


def back_project(coords: np.ndarray, centers, scales, heatmap_size: Tuple[int, int],
                 rotations: Optional[Sequence[float]] = None, integer_cast: bool = True) -> np.ndarray:
    """Heatmap coordinates (N, L, 2), 0-based (after the quarter offset) -> image pixels: the
    official ``decode_preds`` tail, ``coords += 0.5`` on the 1-based coordinates then
    ``transform_pixel(..., invert=1)``: ``int(T^-1(u + 0.5)) + 1`` (``integer_cast``, as published)
    or ``T^-1(u + 0.5)`` (the bin centre, without the cast's +0.5 px bias on average)."""
    coords = np.asarray(coords, dtype=np.float64)
    out = np.empty_like(coords)
    for i in range(coords.shape[0]):
        rot = 0.0 if rotations is None else float(rotations[i])
        inv = np.linalg.inv(face_transform(centers[i], scales[i], heatmap_size, rot))
        y = _apply(coords[i] + 0.5, inv)
        out[i] = np.trunc(y) + 1 if integer_cast else y
    return out
