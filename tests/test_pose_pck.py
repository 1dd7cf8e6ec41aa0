"""PCK, PCKh (MPII), EPE and the AUC of the PCK curve on keypoints at known distances."""
from __future__ import annotations

import numpy as np
import pytest

from hrnet_zoo.tasks.pose.pck import (MPII_JOINT_GROUPS, bbox_size, epe, head_size, mpii_pckh, pck, pck_accuracy,
                                      pck_auc, pckh)


def shifted(offsets):
    """Ground truth at 0 and predictions moved by ``offsets`` (N, K) pixels along x."""
    offsets = np.asarray(offsets, dtype=float)
    gt = np.zeros(offsets.shape + (2,))
    pred = gt.copy()
    pred[..., 0] = offsets
    return pred, gt


def test_pck_with_box_normaliser():
    # two people, three keypoints; boxes (xywh) 100x50 and 40x80 -> normalisers max(w, h) = 100, 80
    pred, gt = shifted([[10, 25, 0], [10, 20, 8]])
    boxes = [[0, 0, 100, 50], [5, 5, 40, 80]]
    assert bbox_size(boxes).tolist() == [100, 80]
    assert bbox_size([[0, 0, 100, 50]], 'xyxy').tolist() == [100]
    # normalised distances: person 0: 0.1, 0.25, 0; person 1: 0.125, 0.25, 0.1
    # PCK@0.2 per keypoint: k0 2/2, k1 0/2, k2 2/2 -> mean 2/3
    assert pck_accuracy(pred, gt, None, bbox_size(boxes), thr=0.2).tolist() == [1.0, 0.0, 1.0]
    assert pck(pred, gt, bboxes=boxes, thr=0.2) == pytest.approx(2 / 3)
    # masking k1 in both people leaves it out of the mean: (1 + 1) / 2 = 1
    assert pck(pred, gt, [[1, 0, 1], [1, 0, 1]], bboxes=boxes) == 1.0
    # the threshold is strict (mmpose `<`): 0.25 is not within 0.25
    assert pck_accuracy(pred, gt, None, bbox_size(boxes), thr=0.25).tolist() == [1.0, 0.0, 1.0]


def test_pck_normaliser_forms_and_zero_normaliser():
    pred, gt = shifted([[3, 6], [3, 6]])
    # scalar 10 -> distances 0.3, 0.6; PCK@0.5 = (1 + 0) / 2
    assert pck(pred, gt, norm=10.0, thr=0.5) == 0.5
    # (N, D) per axis (mmpose divides x and y separately): x by 20 -> 0.15, 0.3 -> both within 0.5
    assert pck(pred, gt, norm=[[20, 1], [20, 1]], thr=0.5) == 1.0
    # an instance whose normaliser is 0 is left out: person 1 only, with 0.3, 0.6 -> 0.5
    assert pck(pred, gt, norm=[0.0, 10.0], thr=0.5) == 0.5


def test_epe_is_the_mean_pixel_distance_of_visible_keypoints():
    pred, gt = shifted([[3, 4], [0, 10]])
    pred[0, 1] = [3, 4]  # a 3-4-5 triangle: 5 px
    # visible: 3, 5, 0 (10 masked) -> 8 / 3
    assert epe(pred, gt, [[1, 1], [1, 0]]) == pytest.approx(8 / 3)
    assert epe(pred, gt) == pytest.approx((3 + 5 + 0 + 10) / 4)
    assert epe(pred, gt, np.zeros((2, 2))) == 0.0  # nothing visible


def test_auc_as_mmpose_keypoint_auc():
    # thresholds i / 20 of 30 px: 0, 1.5, 3, ..., 28.5 px, strict
    pred, gt = shifted([[0.0, 4.0, 40.0]])
    # k0 (0 px) is within every threshold but 0: 19 of 20; k1 (4 px) within 4.5 px and up: 17 of 20
    # (i = 3 .. 19); k2 (40 px) never -> AUC = (19 + 17 + 0) / (3 * 20) = 0.6
    assert pck_auc(pred, gt) == pytest.approx(0.6)
    assert pck_auc(*shifted(np.zeros((4, 21)))) == pytest.approx(0.95)  # perfect: 19 / 20
    # norm_factor 10 px, 4 thresholds: 0, 2.5, 5, 7.5 px; 4 px within 5 and 7.5 -> k1 2/4
    assert pck_auc(pred[:, 1:2], gt[:, 1:2], norm_factor=10, num_thresholds=4) == pytest.approx(0.5)


def test_pckh_head_size_and_inclusive_threshold():
    # head box 0,0 .. 30,40: diagonal 50, head size 0.6 * 50 = 30
    assert head_size([[0, 0, 30, 40]]).tolist() == [30.0]
    assert head_size([[[0, 0], [30, 40]]]).tolist() == [30.0]
    pred, gt = shifted([[15, 15.5, 3]])
    # 15 / 30 = 0.5 is correct at PCKh@0.5 (official `<=`), 15.5 / 30 is not
    assert pckh(pred, gt, None, head_size([[0, 0, 30, 40]]), thr=0.5).tolist() == [1.0, 0.0, 1.0]


def test_mpii_table():
    # 2 people, 16 joints; head size 30 for both (box 30x40, x 0.6)
    off = np.zeros((2, 16))
    off[0, 9] = 20             # head_top 20 / 30 > 0.5: wrong for person 0
    off[:, [12, 13]] = 6       # shoulders 0.2: right at 0.5, wrong at 0.1
    off[1, 0] = 100            # person 1's right ankle far off
    off[:, [6, 7]] = 100       # pelvis, thorax far off: in no group and not in the mean
    mask = np.ones((2, 16))
    mask[1, 5] = 0             # person 1's left ankle not annotated
    table = mpii_pckh(*shifted(off), mask, [[0, 0, 30, 40]] * 2)
    assert table['Head'] == 0.5                     # 1 of 2
    assert table['Shoulder'] == 1.0
    assert table['Ankle'] == pytest.approx((1 / 2 + 1 / 1) / 2)  # right 1/2, left 1/1
    # Mean over the 14 counted joints: 28 - 1 (masked) = 27 visible, 2 wrong (head 0, ankle 1) -> 25 / 27
    assert table['Mean'] == pytest.approx(25 / 27)
    # Mean@0.1 also drops the 4 shoulders (0.2 > 0.1) -> 21 / 27
    assert table['Mean@0.1'] == pytest.approx(21 / 27)
    assert set(table) == set(MPII_JOINT_GROUPS) | {'Mean', 'Mean@0.1'}


def test_shape_and_argument_errors():
    pred, gt = shifted(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r'\(N, K, D\)'):
        pck(pred[:, :2], gt, norm=1.0)
    with pytest.raises(ValueError, match='mask'):
        epe(pred, gt, np.ones((2, 2)))
    with pytest.raises(ValueError, match='one normaliser'):
        pck(pred, gt)
    with pytest.raises(ValueError, match='normaliser of shape'):
        pck(pred, gt, norm=np.ones(3))
    with pytest.raises(ValueError, match='negative'):
        pck(pred, gt, norm=[-1.0, 1.0])
    with pytest.raises(ValueError, match='boxes must be'):
        bbox_size([1, 2, 3, 4])
    with pytest.raises(ValueError, match='16 joints'):
        mpii_pckh(pred, gt, None, [[0, 0, 1, 1]] * 2)
    assert pck(pred, gt, np.zeros((2, 3)), norm=1.0) == 0.0  # nothing visible
