"""Draw keypoints / landmarks (and an optional skeleton and boxes) on an image with torchvision's
drawing utilities and save a PNG."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

COLORS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
          (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def draw_keypoints(image: Image.Image, keypoints: np.ndarray, scores: Optional[np.ndarray] = None,
                   skeleton: Sequence[Tuple[int, int]] = (), threshold: float = 0.2,
                   radius: Optional[float] = None, box: Optional[Sequence[float]] = None,
                   boxes: Optional[np.ndarray] = None) -> Image.Image:
    """A copy of ``image`` with each instance's keypoints (N, K, 2) drawn as dots (those with
    score > ``threshold``; keypoint ``k`` in colour ``k``), limbs from ``skeleton`` and the person
    ``box`` [x, y, w, h] (or one box per instance, ``boxes`` (N, 4)), by
    ``torchvision.utils.draw_keypoints`` / ``draw_bounding_boxes``."""
    from torchvision.ops import box_convert
    from torchvision.utils import draw_bounding_boxes, draw_keypoints as tv_draw_keypoints
    out = torch.from_numpy(np.array(image.convert('RGB'))).permute(2, 0, 1).contiguous()
    kpts = torch.as_tensor(np.asarray(keypoints, dtype=np.float32).reshape(-1, np.shape(keypoints)[-2], 2))
    conf = (torch.ones(kpts.shape[:2]) if scores is None
            else torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(kpts.shape[:2]))
    r = int(round(radius or max(1.5, min(image.size) / 150)))
    all_boxes = [box] if box is not None else ([] if boxes is None else list(np.asarray(boxes).reshape(-1, 4)))
    if all_boxes:
        xyxy = box_convert(torch.as_tensor(np.asarray(all_boxes, dtype=np.float32)), 'xywh', 'xyxy')
        out = draw_bounding_boxes(out, xyxy, colors=(255, 255, 255))
    if len(kpts) == 0:
        return Image.fromarray(out.permute(1, 2, 0).numpy())
    visible = conf > threshold
    if skeleton:
        out = tv_draw_keypoints(out, kpts, connectivity=list(skeleton), colors=(0, 255, 0), radius=0,
                                width=max(1, r // 2), visibility=visible)
    for k in range(kpts.shape[1]):  # one call per keypoint: torchvision draws one colour per call
        out = tv_draw_keypoints(out, kpts[:, k:k + 1], colors=COLORS[k % len(COLORS)], radius=r,
                                visibility=visible[:, k:k + 1])
    return Image.fromarray(out.permute(1, 2, 0).numpy())


def save_png(image: Image.Image, path: str) -> str:
    """Write ``image`` as PNG atomically (temp file + rename); returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.png', dir=folder)
    os.close(fd)
    image.save(tmp, format='PNG')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    os.replace(tmp, path)
    return path
