"""The heatmap codec shared by pose and landmarks (mmpose calls this a codec).

Encode: one Gaussian heatmap per keypoint (sigma 2 at 1/4 resolution for COCO) with a
per-keypoint target weight, and the heatmap MSE loss with target weights (the official
``JointsMSELoss``: 0.5 * mean squared error per joint, averaged over joints).
Decode: argmax with the official quarter-pixel shift, optional DARK sub-pixel refinement (Taylor
expansion of the log-heatmap at the maximum), flip-test averaging and back-projection to image
coordinates (see :mod:`hrnet_zoo.tasks.topdown` for the coordinate convention).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .topdown import affine_matrix, apply_affine

DECODE_METHODS = ('argmax', 'quarter', 'dark')


def get_max_preds(heatmaps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax of each heatmap (N, K, H, W) -> coords (N, K, 2) as (x, y), maxvals (N, K).
    Keypoints whose maximum is not positive get coordinates (0, 0), as in the official code."""
    if heatmaps.dim() != 4:
        raise ValueError(f'heatmaps must be (N, K, H, W), got {tuple(heatmaps.shape)}')
    n, k, h, w = heatmaps.shape
    maxvals, idx = heatmaps.reshape(n, k, -1).max(dim=2)
    coords = torch.stack([idx % w, idx // w], dim=-1).to(heatmaps.dtype)
    return coords * (maxvals > 0).unsqueeze(-1).to(coords.dtype), maxvals


def quarter_offset(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Move each argmax a quarter pixel towards its higher neighbour (official post-processing;
    only for maxima at least 2 pixels inside the map, like the official ``1 < px < W - 1``)."""
    n, k, h, w = heatmaps.shape
    px, py = coords[..., 0].long(), coords[..., 1].long()
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    pxc, pyc = px.clamp(1, w - 2), py.clamp(1, h - 2)
    flat = heatmaps.reshape(n, k, -1)

    def at(y, x):
        return flat.gather(2, (y * w + x).unsqueeze(-1)).squeeze(-1)

    dx = at(pyc, pxc + 1) - at(pyc, pxc - 1)
    dy = at(pyc + 1, pxc) - at(pyc - 1, pxc)
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
    """DARK (Zhang et al., CVPR 2020): Newton step ``-H^-1 g`` on the log of the (blurred) heatmap
    at the integer maximum. Maxima on the border, flat or non-concave spots keep their position;
    the step is clamped to one pixel."""
    hm = gaussian_blur(heatmaps, blur_kernel) if blur_kernel else heatmaps
    logh = hm.clamp_min(1e-10).log()
    n, k, h, w = hm.shape
    px, py = coords[..., 0].long(), coords[..., 1].long()
    ok = (px >= 1) & (px <= w - 2) & (py >= 1) & (py <= h - 2)
    x, y = px.clamp(1, w - 2), py.clamp(1, h - 2)
    flat = logh.reshape(n, k, -1)

    def at(yy, xx):
        return flat.gather(2, (yy * w + xx).unsqueeze(-1)).squeeze(-1)

    c = at(y, x)
    dx = 0.5 * (at(y, x + 1) - at(y, x - 1))
    dy = 0.5 * (at(y + 1, x) - at(y - 1, x))
    dxx = at(y, x + 1) - 2 * c + at(y, x - 1)
    dyy = at(y + 1, x) - 2 * c + at(y - 1, x)
    dxy = 0.25 * (at(y + 1, x + 1) - at(y + 1, x - 1) - at(y - 1, x + 1) + at(y - 1, x - 1))
    det = dxx * dyy - dxy ** 2
    ok = ok & (det > 1e-12) & (dxx < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(dxx * dy - dxy * dx) / safe
    offset = torch.stack([ox, oy], dim=-1).clamp(-1, 1) * ok.unsqueeze(-1).to(coords.dtype)
    return coords + offset


def heatmap_coords(heatmaps: torch.Tensor, method: str = 'quarter') -> Tuple[torch.Tensor, torch.Tensor]:
    """Keypoints in heatmap coordinates (N, K, 2) and their scores (N, K): ``'argmax'``,
    ``'quarter'`` (argmax + quarter-pixel shift, the official default) or ``'dark'``."""
    if method not in DECODE_METHODS:
        raise ValueError(f'unknown decode method {method!r}; choose one of {DECODE_METHODS}')
    heatmaps = heatmaps.detach().float()
    coords, maxvals = get_max_preds(heatmaps)
    if method == 'quarter':
        coords = quarter_offset(heatmaps, coords)
    elif method == 'dark':
        coords = dark_refine(heatmaps, coords)
    return coords, maxvals


def flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Heatmaps predicted for a horizontally flipped input -> heatmaps for the original input:
    mirror the width axis and swap left/right keypoint channels (exact under our convention)."""
    out = heatmaps.flip(-1)
    perm = list(range(out.shape[1]))
    for a, b in flip_pairs:
        perm[a], perm[b] = perm[b], perm[a]
    return out[:, perm]


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                     flip_test: bool = True) -> torch.Tensor:
    """Model heatmaps for a batch; with ``flip_test`` the average of the original and the
    flipped-back prediction for the mirrored batch."""
    heatmaps = model(images)
    if flip_test:
        if flip_pairs is None:
            raise ValueError('flip_test=True needs the flip_pairs of the keypoint set')
        heatmaps = 0.5 * (heatmaps + flip_back(model(images.flip(-1)), flip_pairs))
    return heatmaps


def to_image_coords(coords: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    heatmap_size: Tuple[int, int], rotations: Optional[np.ndarray] = None) -> np.ndarray:
    """Back-project heatmap coordinates (N, K, 2) to image coordinates with each sample's crop
    (``centers`` (N, 2), ``scales`` (N, 2), optional ``rotations`` (N,) in degrees)."""
    coords = np.asarray(coords, dtype=np.float64)
    out = np.empty_like(coords)
    for i in range(coords.shape[0]):
        rot = 0.0 if rotations is None else float(rotations[i])
        inv = affine_matrix(centers[i], scales[i], rot, heatmap_size, inverse=True)
        out[i] = apply_affine(coords[i], inv)
    return out


def decode_heatmaps(heatmaps: torch.Tensor, centers, scales, method: str = 'quarter',
                    rotations=None) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, K, h, w) -> image keypoints (N, K, 2) and scores (N, K) (numpy)."""
    coords, maxvals = heatmap_coords(heatmaps, method)
    size = tuple(heatmaps.shape[-2:])
    pts = to_image_coords(coords.cpu().numpy(), np.asarray(centers), np.asarray(scales), size,
                          None if rotations is None else np.asarray(rotations))
    return pts, maxvals.cpu().numpy()


# --- encode: targets and loss ------------------------------------------------------------------
def gaussian_heatmaps(keypoints: np.ndarray, visible: np.ndarray, heatmap_size: Tuple[int, int],
                      sigma: float = 2.0, unbiased: bool = True,
                      joint_weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Encode keypoints (K, 2) in heatmap coordinates as K Gaussian heatmaps of peak 1.

    ``visible`` (K,) > 0 marks annotated keypoints. ``heatmap_size`` is ``(height, width)``.
    Each Gaussian is cut to a window of radius ``3 * sigma``. With ``unbiased=True`` (default) it is
    centred at the exact sub-pixel position (DARK's unbiased encoding, so decoding can recover
    sub-pixel locations); ``unbiased=False`` rounds the centre to the nearest pixel as the official
    code does. The target weight (K, 1) is 0 for unannotated keypoints and for keypoints whose
    window lies wholly outside the heatmap, else 1 (times ``joint_weights`` when given).
    """
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible).reshape(-1)
    if len(vis) != len(kpts):
        raise ValueError(f'{len(kpts)} keypoints but {len(vis)} visibility flags')
    h, w = heatmap_size
    centers = kpts if unbiased else np.floor(kpts + 0.5)
    radius = 3 * sigma
    inside = ((centers[:, 0] + radius >= 0) & (centers[:, 0] - radius <= w - 1)
              & (centers[:, 1] + radius >= 0) & (centers[:, 1] - radius <= h - 1))
    weight = ((vis > 0) & inside).astype(np.float32)
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    dx = xs - centers[:, 0, None, None]
    dy = ys - centers[:, 1, None, None]
    g = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    g = g * ((np.abs(dx) <= radius) & (np.abs(dy) <= radius))
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
