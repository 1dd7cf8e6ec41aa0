"""Draw task outputs on images with torchvision's drawing utilities (``draw_keypoints``,
``draw_bounding_boxes``, ``draw_segmentation_masks``; the coloured limbs of :func:`draw_people`
with Pillow, see there) and save PNGs atomically.

Two kinds of functions: :func:`draw_keypoints` takes and returns a PIL image (the single-image
``predict`` commands); :func:`draw_people`, :func:`draw_landmarks`, :func:`draw_segmentation` and
:func:`draw_detections` take and return a ``(3, H, W)`` uint8 tensor, the frame type of
:mod:`hrnet_zoo.tasks.video`, so that a video loop converts nothing. Boxes follow each task's
convention: ``[x, y, w, h]`` for people and faces (COCO), ``[x1, y1, x2, y2]`` for detections
(torchvision's detection models).
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple, Union

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


def as_uint8_image(image: Union[Image.Image, np.ndarray, torch.Tensor]) -> torch.Tensor:
    """A PIL image, an (H, W, 3) uint8 array or a (3, H, W) tensor (uint8, or float in [0, 1]) as a
    (3, H, W) uint8 CPU tensor."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image.convert('RGB'))).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f'expected an (H, W, 3) RGB array, got shape {image.shape}')
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f'expected a (3, H, W) image tensor, got shape {tuple(image.shape)}')
    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return image.cpu()


def _sizes(image: torch.Tensor, radius: Optional[float]) -> Tuple[int, int]:
    """Dot radius and line width for an image: radius ``min(H, W) / 150`` (at least 2), width half
    of it (at least 1); e.g. 960x540 -> radius 4, width 2."""
    r = int(round(radius if radius is not None else max(2.0, min(image.shape[-2:]) / 150)))
    return r, max(1, r // 2)


def _xywh_to_xyxy(boxes) -> torch.Tensor:
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)


def draw_people(image: torch.Tensor, keypoints, scores=None, skeleton: Sequence[Tuple[int, int]] = (),
                threshold: float = 0.2, track_ids: Optional[Sequence[int]] = None, boxes=None,
                radius: Optional[float] = None) -> torch.Tensor:
    """``image`` (3, H, W) uint8 with each person's keypoints (N, K, 2) and limbs (``skeleton``,
    0-based pairs) in one colour per person: ``COLORS[track_id % 10]`` when ``track_ids`` are given
    (so a person keeps its colour across frames), else ``COLORS[n % 10]``. Keypoints scoring at
    most ``threshold`` are hidden, with their limbs. ``boxes`` (N, 4) ``[x, y, w, h]`` are drawn in
    the same colours (``torchvision.utils.draw_bounding_boxes``), labelled ``#<track_id>`` when
    ids are given (on top, on a patch of the colour); with ids and no boxes, each label goes on a
    box around the person's visible keypoints (grown by twice the dot radius). Radius: ``min(H, W) / 150``, at least 2 (960x540:
    4); limbs half as wide.

    Limbs and dots are drawn in one Pillow pass over all people: ``torchvision.utils.draw_keypoints``
    (0.29) draws its ``connectivity`` lines in white whatever ``colors`` says, over the dots, and
    converts the whole frame on every call (one call per colour)."""
    out = as_uint8_image(image)
    kpts = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
    kpts = kpts.reshape(-1, kpts.shape[-2] if kpts.dim() > 1 else 0, 2)
    n = len(kpts)
    conf = (torch.ones(kpts.shape[:2]) if scores is None
            else torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(kpts.shape[:2]))
    visible = conf > threshold
    ids = list(range(n)) if track_ids is None else [int(t) for t in track_ids]
    colors = [COLORS[i % len(COLORS)] for i in ids]
    r, width = _sizes(out, radius)
    xyxy = None if boxes is None else _xywh_to_xyxy(boxes)
    if xyxy is None and track_ids is not None and n:
        xyxy = torch.stack([_extent(kpts[i], visible[i], 2 * r) for i in range(n)])
    if visible.any():
        out = _draw_skeletons(out, kpts, visible, skeleton, colors, r, width)
    if xyxy is not None and len(xyxy):  # after the dots: a label is never hidden under a joint
        labels = None if track_ids is None else [f'#{t}' for t in ids]
        out = _boxes(out, xyxy, labels, colors, max(1, width // 2 + 1))
    return out


def _boxes(image: torch.Tensor, xyxy: torch.Tensor, labels, colors, width: int) -> torch.Tensor:
    """``draw_bounding_boxes`` with each label on a patch of its box's colour, in black or white
    (whichever contrasts: black when the colour's luma 0.299 R + 0.587 G + 0.114 B exceeds 128)."""
    from torchvision.utils import draw_bounding_boxes
    text = [(0, 0, 0) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 128 else (255, 255, 255) for c in colors]
    return draw_bounding_boxes(image, xyxy, labels=labels, colors=list(colors), width=width,
                               fill_labels=labels is not None, label_colors=text if labels is not None else None)


def _draw_skeletons(image: torch.Tensor, kpts: torch.Tensor, visible: torch.Tensor,
                    skeleton: Sequence[Tuple[int, int]], colors: Sequence[Tuple[int, int, int]], radius: int,
                    width: int) -> torch.Tensor:
    """Limbs (where both ends are visible), then dots, of every person in its colour."""
    from PIL import ImageDraw
    canvas = Image.fromarray(image.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(canvas)
    for pts, vis, color in zip(kpts.tolist(), visible.tolist(), colors):
        for a, b in skeleton:
            if vis[a] and vis[b]:
                draw.line([tuple(pts[a]), tuple(pts[b])], fill=color, width=width)
        for (x, y), v in zip(pts, vis):
            if v:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def _extent(points: torch.Tensor, visible: torch.Tensor, pad: float) -> torch.Tensor:
    """[x1, y1, x2, y2] around the visible points (all points when none is visible), grown by ``pad``."""
    pts = points[visible] if visible.any() else points
    return torch.cat([pts.min(dim=0).values - pad, pts.max(dim=0).values + pad])


def draw_landmarks(image: torch.Tensor, landmarks, box: Optional[Sequence[float]] = None,
                   color: Tuple[int, int, int] = (0, 255, 0), radius: Optional[float] = None) -> torch.Tensor:
    """``image`` (3, H, W) uint8 with face landmarks (L, 2) or (N, L, 2) as dots, and the face
    ``box`` ``[x, y, w, h]`` (or (N, 4) boxes) in white."""
    from torchvision.utils import draw_bounding_boxes, draw_keypoints as tv_draw_keypoints
    out = as_uint8_image(image)
    pts = torch.as_tensor(np.asarray(landmarks, dtype=np.float32))
    pts = pts.reshape(-1, pts.shape[-2], 2) if pts.numel() else pts.reshape(0, 0, 2)
    r, _ = _sizes(out, radius if radius is not None else max(1.0, min(out.shape[-2:]) / 300))
    if box is not None:
        out = draw_bounding_boxes(out, _xywh_to_xyxy(box), colors=(255, 255, 255))
    return tv_draw_keypoints(out, pts, colors=color, radius=r) if len(pts) else out


def draw_segmentation(image: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      colors: Optional[Sequence[Tuple[int, int, int]]] = None, alpha: float = 0.5) -> torch.Tensor:
    """``image`` (3, H, W) uint8 with the class-index map ``labels`` (H, W) blended in, class ``c``
    in ``colors[c]`` (default: the segmentation palette, Cityscapes' for 19 classes); labels
    outside ``[0, num_classes)`` (the ignore index 255) stay uncoloured. Only the classes present
    are drawn."""
    from torchvision.utils import draw_segmentation_masks
    if colors is None:
        from .segmentation.data import palette
        colors = palette(num_classes)
    out = as_uint8_image(image)
    labels = torch.as_tensor(labels).cpu()
    if labels.shape != out.shape[-2:]:
        raise ValueError(f'labels {tuple(labels.shape)} and image {tuple(out.shape[-2:])} differ in size')
    present = [int(c) for c in torch.unique(labels) if 0 <= int(c) < num_classes]
    if not present:
        return out
    masks = labels[None] == torch.tensor(present)[:, None, None]
    return draw_segmentation_masks(out, masks, alpha=alpha, colors=[tuple(colors[c]) for c in present])


def draw_detections(image: torch.Tensor, boxes, labels: Optional[Sequence] = None, scores=None, masks=None,
                    class_names: Optional[Sequence[str]] = None, mask_thresh: float = 0.5) -> torch.Tensor:
    """``image`` (3, H, W) uint8 with detection ``boxes`` (N, 4) ``[x1, y1, x2, y2]``, each
    labelled ``"<class name> <score>"`` (``class_names[label]`` when given, e.g. ``person 0.93``)
    in the colour of its class (``COLORS[label % 10]``), and instance ``masks`` ((N, H, W) or
    (N, 1, H, W), probabilities above ``mask_thresh`` or booleans) blended in beneath."""
    from torchvision.utils import draw_segmentation_masks
    out = as_uint8_image(image)
    xyxy = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
    if not len(xyxy):
        return out
    cls = [0] * len(xyxy) if labels is None else [int(c) for c in labels]
    colors = [COLORS[c % len(COLORS)] for c in cls]
    if masks is not None:
        m = torch.as_tensor(masks).cpu().reshape(len(xyxy), *out.shape[-2:])
        out = draw_segmentation_masks(out, m if m.dtype == torch.bool else m > mask_thresh, alpha=0.4, colors=colors)
    text = None
    if labels is not None or scores is not None:
        names = [(class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c))
                 if labels is not None else '' for c in cls]
        vals = [''] * len(xyxy) if scores is None else [f'{float(s):.2f}' for s in np.asarray(scores).reshape(-1)]
        text = [f'{a} {b}'.strip() for a, b in zip(names, vals)]
    return _boxes(out, xyxy, text, colors, _sizes(out, None)[1])


def _temp_beside(path: str, suffix: str) -> str:
    """An empty temporary file in the folder of ``path`` (created), named ``<stem>.tmp-XXXX<suffix>``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    fd, tmp = tempfile.mkstemp(prefix=f'{stem}.tmp-', suffix=suffix, dir=folder)
    os.close(fd)
    return tmp


def _publish(tmp: str, path: str) -> str:
    """Move the finished ``tmp`` onto ``path`` (one rename: readers see the old file or the new
    one, never half of one) with the usual permissions; returns ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
    os.replace(tmp, path)
    return path


def save_png(image: Union[Image.Image, torch.Tensor, np.ndarray], path: str) -> str:
    """Write ``image`` (PIL, or a (3, H, W) tensor / (H, W, 3) array) as PNG atomically (temp file
    + rename); returns ``path``."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(as_uint8_image(image).permute(1, 2, 0).numpy())
    tmp = _temp_beside(path, '.png')
    try:
        image.save(tmp, format='PNG')
    except BaseException:
        os.unlink(tmp)
        raise
    return _publish(tmp, path)
