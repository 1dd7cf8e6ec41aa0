"""COCO box / mask AP with pycocotools, from torchvision-style targets and detections.

:class:`CocoEvaluator` collects ``update(targets, outputs)`` pairs (lists of dicts as torchvision
detectors take and return them), builds the ground truth in memory (or uses a given ``COCO``
object, e.g. the val annotation file), and runs ``COCOeval`` for ``'bbox'`` and ``'segm'``.
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, List, Sequence

import numpy as np
import torch
from torchvision.ops import box_convert

__all__ = ['CocoEvaluator', 'STAT_NAMES']

STAT_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


def _xywh(boxes: torch.Tensor) -> List[List[float]]:
    """xyxy boxes as COCO's [x, y, w, h] lists."""
    return box_convert(boxes.detach().float().cpu().reshape(-1, 4), 'xyxy', 'xywh').tolist()


def _rle(masks: torch.Tensor) -> List[dict]:
    from pycocotools import mask as mask_utils
    if masks.dim() == 4:  # (K, 1, H, W) probabilities from Mask R-CNN
        masks = masks[:, 0]
    arr = np.asfortranarray((masks.detach().cpu().numpy() > 0.5).astype(np.uint8).transpose(1, 2, 0))
    rles = mask_utils.encode(arr) if arr.shape[-1] else []
    for r in rles:
        r['counts'] = r['counts'].decode('ascii')
    return list(rles)


class CocoEvaluator:
    """Accumulate detections, then ``compute()`` -> ``{'bbox_AP': ..., 'bbox_AP50': ..., 'segm_AP': ...}``.

    Args:
        iou_types: ``('bbox',)`` or ``('bbox', 'segm')``.
        coco_gt: a ``pycocotools.coco.COCO`` ground truth; without it, one is built from the targets
            passed to :meth:`update` (``boxes`` xyxy, ``labels``, optional ``masks``, ``image_id``).
    """

    def __init__(self, iou_types: Sequence[str] = ('bbox',), coco_gt=None):
        bad = set(iou_types) - {'bbox', 'segm'}
        if bad:
            raise ValueError(f'iou_types must be bbox and/or segm, got {sorted(bad)}')
        self.iou_types = tuple(iou_types)
        self.coco_gt = coco_gt
        self.images: List[dict] = []
        self.gt_anns: List[dict] = []
        self.dets: List[dict] = []
        self.categories = set()
        self._next_id = 0

    def update(self, targets: List[Dict[str, torch.Tensor]], outputs: List[Dict[str, torch.Tensor]]) -> None:
        if len(targets) != len(outputs):
            raise ValueError(f'{len(targets)} targets but {len(outputs)} outputs')
        for t, o in zip(targets, outputs):
            image_id = int(t['image_id']) if 'image_id' in t else self._new_id()
            if self.coco_gt is None:
                self._add_gt(image_id, t)
            boxes, scores, labels = o['boxes'], o['scores'], o['labels']
            rles = _rle(o['masks']) if 'segm' in self.iou_types and 'masks' in o else [None] * len(boxes)
            for box, score, label, rle in zip(_xywh(boxes), scores.tolist(), labels.tolist(), rles):
                det = dict(image_id=image_id, category_id=int(label), bbox=box, score=float(score))
                if rle is not None:
                    det['segmentation'] = rle
                self.dets.append(det)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _add_gt(self, image_id: int, t: Dict[str, torch.Tensor]) -> None:
        h, w = (int(v) for v in t['size']) if 'size' in t else (t['masks'].shape[-2:] if 'masks' in t else (0, 0))
        self.images.append(dict(id=image_id, height=int(h), width=int(w)))
        boxes = _xywh(t['boxes'])
        rles = _rle(t['masks'][:, None].float()) if 'segm' in self.iou_types else [None] * len(boxes)
        for box, label, rle in zip(boxes, t['labels'].tolist(), rles):
            self.categories.add(int(label))
            ann = dict(id=len(self.gt_anns) + 1, image_id=image_id, category_id=int(label), bbox=box,
                       area=float(box[2] * box[3]), iscrowd=0)
            if rle is not None:
                from pycocotools import mask as mask_utils
                ann['segmentation'] = rle
                ann['area'] = float(mask_utils.area(rle))
            self.gt_anns.append(ann)

    def _build_gt(self):
        from pycocotools.coco import COCO
        gt = COCO()
        gt.dataset = dict(images=self.images, annotations=self.gt_anns,
                          categories=[dict(id=c, name=str(c)) for c in sorted(self.categories)])
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt

    def compute(self, verbose: bool = False) -> Dict[str, float]:
        """COCO AP per iou type; with no detections at all every AP is 0.0 (not an error)."""
        from pycocotools.cocoeval import COCOeval
        gt = self.coco_gt or self._build_gt()
        out: Dict[str, float] = {}
        for iou_type in self.iou_types:
            dets = [d for d in self.dets if iou_type == 'bbox' or 'segmentation' in d]
            if not dets:
                out.update({f'{iou_type}_{n}': 0.0 for n in STAT_NAMES})
                continue
            sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
            with sink:
                dt = gt.loadRes(dets)
                ev = COCOeval(gt, dt, iou_type)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            out.update({f'{iou_type}_{n}': float(max(v, 0.0)) for n, v in zip(STAT_NAMES, ev.stats[:6])})
        return out
