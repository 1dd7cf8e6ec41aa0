"""evaluate_keypoints: the field's metric of the model's keypoint set on small synthetic sets the
test writes (mmpose's COCO-style JSON, MPII's own JSON with head boxes): PCK@0.2 / AUC / EPE for a
hand set on its boxes, PCKh@0.5 for MPII by head boxes, NME by two keypoints for Horse-10, OKS AP
for an animal set with its sigmas. The predictions are the ground truth moved by known offsets (the
network is replaced), so every figure is worked out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_zoo.tasks.keypoints import get_keypoint_set
from hrnet_zoo.tasks.pose import evaluate as ev
from hrnet_zoo.tasks.pose.data import COCOKeypoints, MPIIKeypoints


def _images(tmp_path, n=2, size=(120, 100)):
    for i in range(n):
        Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / f'{i}.jpg')


def _coco_style(tmp_path, k, boxes, rng):
    """mmpose's COCO-style file (no keypoint names in the category, as its hand / animal files)."""
    anns, kpts = [], []
    for i, (x, y, w, h) in enumerate(boxes):
        pts = np.stack([rng.uniform(x + 5, x + w - 5, k), rng.uniform(y + 5, y + h - 5, k)], 1)
        kpts.append(pts)
        flat = np.concatenate([pts, np.full((k, 1), 2.0)], 1).reshape(-1).tolist()
        anns.append({'id': i + 1, 'image_id': i, 'category_id': 1, 'bbox': [x, y, w, h], 'area': w * h,
                     'iscrowd': 0, 'num_keypoints': k, 'keypoints': flat})
    data = {'images': [{'id': i, 'file_name': f'{i}.jpg', 'width': 120, 'height': 100} for i in range(len(boxes))],
            'annotations': anns, 'categories': [{'id': 1, 'name': 'thing'}]}
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(data))
    return str(path), np.stack(kpts)


def _oracle(monkeypatch, keypoints, offset):
    """predict_dataset -> the ground truth moved by ``offset`` (N, K, 2) px."""
    def fake(model, dataset, *args, **kwargs):
        n, k = keypoints.shape[:2]
        return {'image_ids': np.array([s['image_id'] for s in dataset.samples]), 'keypoints': keypoints + offset,
                'scores': np.ones((n, k)), 'box_scores': np.ones(n), 'areas': np.ones(n)}
    monkeypatch.setattr(ev, 'predict_dataset', fake)


class _Model(torch.nn.Module):
    def __init__(self, kps):
        super().__init__()
        self.pretrained_cfg = {'keypoint_set': kps, 'codec': 'mmpose0x_msra', 'num_outputs': get_keypoint_set(kps).num_keypoints}
        self.input_size = (64, 64)


def test_hand_set_reports_pck_auc_epe_on_its_boxes(tmp_path, monkeypatch):
    _images(tmp_path)
    ann, gt = _coco_style(tmp_path, 21, [[10, 10, 50, 40], [20, 20, 80, 60]], np.random.default_rng(0))
    ds = COCOKeypoints(ann, str(tmp_path), (64, 64), keypoint_set='onehand10k', codec='mmpose0x_msra')
    # person 0: 11 keypoints off by 12 px along x, 10 exact; box size max(50, 40) = 50 (0.x takes the box
    # as given: [10, 10, 50, 40] -> the official sanitize w - 1 = 49: PCK threshold 0.2 * 49 = 9.8 px < 12)
    off = np.zeros_like(gt)
    off[0, :11, 0] = 12.0
    _oracle(monkeypatch, gt, off)
    stats = ev.evaluate_keypoints(_Model('onehand10k'), ds)
    assert set(stats) == {'PCK@0.2', 'AUC', 'EPE'}
    assert stats['PCK@0.2'] == pytest.approx(31 / 42)           # 11 of 42 keypoints miss
    assert stats['EPE'] == pytest.approx(11 * 12 / 42)          # mean distance over the 42
    # AUC (mmpose keypoint_auc): PCK at the thresholds 0, 0.05, ..., 0.95 of 30 px, counting d / 30 < thr
    # strictly: none at 0, 31 / 42 at 0.05 .. 0.40 (8 steps; 12 / 30 = 0.4 is not < 0.4), all at 0.45 .. 0.95 (11)
    assert stats['AUC'] == pytest.approx((8 * 31 / 42 + 11) / 20)


def test_horse10_nme_by_two_keypoints(tmp_path, monkeypatch):
    _images(tmp_path)
    ann, gt = _coco_style(tmp_path, 22, [[10, 10, 60, 60], [20, 20, 80, 60]], np.random.default_rng(1))
    ds = COCOKeypoints(ann, str(tmp_path), (64, 64), keypoint_set='horse10', codec='mmpose0x_msra')
    off = np.zeros_like(gt)
    off[:, :, 1] = 1.0  # every keypoint 1 px off: NME = mean(1 / |kp0 - kp1|) over the instances
    _oracle(monkeypatch, gt, off)
    stats = ev.evaluate_keypoints(_Model('horse10'), ds)
    d = np.linalg.norm(gt[:, 0] - gt[:, 1], axis=1)
    assert stats['NME'] == pytest.approx(np.mean(1 / d))
    assert stats['PCK@0.3'] == pytest.approx(np.mean(1 / d < 0.3))  # a keypoint counts when 1 px / d < 0.3


def test_mpii_pckh_by_head_boxes(tmp_path, monkeypatch):
    _images(tmp_path)
    rng = np.random.default_rng(2)
    people = []
    joints = rng.uniform(30, 70, (2, 16, 2))
    for i in range(2):  # MPII's JSON: 1-based joints, centre and scale (200 px units)
        people.append({'image': f'{i}.jpg', 'joints': (joints[i] + 1).tolist(), 'joints_vis': [1] * 16,
                       'center': [50.0, 50.0], 'scale': 0.3})
    (tmp_path / 'mpii.json').write_text(json.dumps(people))
    heads = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], dtype=float)  # head size 0.6 * diag: 8.485, 16.97
    ds = MPIIKeypoints(str(tmp_path / 'mpii.json'), str(tmp_path), (64, 64), head_boxes=heads, codec='mmpose0x_msra')
    np.testing.assert_allclose(ds.samples[0]['keypoints'][:, :2], joints[0])  # 0-based
    off = np.zeros((2, 16, 2))
    off[:, :, 0] = 6.0  # 6 px: within 0.5 * 16.97 (person 1), not within 0.5 * 8.485 = 4.24 (person 0)
    _oracle(monkeypatch, joints, off)
    stats = ev.evaluate_keypoints(_Model('mpii'), ds)
    assert stats['Mean'] == pytest.approx(0.5) and stats['Head'] == pytest.approx(0.5)  # person 1 right, 0 wrong
    with pytest.raises(ValueError, match='head boxes'):
        ev.evaluate_keypoints(_Model('mpii'), MPIIKeypoints(str(tmp_path / 'mpii.json'), str(tmp_path), (64, 64)))


def test_animal_set_oks_ap_with_its_sigmas(tmp_path, monkeypatch):
    _images(tmp_path)
    ann, gt = _coco_style(tmp_path, 17, [[10, 10, 60, 60], [20, 20, 80, 60]], np.random.default_rng(3))
    ds = COCOKeypoints(ann, str(tmp_path), (64, 64), keypoint_set='ap10k', codec='mmpose0x_msra')
    _oracle(monkeypatch, gt, np.zeros_like(gt))
    stats = ev.evaluate_keypoints(_Model('ap10k'), ds)
    assert stats['AP'] == pytest.approx(1.0)  # exact keypoints: OKS 1 under any sigmas
