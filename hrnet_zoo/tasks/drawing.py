"""Draw keypoints / landmarks (and an optional skeleton) on an image with PIL and save a PNG."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

COLORS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
          (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def draw_keypoints(image: Image.Image, keypoints: np.ndarray, scores: Optional[np.ndarray] = None,
                   skeleton: Sequence[Tuple[int, int]] = (), threshold: float = 0.2,
                   radius: Optional[float] = None, box: Optional[Sequence[float]] = None) -> Image.Image:
    """A copy of ``image`` with each instance's keypoints (N, K, 2) drawn as dots (those with
    score > ``threshold``), limbs from ``skeleton`` and the person ``box`` [x, y, w, h]."""
    out = image.convert('RGB').copy()
    draw = ImageDraw.Draw(out)
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, np.shape(keypoints)[-2], 2)
    conf = np.ones(kpts.shape[:2]) if scores is None else np.asarray(scores).reshape(kpts.shape[:2])
    r = radius or max(1.5, min(out.size) / 150)
    if box is not None:
        x, y, w, h = box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 255, 255))
    for pts, c in zip(kpts, conf):
        for a, b in skeleton:
            if c[a] > threshold and c[b] > threshold:
                draw.line([tuple(pts[a]), tuple(pts[b])], fill=(0, 255, 0), width=max(1, int(r / 2)))
        for k, ((x, y), s) in enumerate(zip(pts, c)):
            if s > threshold:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=COLORS[k % len(COLORS)], outline=(0, 0, 0))
    return out


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
