"""Geometry of top-down keypoint estimation: person box -> centre/scale, the affine crop (with
scale / rotation augmentation), horizontal flips with flip pairs, and back-projection. These are
the pieces the heatmap codecs (:mod:`hrnet_zoo.tasks.codecs`) put together; a codec chooses the
pixel convention of the crop.

Pixel ``i`` of an image, crop or heatmap has its centre at coordinate ``i`` (COCO keypoints are
used as such; ``cv2.warpAffine`` samples the same way). A crop of ``scale * pixel_std`` image
pixels around ``center`` is mapped onto an output ``W`` pixels wide, the centre landing on

- ``'msra'`` (the official deep-high-resolution-net.pytorch ``get_affine_transform``): ``(W/2,
  H/2)``; a crop 192 wide puts the box centre on x = 96. Image -> heatmap is the same map built for
  the heatmap size (``transform_preds``), so heatmap ``u`` is crop ``4u``, and flipping a crop does
  not map its heatmap array onto itself: the official flip test shifts the flipped-back heatmaps
  by one pixel (``SHIFT_HEATMAP``).
- ``'udp'`` (unbiased data processing, Huang et al., "The Devil is in the Details", CVPR 2020):
  ``((W-1)/2, (H-1)/2)``, the output's full extent ``[-0.5, W - 0.5]``; crop x = 95.5 for 192.
  Heatmap ``u`` is crop ``4u + 1.5`` and flipping a crop (``x -> W - 1 - x``) flips its heatmap
  array exactly (``u -> W/4 - 1 - u``): the flip test needs no shift. The default of every function
  here (the convention of hrnet_zoo before codecs existed).

``scale`` is in units of ``pixel_std`` = 200 px, as in the official code (``lib/dataset/coco.py``:
box -> centre/scale, aspect ratio of the input, 1.25 padding).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.transforms.v2 import functional as TF

PIXEL_STD = 200.0
BOX_PADDING = 1.25
# the box centre lands on ((W - d) / 2, (H - d) / 2) of a W x H crop, d by convention (see above)
CROP_CONVENTIONS = {'msra': 0.0, 'udp': 1.0}


def box_to_center_scale(box: Sequence[float], aspect_ratio: float, padding: float = BOX_PADDING,
                        pixel_std: float = PIXEL_STD, allow_line: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """COCO box ``[x, y, w, h]`` -> (centre (2,), scale (2,) in ``pixel_std`` units).

    The centre is ``(x + w/2, y + h/2)``; the box is grown to ``aspect_ratio = width / height`` of
    the network input (0.75 for 256x192) about it, then padded by ``padding`` (1.25), as the
    official ``COCODataset._xywh2cs``. ``allow_line``: a box of zero width or height (one the
    official cleaning :func:`sanitize_box` keeps) grows from its other side, as the official code.
    """
    x, y, w, h = (float(v) for v in box[:4])
    if w < 0 or h < 0 or (w == 0 and h == 0) or (not allow_line and (w == 0 or h == 0)):
        raise ValueError(f'box {list(box)} has no area; expected [x, y, w, h] with w, h > 0')
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    scale = np.array([w, h], dtype=np.float32) / pixel_std * padding
    return center, scale


def clip_box(box: Sequence[float], width: int, height: int):
    """Clip a COCO box ``[x, y, w, h]`` to the image ``[0, width-1] x [0, height-1]``.

    Returns the clipped box, or ``None`` when nothing of it lies inside the image (documented
    behaviour: such boxes are skipped by :class:`~hrnet_zoo.tasks.pose.data.COCOKeypoints`).
    """
    x, y, w, h = (float(v) for v in box[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x + max(0.0, w)), min(height - 1.0, y + max(0.0, h))
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


def sanitize_box(box: Sequence[float], width: int, height: int, area: float = 1.0):
    """The official ground-truth box cleaning (deep-high-resolution-net.pytorch
    ``COCODataset._load_coco_keypoint_annotation_kernal``, "sanitize bboxes"): ``x1 = max(0, x)``,
    ``x2 = min(W - 1, x1 + max(0, w - 1))`` (likewise y), kept when the annotation's ``area > 0``
    and ``x2 >= x1``, ``y2 >= y1``. E.g. ``[10, 20, 80, 100]`` in a 640x480 image ->
    ``[10, 20, 79, 99]``. Returns ``[x1, y1, x2 - x1, y2 - y1]`` or ``None``."""
    x, y, w, h = (float(v) for v in box[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1)), min(height - 1.0, y1 + max(0.0, h - 1))
    if not (area > 0 and x2 >= x1 and y2 >= y1):
        return None
    return [x1, y1, x2 - x1, y2 - y1]


def affine_matrix(center, scale, rot: float, output_size: Tuple[int, int],
                  pixel_std: float = PIXEL_STD, inverse: bool = False, convention: str = 'udp') -> np.ndarray:
    """The 2x3 matrix taking image coordinates to crop coordinates (``inverse``: crop -> image).

    ``output_size`` is ``(height, width)``. The crop is ``scale[0] * pixel_std`` image pixels wide
    (the height follows from the output's aspect ratio) around ``center``, rotated by ``rot``
    degrees (positive: the crop's content turns counter-clockwise on screen, as the official
    ``get_affine_transform``), the centre landing on ``(W/2, H/2)`` (``convention='msra'``: the
    official three-point ``cv2.getAffineTransform``, same matrix) or ``((W-1)/2, (H-1)/2)``
    (``'udp'``). Built for the heatmap size it is the official ``transform_preds`` map (msra).
    """
    if convention not in CROP_CONVENTIONS:
        raise ValueError(f'unknown crop convention {convention!r}; choose one of {sorted(CROP_CONVENTIONS)}')
    out_h, out_w = output_size
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))
    s = out_w / (scale[0] * pixel_std)
    a = math.radians(rot)
    cos, sin = math.cos(a), math.sin(a)
    lin = s * np.array([[cos, sin], [-sin, cos]])
    c = np.asarray(center, dtype=np.float64)
    c_out = (np.array([out_w, out_h], dtype=np.float64) - CROP_CONVENTIONS[convention]) / 2.0
    m = np.concatenate([lin, (c_out - lin @ c)[:, None]], axis=1)
    if inverse:
        inv = np.linalg.inv(lin)
        m = np.concatenate([inv, (c - inv @ c_out)[:, None]], axis=1)
    return m


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to ``points`` (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: torch.Tensor, matrix: np.ndarray, output_size: Tuple[int, int]) -> torch.Tensor:
    """Crop ``image`` (C, H, W float) with the image -> crop ``matrix`` by bilinear sampling;
    outside the image is zero. Returns (C, out_h, out_w). Hand-written because
    ``torchvision.transforms.v2.functional.affine`` keeps the input's size and its own centre
    convention, while a top-down crop maps a box onto an output of another size."""
    c, h, w = image.shape
    out_h, out_w = output_size
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    ys, xs = np.meshgrid(np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64),
                         indexing='ij')
    src = apply_affine(np.stack([xs, ys], axis=-1), inv)
    # grid_sample(align_corners=False): -1 and 1 are the outer edges, pixel i's centre is (2i+1)/n-1.
    gx = (2 * src[..., 0] + 1) / w - 1
    gy = (2 * src[..., 1] + 1) / h - 1
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)).to(image.dtype)[None]
    return F.grid_sample(image[None], grid, mode='bilinear', padding_mode='zeros', align_corners=False)[0]


def flip_keypoints(keypoints: np.ndarray, width: float, flip_pairs: Sequence[Tuple[int, int]]) -> np.ndarray:
    """Mirror keypoints (K, >=2) of an image/crop ``width`` px wide (``x -> width - 1 - x``, the
    official pose ``fliplr_joints``) and swap the left/right pairs."""
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    for a, b in flip_pairs:
        out[[a, b]] = out[[b, a]]
    return out


def check_flip_pairs(flip_pairs: Sequence[Tuple[int, int]], num_keypoints: int) -> None:
    """Raise a clear error when a flip pair names a keypoint outside ``range(num_keypoints)``."""
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f'flip pair ({a}, {b}) is out of range for {num_keypoints} keypoints')


def load_image(path: str) -> torch.Tensor:
    """An RGB image as a float tensor (3, H, W) in [0, 1]."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert('RGB'), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def normalize(image: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a (3, H, W) tensor in [0, 1]."""
    return TF.normalize(image, list(IMAGENET_DEFAULT_MEAN), list(IMAGENET_DEFAULT_STD))


def crop_box(image: torch.Tensor, box: Sequence[float], output_size: Tuple[int, int],
             padding: float = BOX_PADDING, convention: str = 'udp') -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The top-down crop of ``box`` [x, y, w, h] from ``image`` (C, H, W float): the box grown to
    the output's aspect ratio and padded (:func:`box_to_center_scale`), warped to ``output_size``
    (H, W) under the crop ``convention``. Returns ``(crop, center, scale)``; a codec's
    :meth:`~hrnet_zoo.tasks.codecs.HeatmapCodec.crop_box` does the same under its convention."""
    center, scale = box_to_center_scale(box, output_size[1] / output_size[0], padding)
    matrix = affine_matrix(center, scale, 0.0, output_size, convention=convention)
    return warp_image(image, matrix, output_size), center, scale
