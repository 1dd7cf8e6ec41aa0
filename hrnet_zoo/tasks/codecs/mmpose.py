"""mmpose's heatmap conventions where they differ from the official code: the pieces the ``mmpose_*``
(mmpose 1.x) and ``mmpose0x_*`` (mmpose 0.x) codecs put together. Read from open-mmlab/mmpose
main @ 759b39c (1.x: ``mmpose/codecs/{msra,udp}_heatmap.py``, ``codecs/utils/{gaussian_heatmap,
refinement,post_processing}.py``, ``structures/bbox/transforms.py``, ``models/utils/tta.py``) and
0.x @ 3b81734 (``mmpose/core/evaluation/top_down_eval.py`` ``keypoints_from_heatmaps``,
``post_dark_udp``; ``core/post_processing/post_transforms.py`` ``get_warp_matrix``;
``datasets/pipelines/top_down_transform.py`` ``TopDownGenerateTarget``). What is the same as the
official code (the three-point crop of ``MSRAHeatmap``, its rounded targets, DARK's Taylor step,
the flip test) stays with the shared pieces of :mod:`hrnet_zoo.tasks.heatmap` / ``topdown``.

* **UDP crop** (:func:`udp_matrix`, 1.x ``get_udp_warp_matrix`` = 0.x ``get_warp_matrix(r, 2c,
  size - 1, s * 200)``): the box of ``S = 200 * scale`` pixels maps onto ``W - 1`` crop pixels
  (x scale ``(W - 1) / S_w``, y scale ``(H - 1) / S_h``), its centre on ``((W-1)/2, (H-1)/2)``;
  crop pixel ``x`` is heatmap ``x * (w - 1) / (W - 1)`` (``UDPHeatmap.scale_factor``); heatmap
  ``u`` decodes to image ``c + (u / (w - 1) - 0.5) * S``. For a 192-wide crop of a 150-px box the
  scale is ``191 / 150``, not ``192 / 150`` as in hrnet_zoo's own ``'udp'`` convention, so the two
  differ by up to half a heatmap pixel at the box edges. The rotation turns the other way than the
  three-point crop's (``[[cos, -sin], [sin, cos]]``), as mmpose's matrix does.
* **UDP targets** (:func:`udp_heatmaps`, ``generate_udp_gaussian_heatmaps`` / 0.x
  ``_udp_generate_target``): the 13 x 13 window (sigma 2) of the rounded centre ``int(u + 0.5)``,
  the Gaussian at the exact ``u``; weight 0 when the window misses the map.
* **MSRA refinement of 1.x** (:func:`quarter_offset_per_axis`, ``refine_keypoints``): each axis on
  its own: x moves by 0.25 when ``1 < x < w - 1`` and ``0 < y < h``, y when ``1 < y < h - 1`` and
  ``0 < x < w``; the official code (and 0.x ``post_process='default'``) moves both or neither.
* **DARK-UDP refinement** (:func:`dark_udp_refine`, 1.x ``refine_keypoints_dark_udp``, 0.x
  ``post_dark_udp``): blur, ``log(clip(h, 1e-3, 50))``, edge padding by one pixel, the Newton step
  with the Hessian of adjacent differences (``dxx = L[x+1] - 2 L[x] + L[x-1]``, ``dxy`` from
  ``(x+1, y+1)`` and ``(x-1, y-1)``) plus ``eps(float32) * I``, at every maximum (no border rule).
  1.x blurs as DARK (``gaussian_blur``: zero border, maximum kept), 0.x in place with
  ``cv2.GaussianBlur`` (mirrored border ``BORDER_REFLECT_101``, maximum not kept): both are
  :func:`gaussian_blur_cv2`. The padded maps are read through flat indices, so a
  heatmap with no positive value (its maximum at (-1, -1)) reads a neighbour map, as mmpose does:
  the maps of one instance (1.x) or of the whole batch (0.x).
* **Combined targets** (``UDPHeatmap(heatmap_type='combined')``, 0.x ``target_type=
  'CombinedTarget'``, the ``udp_regress`` models): three maps per keypoint, a disc of radius
  ``0.0546875 * max(w, h)`` and the x / y offsets to the keypoint divided by that radius;
  :func:`combined_decode` blurs the disc maps (``2k + 1`` taps; 0.x also the offset maps, with
  ``k``), takes the argmax and adds the offsets there (radius ``0.0546875 * h``
  in 0.x). :func:`combined_flip_back` mirrors, swaps and negates the x offsets (``flip_mode=
  'udp_combined'``).
* A heatmap whose maximum is not positive decodes at (-1, -1) (``get_heatmap_maximum``, 0.x
  ``_get_max_preds``), the official code at (0, 0).
* Ground-truth boxes (training crops, evaluation on ground-truth boxes): 1.x clips ``x1 = clip(x,
  0, W-1)``, ``x2 = clip(x + w, 0, W-1)`` (``BaseCocoStyleDataset.parse_data_info``: the
  ``'clip'`` cleaning); the 0.x files (2020-2021, before mmpose #1367) were trained with the
  official ``x2 = min(W - 1, x1 + max(0, w - 1))``, kept only when ``x2 > x1`` and ``y2 > y1``
  (strict, :func:`sanitize_box_strict`), and 0.x hand datasets take the box as given.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..heatmap import _gather, flip_back, gaussian_heatmaps, get_max_preds
from ..topdown import PIXEL_STD, sanitize_box

__all__ = ['RADIUS_FACTOR', 'udp_matrix', 'udp_heatmaps', 'quarter_offset_per_axis', 'gaussian_blur_cv2',
           'dark_udp_refine', 'combined_flip_back', 'combined_decode', 'sanitize_box_strict', 'GENERATIONS']

GENERATIONS = ('1.x', '0.x')
RADIUS_FACTOR = 0.0546875  # UDPHeatmap(radius_factor=...), 0.x valid_radius_factor: 3.5 px of a 64-px map


def udp_matrix(center, scale, rot: float, output_size: Tuple[int, int], inverse: bool = False) -> np.ndarray:
    """mmpose's UDP crop (``get_udp_warp_matrix``): image -> an output of ``output_size`` (H, W),
    the box of ``200 * scale`` pixels onto ``W - 1`` / ``H - 1`` output pixels, its centre on
    ``((W-1)/2, (H-1)/2)``, rotated by ``[[cos, -sin], [sin, cos]]``; ``inverse``: output -> image.
    E.g. centre (55, 80), box 112.5 x 150 px, output 256 x 192: x' = 191 / 112.5 (x - 55) + 95.5."""
    out_h, out_w = output_size
    size = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1)[:2], (2,)) * PIXEL_STD
    sx, sy = (out_w - 1) / size[0], (out_h - 1) / size[1]
    a = math.radians(rot)
    lin = np.array([[math.cos(a) * sx, -math.sin(a) * sx], [math.sin(a) * sy, math.cos(a) * sy]])
    c = np.asarray(center, dtype=np.float64).reshape(-1)[:2]
    c_out = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    if inverse:
        inv = np.linalg.inv(lin)
        return np.concatenate([inv, (c - inv @ c_out)[:, None]], axis=1)
    return np.concatenate([lin, (c_out - lin @ c)[:, None]], axis=1)


def udp_heatmaps(keypoints: np.ndarray, visible: np.ndarray, heatmap_size: Tuple[int, int], sigma: float = 2.0,
                 joint_weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """UDP Gaussian targets (``generate_udp_gaussian_heatmaps``) of keypoints (K, 2) in heatmap
    pixels: :func:`~hrnet_zoo.tasks.heatmap.gaussian_heatmaps` with ``window='udp'`` (the 13-pixel
    window of ``int(u + 0.5)`` for sigma 2, the Gaussian at ``u``; weight 0 for flags < 0.5)."""
    return gaussian_heatmaps(keypoints, visible, heatmap_size, sigma, joint_weights=joint_weights, window='udp')


def quarter_offset_per_axis(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """mmpose 1.x ``refine_keypoints``: x moves 0.25 towards the higher of its two neighbours when
    ``1 < x < w - 1`` and ``0 < y < h``; y likewise when ``1 < y < h - 1`` and ``0 < x < w`` (each
    axis on its own; the sign of the difference, none on a tie). A maximum at column 1 of row 5
    thus still moves along y, where the official rule moves neither."""
    n, k, h, w = heatmaps.shape
    px, py = coords[..., 0].long(), coords[..., 1].long()
    okx = (px > 1) & (px < w - 1) & (py > 0) & (py < h)
    oky = (py > 1) & (py < h - 1) & (px > 0) & (px < w)
    if w >= 3:
        xc, yr = px.clamp(1, w - 2), py.clamp(0, h - 1)
        dx = _gather(heatmaps, yr, xc + 1) - _gather(heatmaps, yr, xc - 1)
    else:
        dx = torch.zeros_like(coords[..., 0])
    if h >= 3:
        yc, xr = py.clamp(1, h - 2), px.clamp(0, w - 1)
        dy = _gather(heatmaps, yc + 1, xr) - _gather(heatmaps, yc - 1, xr)
    else:
        dy = torch.zeros_like(coords[..., 1])
    shift = torch.stack([dx.sign() * okx, dy.sign() * oky], dim=-1).to(coords.dtype) * 0.25
    return coords + shift


def _gaussian_kernel(kernel: int, dtype: torch.dtype, device) -> torch.Tensor:
    """OpenCV's Gaussian for ``sigma=0`` and an odd size >= 9 (``getGaussianKernel``): sigma
    ``0.3 * ((kernel - 1) * 0.5 - 1) + 0.8`` (2.0 for 11 taps, 2.9 for 17), normalised."""
    if kernel % 2 != 1 or kernel < 9:
        raise ValueError(f'blur kernel must be odd and >= 9 (OpenCV tabulates smaller ones), got {kernel}')
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    t = torch.arange(kernel, dtype=torch.float64, device=device) - (kernel - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def gaussian_blur_cv2(heatmaps: torch.Tensor, kernel: int, border: str = 'reflect',
                      keep_max: bool = False) -> torch.Tensor:
    """``cv2.GaussianBlur(h, (kernel, kernel), 0)`` of each map of (N, K, H, W), separable, with
    the border ``'reflect'`` (OpenCV's default ``BORDER_REFLECT_101``, torch's ``'reflect'``: 0.x
    ``post_dark_udp``, the combined decode) or ``'zeros'`` (mmpose's ``gaussian_blur`` pads the map
    with ``(kernel - 1) / 2`` zeros first); ``keep_max`` rescales each map by ``max(before) /
    max(after)`` as ``gaussian_blur`` does (a map with no positive value stays negative, unlike
    :func:`~hrnet_zoo.tasks.heatmap.gaussian_blur`, whose rescale clamps the divisor)."""
    n, k, h, w = heatmaps.shape
    r = kernel // 2
    if border == 'reflect' and (r >= h or r >= w):
        raise ValueError(f'a {kernel}-tap blur needs heatmaps larger than {r} px, got {h} x {w}')
    g = _gaussian_kernel(kernel, heatmaps.dtype, heatmaps.device)
    mode = {'reflect': 'reflect', 'zeros': 'constant'}[border]
    x = heatmaps.reshape(n * k, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), g.view(1, 1, -1, 1)).reshape(n, k, h, w)
    if keep_max:
        x = x * (heatmaps.flatten(2).amax(-1) / x.flatten(2).amax(-1))[..., None, None]
    return x


def _flat_reader(maps: torch.Tensor, per_instance: bool):
    """A reader of ``maps`` (N, K, H, W) at flat indices, numpy's negative indices wrapping to the
    end: over one instance's K maps (``per_instance``) or over the whole batch."""
    n, k = maps.shape[:2]
    flat = maps.reshape(n, -1) if per_instance else maps.reshape(1, -1).expand(n, -1)
    size = flat.shape[1]

    def read(index: torch.Tensor) -> torch.Tensor:  # index (N, K) -> values (N, K)
        return flat.gather(1, torch.remainder(index, size))
    return read


def dark_udp_refine(heatmaps: torch.Tensor, coords: torch.Tensor, blur_kernel: int = 11,
                    generation: str = '1.x') -> torch.Tensor:
    """DARK-UDP refinement (1.x ``refine_keypoints_dark_udp``, 0.x ``post_dark_udp``) of integer
    maxima ``coords`` (N, K, 2) of ``heatmaps`` (N, K, H, W): blurred (:func:`gaussian_blur_cv2`,
    1.x zero border and maximum kept, 0.x mirrored border), ``L =
    log(clip(h, 1e-3, 50))`` padded by its edge, then ``coords -= (Hess + eps I)^-1 grad`` with
    ``grad = 0.5 (L[x+1] - L[x-1])``, ``dxx = L[x+1] - 2 L[x] + L[x-1]`` and ``dxy = 0.5 (L[x+1,y+1]
    - L[x+1] - L[y+1] + 2 L - L[x-1] - L[y-1] + L[x-1,y-1])``, ``eps`` float32's. On the log of a
    Gaussian of sigma s the step lands on its centre along each axis: ``dx = -(x - mu) / s^2``,
    ``dxx = -1 / s^2``."""
    if generation not in GENERATIONS:
        raise ValueError(f'generation must be one of {GENERATIONS}, got {generation!r}')
    n, k, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    hm = (gaussian_blur_cv2(hm, blur_kernel, 'zeros', keep_max=True) if generation == '1.x'
          else gaussian_blur_cv2(hm, blur_kernel))
    logh = hm.clamp(1e-3, 50.0).log()
    pad = F.pad(logh.reshape(n * k, 1, h, w), (1, 1, 1, 1), mode='replicate').reshape(n, k, h + 2, w + 2)
    read = _flat_reader(pad.double(), per_instance=generation == '1.x')
    area, row = (h + 2) * (w + 2), w + 2
    maps = torch.arange(k, device=coords.device) if generation == '1.x' else \
        torch.arange(n * k, device=coords.device).reshape(n, k)
    base = (coords[..., 0].long() + 1) + (coords[..., 1].long() + 1) * row + area * maps
    i_, ix1, ix1_ = read(base), read(base + 1), read(base - 1)
    iy1, iy1_ = read(base + row), read(base - row)
    ix1y1, ix1_y1_ = read(base + row + 1), read(base - row - 1)
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    eps = float(np.finfo(np.float32).eps)
    dxx = ix1 - 2 * i_ + ix1_ + eps
    dyy = iy1 - 2 * i_ + iy1_ + eps
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + 2 * i_ - ix1_ - iy1_ + ix1_y1_)
    det = dxx * dyy - dxy ** 2
    step = torch.stack([(dyy * dx - dxy * dy) / det, (dxx * dy - dxy * dx) / det], dim=-1)
    return (coords.double() - step).to(coords.dtype)


def combined_flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Combined-target maps (N, 3K, H, W) of a mirrored input -> of the input (``flip_heatmaps(
    flip_mode='udp_combined')``, 0.x ``flip_back(target_type='CombinedTarget')``): mirror the
    width, swap the left/right keypoints' triples, negate the x offsets; no shift."""
    n, c, h, w = heatmaps.shape
    if c % 3:
        raise ValueError(f'combined targets have 3 maps per keypoint; got {c} channels')
    # a keypoint's three maps stacked along the height: the shared flip_back swaps them as one channel
    out = flip_back(heatmaps.reshape(n, c // 3, 3 * h, w), flip_pairs).reshape(n, c // 3, 3, h, w).clone()
    out[:, :, 1].neg_()
    return out.reshape(n, c, h, w)


def combined_decode(heatmaps: torch.Tensor, blur_kernel: int = 11,
                    generation: str = '1.x') -> Tuple[torch.Tensor, torch.Tensor]:
    """Keypoints (N, K, 2) in heatmap pixels and scores (N, K) from combined-target maps (N, 3K,
    H, W): the disc maps blurred with ``2 * blur_kernel + 1`` taps (1.x ``UDPHeatmap.decode``, 0.x
    ``keypoints_from_heatmaps``; 0.x blurs the offset maps too, with ``blur_kernel`` taps), their argmax (the score is the blurred maximum; -1 when not positive)
    plus the offsets read there times the radius (``0.0546875 * max(W, H)``; 0.x ``* H``)."""
    if generation not in GENERATIONS:
        raise ValueError(f'generation must be one of {GENERATIONS}, got {generation!r}')
    n, c, h, w = heatmaps.shape
    k = c // 3
    maps = heatmaps.detach().float().reshape(n, k, 3, h, w)
    disc, xoff, yoff = maps[:, :, 0], maps[:, :, 1], maps[:, :, 2]
    disc = gaussian_blur_cv2(disc, 2 * blur_kernel + 1)
    if generation == '1.x':
        radius = RADIUS_FACTOR * max(w, h)
    else:
        xoff, yoff = gaussian_blur_cv2(xoff, blur_kernel), gaussian_blur_cv2(yoff, blur_kernel)
        radius = RADIUS_FACTOR * h
    coords, scores = get_max_preds(disc)
    coords = torch.where((scores > 0).unsqueeze(-1), coords, torch.full_like(coords, -1.0))
    base = coords[..., 0].long() + coords[..., 1].long() * w
    per_instance = generation == '1.x'
    maps_index = torch.arange(k, device=heatmaps.device) if per_instance else torch.arange(n * k, device=heatmaps.device).reshape(n, k)
    index = base + h * w * maps_index
    offset = torch.stack([_flat_reader(xoff, per_instance)(index), _flat_reader(yoff, per_instance)(index)], -1)
    return coords + offset * radius, scores


def sanitize_box_strict(box: Sequence[float], width: int, height: int, area: float = 1.0):
    """The ground-truth box cleaning of mmpose 0.x before #1367 (2022-05; every 0.x checkpoint):
    the official one (:func:`~hrnet_zoo.tasks.topdown.sanitize_box`, ``x2 = min(W - 1, x1 +
    max(0, w - 1))``) kept only when ``x2 > x1`` and ``y2 > y1`` (the official keeps ``>=``)."""
    out = sanitize_box(box, width, height, area)
    return out if out is not None and out[2] > 0 and out[3] > 0 else None
