"""Detection data and metric: target checks (empty lists are negatives, bad boxes are clear
errors), the v2 flip of image / boxes / masks (the same as the hand-written flip it replaced), a
COCO-format folder through CocoDetectionDataset, and COCOeval of perfect / empty detections."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from hrnet_zoo.tasks.detection import CocoDetectionDataset, CocoEvaluator, SyntheticBoxes, check_target, train_transform


def test_bad_boxes_are_clear_errors_and_empty_lists_are_negatives():
    image = torch.zeros(3, 32, 32)
    empty = check_target(dict(boxes=[], labels=[]), image, 3)
    assert empty['boxes'].shape == (0, 4) and empty['labels'].dtype == torch.int64
    with pytest.raises(ValueError, match='positive width'):
        check_target(dict(boxes=[[10, 10, 5, 20]], labels=[1]), image, 3)
    with pytest.raises(ValueError, match=r'must be in \[1, 2\]'):
        check_target(dict(boxes=[[1, 1, 5, 5]], labels=[3]), image, 3)
    with pytest.raises(ValueError, match='2 boxes but 1 labels'):
        check_target(dict(boxes=[[1, 1, 5, 5], [2, 2, 6, 6]], labels=[1]), image, 3)
    with pytest.raises(ValueError, match='NaN'):
        check_target(dict(boxes=[[1, 1, float('nan'), 5]], labels=[1]), image, 3)


def _old_flip(image, target):
    """The hand-written flip that train_transform replaced (the reference)."""
    w = image.shape[-1]
    boxes = target['boxes'].clone()
    boxes[:, [0, 2]] = w - target['boxes'][:, [2, 0]]
    return image.flip(-1), dict(target, boxes=boxes, masks=target['masks'].flip(-1))


def test_v2_flip_is_the_old_flip():
    image, target = SyntheticBoxes(1, 48, 3, seed=3, masks=True)[0]
    w = torch.zeros(3, 48, 64)
    image = torch.cat([image, w[..., :16]], -1)  # not square: the flip must use the width
    target['masks'] = torch.cat([target['masks'], torch.zeros(len(target['masks']), 48, 16, dtype=torch.uint8)], -1)
    sample = (tv_tensors.Image(image), dict(target, boxes=tv_tensors.BoundingBoxes(target['boxes'], format='XYXY',
                                                                                   canvas_size=(48, 64)),
                                            masks=tv_tensors.Mask(target['masks'])))
    flipped_image, flipped = train_transform(1.0)(*sample)
    ref_image, ref = _old_flip(image, target)
    assert torch.equal(flipped_image, ref_image) and torch.equal(flipped['boxes'], ref['boxes'])
    assert torch.equal(flipped['masks'], ref['masks']) and torch.equal(flipped['labels'], target['labels'])
    same_image, same = train_transform(0.0)(*sample)
    assert torch.equal(same_image, image) and torch.equal(same['boxes'], target['boxes'])


def _coco_folder(tmp_path):
    Image.new('RGB', (40, 30), (90, 90, 90)).save(tmp_path / 'a.png')
    ann = {'images': [{'id': 7, 'file_name': 'a.png', 'width': 40, 'height': 30}],
           'categories': [{'id': 1, 'name': 'thing'}, {'id': 3, 'name': 'other'}],
           'annotations': [
               {'id': 1, 'image_id': 7, 'category_id': 1, 'bbox': [2, 3, 10, 8], 'area': 80, 'iscrowd': 0,
                'segmentation': [[2, 3, 12, 3, 12, 11, 2, 11]]},
               {'id': 2, 'image_id': 7, 'category_id': 3, 'bbox': [20, 5, 5, 5], 'area': 25, 'iscrowd': 1,
                'segmentation': [[20, 5, 25, 5, 25, 10, 20, 10]]}]}
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    return tmp_path, tmp_path / 'ann.json'


def test_coco_dataset_drops_crowds_and_flips_with_v2(tmp_path):
    images, ann = _coco_folder(tmp_path)
    ds = CocoDetectionDataset(images, ann, masks=True)
    image, target = ds[0]
    assert type(image) is torch.Tensor and type(target['boxes']) is torch.Tensor and image.shape == (3, 30, 40)
    assert target['boxes'].tolist() == [[2.0, 3.0, 12.0, 11.0]] and target['labels'].tolist() == [1]
    assert target['image_id'] == 7 and target['masks'].shape == (1, 30, 40) and ds.coco.getImgIds() == [7]
    flipped_image, flipped = CocoDetectionDataset(images, ann, masks=True, transform=train_transform(1.0))[0]
    assert flipped['boxes'].tolist() == [[28.0, 3.0, 38.0, 11.0]] and type(flipped['masks']) is torch.Tensor
    assert torch.equal(flipped['masks'], target['masks'].flip(-1)) and torch.equal(flipped_image, image.flip(-1))


def test_cocoeval_of_perfect_detections_is_one():
    ds = SyntheticBoxes(3, 64, num_classes=3, seed=5, masks=True)
    targets = [ds[i][1] for i in range(3)]
    outputs = [dict(boxes=t['boxes'], labels=t['labels'], scores=torch.ones(len(t['boxes'])),
                    masks=t['masks'][:, None].float()) for t in targets]
    ev = CocoEvaluator(('bbox', 'segm'))
    ev.update(targets, outputs)
    out = ev.compute()
    assert out['bbox_AP'] == pytest.approx(1.0) and out['segm_AP'] == pytest.approx(1.0)
    empty = CocoEvaluator()
    empty.update(targets, [dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long),
                                scores=torch.zeros(0))] * 3)
    assert empty.compute()['bbox_AP'] == 0.0
