"""Small synthetic keypoint sets in the real file formats, for smoke tests and tutorials:
images with a coloured disk at every visible keypoint (keypoint ``k`` always has colour ``k``),
written as PNGs plus a COCO keypoints annotation file (pose) or an official-style landmark CSV
(faces). Nothing is downloaded."""
from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

PALETTE = ((255, 40, 40), (40, 255, 40), (60, 90, 255), (255, 255, 40), (255, 40, 255), (40, 255, 255),
           (255, 140, 0), (150, 60, 255), (255, 255, 255), (0, 160, 90))


def _atomic_json(obj, path: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def draw_blobs(size: Tuple[int, int], points: np.ndarray, visible: np.ndarray, radius: float,
               rng: np.random.Generator, num_keypoints: Optional[int] = None) -> Image.Image:
    """A (height, width) image of low-contrast noise with a disk of colour ``k`` at visible point
    ``k`` (points of several people one after the other: colour ``k % num_keypoints``)."""
    h, w = size
    bg = (rng.integers(40, 90, size=(h, w, 3))).astype(np.uint8)
    im = Image.fromarray(bg)
    draw = ImageDraw.Draw(im)
    for k, ((x, y), v) in enumerate(zip(points, visible)):
        if v > 0:
            colour = PALETTE[(k % num_keypoints if num_keypoints else k) % len(PALETTE)]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return im


def write_synthetic_coco(root: str, num_images: int = 32, num_keypoints: int = 5,
                         image_size: Tuple[int, int] = (96, 96), box_range: Tuple[int, int] = (40, 70),
                         radius: float = 2.5, invisible_prob: float = 0.0, seed: int = 0,
                         file_name: str = 'keypoints.json', people_per_image: int = 1) -> Tuple[str, str]:
    """Write ``num_images`` PNGs under ``root/images`` and a COCO keypoints file
    ``root/<file_name>``; returns ``(ann_file, image_root)``. Each image holds ``people_per_image``
    person boxes side by side (each in its own vertical strip). Keypoint coordinates are the disk
    centres; a keypoint is unlabelled (v=0, not drawn) with probability ``invisible_prob``."""
    rng = np.random.default_rng(seed)
    image_root = os.path.join(root, 'images')
    os.makedirs(image_root, exist_ok=True)
    h, w = image_size
    slot = w / people_per_image  # people stand side by side, one per vertical strip
    images, anns = [], []
    for i in range(num_images):
        all_pts, all_vis = [], []
        for p in range(people_per_image):
            bw, bh = rng.uniform(*box_range, size=2)
            if people_per_image > 1:
                bw = min(bw, slot - 2)
            x0, y0 = p * slot + rng.uniform(0, slot - bw), rng.uniform(0, h - bh)
            pts = np.stack([rng.uniform(x0 + 3, x0 + bw - 3, num_keypoints),
                            rng.uniform(y0 + 3, y0 + bh - 3, num_keypoints)], axis=1)
            vis = np.where(rng.random(num_keypoints) < invisible_prob, 0, 2)
            if vis.max() == 0:
                vis[0] = 2
            kpts = np.concatenate([pts * (vis[:, None] > 0), vis[:, None]], axis=1)
            anns.append({'id': len(anns) + 1, 'image_id': i + 1, 'category_id': 1, 'iscrowd': 0,
                         'bbox': [float(x0), float(y0), float(bw), float(bh)], 'area': float(bw * bh),
                         'num_keypoints': int((vis > 0).sum()),
                         'keypoints': [round(float(v), 3) for v in kpts.reshape(-1)]})
            all_pts.append(pts)
            all_vis.append(vis)
        name = f'{i:06d}.png'
        draw_blobs(image_size, np.concatenate(all_pts), np.concatenate(all_vis), radius, rng,
                   num_keypoints).save(os.path.join(image_root, name))
        images.append({'id': i + 1, 'file_name': name, 'width': w, 'height': h})
    cat = {'id': 1, 'name': 'person', 'supercategory': 'person',
           'keypoints': [f'kp{k}' for k in range(num_keypoints)], 'skeleton': []}
    ann_file = os.path.join(root, file_name)
    _atomic_json({'images': images, 'annotations': anns, 'categories': [cat]}, ann_file)
    return ann_file, image_root


def write_synthetic_faces(root: str, num_images: int = 16, num_landmarks: int = 19,
                          image_size: Tuple[int, int] = (96, 96), with_box_size: Optional[bool] = None,
                          radius: float = 1.5, seed: int = 0) -> Tuple[str, str]:
    """Write faces as landmark disks plus an official-style CSV (``root/faces.csv``); returns
    ``(csv_file, image_root)``. AFLW-style files (19 landmarks) get the ``box_size`` column."""
    rng = np.random.default_rng(seed)
    image_root = os.path.join(root, 'images')
    os.makedirs(image_root, exist_ok=True)
    with_box_size = num_landmarks == 19 if with_box_size is None else with_box_size
    h, w = image_size
    header = ['image_name', 'scale'] + (['box_size'] if with_box_size else []) + ['center_w', 'center_h']
    header += [f'{a}{k}' for k in range(num_landmarks) for a in 'xy']
    rows = [','.join(header)]
    for i in range(num_images):
        size = rng.uniform(40, 60)
        cx, cy = rng.uniform(size / 2 + 4, w - size / 2 - 4), rng.uniform(size / 2 + 4, h - size / 2 - 4)
        pts = np.stack([rng.uniform(cx - size / 2, cx + size / 2, num_landmarks),
                        rng.uniform(cy - size / 2, cy + size / 2, num_landmarks)], axis=1)
        name = f'{i:06d}.png'
        draw_blobs(image_size, pts, np.ones(num_landmarks), radius, rng).save(os.path.join(image_root, name))
        vals = [name, f'{size / 200:.6f}'] + ([f'{size:.4f}'] if with_box_size else [])
        vals += [f'{cx:.4f}', f'{cy:.4f}'] + [f'{v:.4f}' for v in pts.reshape(-1)]
        rows.append(','.join(vals))
    path = os.path.join(root, 'faces.csv')
    with open(path + '.tmp', 'w') as f:
        f.write('\n'.join(rows) + '\n')
    os.replace(path + '.tmp', path)
    return path, image_root
