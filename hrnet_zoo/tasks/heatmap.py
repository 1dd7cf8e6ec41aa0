"""Heatmap pieces shared by pose and landmarks, put together by the named codecs of
:mod:`hrnet_zoo.tasks.codecs` (mmpose's word): one piece of code per idea, the conventions as
arguments.

Encode: :func:`gaussian_heatmaps`, one Gaussian per keypoint with a per-keypoint target weight,
under the window of the official code, of DARK or of UDP; :class:`JointsMSELoss`, the official
pose loss. Decode: :func:`get_max_preds` (argmax), :func:`quarter_offset` (the official
quarter-pixel step, its border rule as an argument), :func:`dark_refine` (DARK's Taylor step on
the log of the blurred heatmap), :func:`flip_back` / :func:`predict_heatmaps` (flip test, with or
without the official one-pixel ``SHIFT_HEATMAP``) and :func:`to_image_coords` (back-projection
through the crop of :mod:`hrnet_zoo.tasks.topdown`). :func:`decode_heatmaps` is a codec's decode
(``'udp'`` by default, the convention of hrnet_zoo before codecs existed).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .topdown import affine_matrix, apply_affine

REFINEMENTS = ('argmax', 'quarter', 'dark')
DECODE_METHODS = REFINEMENTS  # the name before codecs
GAUSSIAN_WINDOWS = ('cut', 'official', 'full', 'udp')


def get_max_preds(heatmaps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax of each heatmap (N, K, H, W) -> coords (N, K, 2) as (x, y), maxvals (N, K).
    Keypoints whose maximum is not positive get coordinates (0, 0), as in the official code
    (``lib/core/inference.py`` ``get_max_preds``; the first maximum in row-major order)."""
    if heatmaps.dim() != 4:
        raise ValueError(f'heatmaps must be (N, K, H, W), got {tuple(heatmaps.shape)}')
    n, k, h, w = heatmaps.shape
    maxvals, idx = heatmaps.reshape(n, k, -1).max(dim=2)
    coords = torch.stack([idx % w, idx // w], dim=-1).to(heatmaps.dtype)
    return coords * (maxvals > 0).unsqueeze(-1).to(coords.dtype), maxvals


def _gather(maps: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``maps[n, k, y[n, k], x[n, k]]`` for maps (N, K, H, W) and index tensors (N, K)."""
    n, k, h, w = maps.shape
    return maps.reshape(n, k, -1).gather(2, (y * w + x).unsqueeze(-1)).squeeze(-1)


def quarter_offset(heatmaps: torch.Tensor, coords: torch.Tensor, first: int = 2) -> torch.Tensor:
    """Move each integer argmax a quarter pixel towards its higher neighbour along x and y (the
    sign of the difference of the two neighbours; none on a tie), when the maximum lies in columns
    ``first .. w - 2`` and rows ``first .. h - 2``.

    ``first=2`` is the official pose rule (``get_final_preds``: ``1 < px < w - 1`` and ``1 < py <
    h - 1``, both axes or none); ``first=1`` the official face rule (``decode_preds`` on 1-based
    ``px``: ``px > 1 and px < w``), i.e. every maximum that has both neighbours.
    """
    n, k, h, w = heatmaps.shape
    px, py = coords[..., 0].long(), coords[..., 1].long()
    ok = (px >= first) & (px <= w - 2) & (py >= first) & (py <= h - 2)
    if w < 3 or h < 3:
        return coords
    pxc, pyc = px.clamp(1, w - 2), py.clamp(1, h - 2)
    dx = _gather(heatmaps, pyc, pxc + 1) - _gather(heatmaps, pyc, pxc - 1)
    dy = _gather(heatmaps, pyc + 1, pxc) - _gather(heatmaps, pyc - 1, pxc)
    shift = torch.stack([dx.sign(), dy.sign()], dim=-1) * 0.25
    return coords + shift * ok.unsqueeze(-1).to(coords.dtype)


def gaussian_blur(heatmaps: torch.Tensor, kernel: int = 11) -> torch.Tensor:
    """Blur each heatmap with a Gaussian of ``kernel`` taps (sigma as OpenCV derives it from the
    size) and rescale it to keep its maximum: DARK's distribution modulation."""
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    t = torch.arange(kernel, dtype=heatmaps.dtype, device=heatmaps.device) - (kernel - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    n, k, h, w = heatmaps.shape
    x = heatmaps.reshape(n * k, 1, h, w)
    x = F.conv2d(x, g.view(1, 1, 1, -1), padding=(0, kernel // 2))
    x = F.conv2d(x, g.view(1, 1, -1, 1), padding=(kernel // 2, 0)).reshape(n, k, h, w)
    before = heatmaps.flatten(2).amax(-1, keepdim=True)
    after = x.flatten(2).amax(-1, keepdim=True).clamp_min(1e-12)
    return (x.flatten(2) * before / after).reshape(n, k, h, w)


def dark_refine(heatmaps: torch.Tensor, coords: torch.Tensor, blur_kernel: Optional[int] = 11) -> torch.Tensor:
    """DARK (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose
    Estimation", CVPR 2020), as its code and mmpose's ``refine_keypoints_dark``: blur each heatmap
    (:func:`gaussian_blur`, ``blur_kernel`` taps; 11 for sigma 2), take ``log(max(h, 1e-10))`` and
    move the integer maximum by the Newton step ``-H^-1 g``, with the gradient from central
    differences (``0.5 * (L[x+1] - L[x-1])``) and the Hessian from differences two pixels apart
    (``0.25 * (L[x+2] - 2 L[x] + L[x-2])``, ``dxy`` from the four diagonal neighbours). Only maxima
    with ``1 < x < w - 2`` and ``1 < y < h - 2`` (the official rule) and a non-singular Hessian
    move. On an exact Gaussian ``log h`` is quadratic and the step lands on its centre."""
    n, k, h, w = heatmaps.shape
    if w < 5 or h < 5:
        return coords
    hm = gaussian_blur(heatmaps, blur_kernel) if blur_kernel else heatmaps
    logh = hm.clamp_min(1e-10).log().double()
    px, py = coords[..., 0].long(), coords[..., 1].long()
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    x, y = px.clamp(2, w - 3), py.clamp(2, h - 3)

    def at(dy: int, dx: int) -> torch.Tensor:
        return _gather(logh, y + dy, x + dx)

    c = at(0, 0)
    gx, gy = 0.5 * (at(0, 1) - at(0, -1)), 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy ** 2
    ok = ok & (det != 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    offset = torch.stack([-(dyy * gx - dxy * gy) / safe, -(dxx * gy - dxy * gx) / safe], dim=-1)
    return coords + (offset * ok.unsqueeze(-1)).to(coords.dtype)


def heatmap_coords(heatmaps: torch.Tensor, method: str = 'quarter', first: int = 2,
                   blur_kernel: int = 11) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keypoints in heatmap coordinates (N, K, 2) and their scores (N, K): ``'argmax'``,
    ``'quarter'`` (argmax + :func:`quarter_offset` from column / row ``first``) or ``'dark'``
    (:func:`dark_refine`)."""
    if method not in REFINEMENTS:
        raise ValueError(f'unknown decode method {method!r}; choose one of {REFINEMENTS}')
    heatmaps = heatmaps.detach().float()
    coords, maxvals = get_max_preds(heatmaps)
    if method == 'quarter':
        coords = quarter_offset(heatmaps, coords, first)
    elif method == 'dark':
        coords = dark_refine(heatmaps, coords, blur_kernel)
    return coords, maxvals


def flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]], shift: bool = False) -> torch.Tensor:
    """Heatmaps predicted for a horizontally flipped input -> heatmaps for the original input:
    mirror the width axis and swap left/right keypoint channels (official ``flip_back``). With
    ``shift`` also the official ``SHIFT_HEATMAP`` (``lib/core/function.py``): every column moves one
    pixel right, ``out[..., 1:] = out[..., :-1]`` (column 0 keeps its value). Under the ``'udp'``
    crop convention the mirror alone is exact; under ``'msra'`` a keypoint at heatmap ``u`` comes
    back at ``u - 3/4``, and the shift leaves ``u + 1/4``."""
    out = heatmaps.flip(-1)
    perm = list(range(out.shape[1]))
    for a, b in flip_pairs:
        perm[a], perm[b] = perm[b], perm[a]
    out = out[:, perm]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                     flip_test: bool = True, shift: bool = False,
                     unflip: Optional[Callable[[torch.Tensor, Sequence[Tuple[int, int]]], torch.Tensor]] = None
                     ) -> torch.Tensor:
    """Model heatmaps for a batch; with ``flip_test`` the average of the original and the
    flipped-back prediction for the mirrored batch (:func:`flip_back`, ``shift`` its one-pixel
    ``SHIFT_HEATMAP``; ``unflip(heatmaps, flip_pairs)`` instead: a codec's own, e.g. combined maps)."""
    heatmaps = model(images)
    if flip_test:
        if flip_pairs is None:
            raise ValueError('flip_test=True needs the flip_pairs of the keypoint set')
        mirrored = model(images.flip(-1))
        heatmaps = 0.5 * (heatmaps + (unflip(mirrored, flip_pairs) if unflip else flip_back(mirrored, flip_pairs, shift)))
    return heatmaps


def to_image_coords(coords: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    heatmap_size: Tuple[int, int], rotations: Optional[np.ndarray] = None,
                    convention: str = 'udp') -> np.ndarray:
    """Back-project heatmap coordinates (N, K, 2) to image coordinates with each sample's crop
    (``centers`` (N, 2), ``scales`` (N, 2), optional ``rotations`` (N,) in degrees): the inverse
    crop map built for the heatmap size under the crop ``convention`` (``'msra'``: the official
    ``transform_preds``)."""
    coords = np.asarray(coords, dtype=np.float64)
    out = np.empty_like(coords)
    for i in range(coords.shape[0]):
        rot = 0.0 if rotations is None else float(rotations[i])
        inv = affine_matrix(centers[i], scales[i], rot, heatmap_size, inverse=True, convention=convention)
        out[i] = apply_affine(coords[i], inv)
    return out


def decode_heatmaps(heatmaps: torch.Tensor, centers, scales, method: Optional[str] = None,
                    rotations=None, codec: Union[str, object] = 'udp') -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, K, h, w) -> image keypoints (N, K, 2) and scores (N, K) (numpy): the decode of
    ``codec`` (:mod:`hrnet_zoo.tasks.codecs`; default ``'udp'``, the convention before codecs),
    ``method`` replacing its refinement (``'argmax'``, ``'quarter'``, ``'dark'``) when given."""
    from .codecs import get_codec
    return get_codec(codec, method).decode(heatmaps, centers, scales, rotations)


# --- encode: targets and loss ------------------------------------------------------------------
def gaussian_heatmaps(keypoints: np.ndarray, visible: np.ndarray, heatmap_size: Tuple[int, int],
                      sigma: float = 2.0, unbiased: bool = True, joint_weights: Optional[Sequence[float]] = None,
                      window: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Encode keypoints (K, 2) in heatmap coordinates as K Gaussian heatmaps of peak 1.

    ``visible`` (K,) > 0 marks annotated keypoints; ``heatmap_size`` is ``(height, width)``. With
    ``unbiased=True`` (default) the Gaussian is centred at the given position (sub-pixel: DARK's
    and UDP's unbiased encoding); ``unbiased=False`` first rounds it as the official pose code,
    ``int(u + 0.5)`` (truncation: -0.7 -> 0). ``window`` (radius ``r = 3 * sigma``):

    * ``'cut'`` (default when unbiased): pixels within ``r`` of the centre along x and y; weight 0
      when the window lies wholly outside (``c + r < 0`` or ``c - r > w - 1``);
    * ``'official'`` (default when not unbiased; ``JointsDataset.generate_target`` and the face
      ``generate_target``): the window ``[int(c - r), int(c + r + 1))`` (truncating, so for sigma 2
      the 13 pixels ``c - 6 .. c + 6``), the Gaussian centred on its pixel ``(2r + 1) // 2`` (the
      centre itself unless ``c - r`` is a negative fraction), weight 0 when ``int(c - r) >= w`` or
      ``int(c + r + 1) < 0``;
    * ``'full'`` (DARK's code, mmpose ``generate_unbiased_gaussian_heatmaps``): the whole map,
      weight 0 when ``c - r >= w`` or ``c + r + 1 < 0``;
    * ``'udp'`` (mmpose ``generate_udp_gaussian_heatmaps``; always sub-pixel): the ``'official'``
      window of ``mu = int(c + 0.5)``, the Gaussian centred on its pixel ``(2r + 1) // 2`` plus
      ``c - mu`` (``c`` itself for a whole r); keypoints flagged below 0.5 get weight 0. E.g.
      c = 10.3, sigma 2: window 4 .. 16 (13 pixels), peak at 10.3.

    The target weight (K, 1) is 0 for unannotated keypoints and as the window says, else 1 (times
    ``joint_weights`` when given); heatmaps of weight 0 are all zero.
    """
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible).reshape(-1)
    if len(vis) != len(kpts):
        raise ValueError(f'{len(kpts)} keypoints but {len(vis)} visibility flags')
    window = window or ('cut' if unbiased else 'official')
    if window not in GAUSSIAN_WINDOWS:
        raise ValueError(f'unknown Gaussian window {window!r}; choose one of {GAUSSIAN_WINDOWS}')
    h, w = heatmap_size
    size = np.array([w, h], dtype=np.float64)
    centers = kpts if unbiased else np.trunc(kpts + 0.5)
    radius = 3 * sigma
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    if window in ('official', 'udp'):
        mu = np.trunc(kpts + 0.5) if window == 'udp' else centers
        lo, hi = np.trunc(mu - radius), np.trunc(mu + radius + 1)
        off = ((lo >= size) | (hi < 0)).any(axis=1)
        centers = lo + (2 * radius + 1) // 2 + (kpts - mu if window == 'udp' else 0)
        mask = ((xs >= lo[:, 0, None, None]) & (xs < hi[:, 0, None, None])
                & (ys >= lo[:, 1, None, None]) & (ys < hi[:, 1, None, None]))
    elif window == 'full':
        off = ((centers - radius >= size) | (centers + radius + 1 < 0)).any(axis=1)
        mask = True
    else:
        off = ((centers + radius < 0) | (centers - radius > size - 1)).any(axis=1)
        mask = None
    weight = (((vis >= 0.5) if window == 'udp' else (vis > 0)) & ~off).astype(np.float32)
    dx = xs - centers[:, 0, None, None]
    dy = ys - centers[:, 1, None, None]
    g = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    g = g * (((np.abs(dx) <= radius) & (np.abs(dy) <= radius)) if mask is None else mask)
    g = g * weight[:, None, None]
    if joint_weights is not None:
        jw = np.asarray(joint_weights, dtype=np.float32).reshape(-1)
        if len(jw) != len(kpts):
            raise ValueError(f'{len(jw)} joint weights for {len(kpts)} keypoints')
        weight = weight * jw
    return g.astype(np.float32), weight[:, None]


class JointsMSELoss(nn.Module):
    """``0.5 * mean((w_k * (pred_k - target_k))^2)`` over all pixels of every joint ``k``: the
    official pose loss (per-joint 0.5 * MSE, averaged over joints) with per-joint target weights
    ``w`` (N, K, 1) or (N, K)."""

    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                target_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f'heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape')
        diff = (pred - target).flatten(2)
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError('use_target_weight=True needs target_weight (N, K, 1)')
            diff = diff * target_weight.reshape(diff.shape[0], diff.shape[1], 1).to(diff.dtype)
        return 0.5 * diff.pow(2).mean()
