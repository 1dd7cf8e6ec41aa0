"""OKS-NMS (hrnet_zoo.tasks.pose.nms) against numbers worked out by hand from the official formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hrnet_zoo.tasks.pose.nms import oks_iou, oks_nms, soft_oks_nms

# Two keypoints, sigmas 0.1 and 0.2 -> vars = (2 * sigma)^2 = 0.04 and 0.16.
SIGMAS = [0.1, 0.2]
POSE_A = np.array([[0.0, 0.0, 1.0], [10.0, 0.0, 1.0]])
POSE_B = np.array([[3.0, 4.0, 1.0], [10.0, 6.0, 1.0]])   # d^2 = 3^2 + 4^2 = 25 and 6^2 = 36
AREA_A, AREA_B = 100.0, 300.0                            # mean area 200
# e = d^2 / vars / mean_area / 2: 25 / 0.04 / 200 / 2 = 1.5625, 36 / 0.16 / 200 / 2 = 0.5625
E1, E2 = 1.5625, 0.5625
# OKS = (exp(-1.5625) + exp(-0.5625)) / 2 = (0.2096114 + 0.5697828) / 2 = 0.3896971
OKS_AB = 0.3896971059
# Soft-NMS with thresh 0.5 rescores B's 0.8 to 0.8 * exp(-0.3896971^2 / 0.5) = 0.8 * exp(-0.3037277)
SOFT_B = 0.5904495


def far_apart(n, k=2, step=1000.0):
    """``n`` copies of pose A, each moved ``step`` px further right (OKS between them ~ 0)."""
    kp = np.repeat(POSE_A[None, :k], n, axis=0)
    kp[:, :, 0] += step * np.arange(n)[:, None]
    return kp


def test_oks_matches_hand_computation():
    assert math.exp(-E1) == pytest.approx(0.2096114, abs=1e-7)
    assert math.exp(-E2) == pytest.approx(0.5697828, abs=1e-7)
    oks = oks_iou(POSE_A, POSE_B[None], AREA_A, [AREA_B], sigmas=SIGMAS)
    assert oks.shape == (1,) and oks.dtype == np.float64
    assert oks[0] == pytest.approx(OKS_AB, abs=1e-9)


def test_oks_is_vectorised_over_poses():
    others = np.stack([POSE_A, POSE_B, POSE_B + [5000.0, 0.0, 0.0]])
    oks = oks_iou(POSE_A, others, AREA_A, [AREA_A, AREA_B, AREA_B], sigmas=SIGMAS)
    np.testing.assert_allclose(oks, [1.0, OKS_AB, 0.0], atol=1e-9)


def test_oks_vis_thresh_counts_only_the_other_poses_visible_keypoints():
    b = POSE_B.copy()
    b[1, 2] = 0.1                       # B's second keypoint below 0.5: only e1 counts
    oks = oks_iou(POSE_A, b[None], AREA_A, [AREA_B], sigmas=SIGMAS, vis_thresh=0.5)
    assert oks[0] == pytest.approx(math.exp(-E1), abs=1e-9)
    a = POSE_A.copy()
    a[:, 2] = 0.0                       # the reference pose's visibility plays no part (official)
    assert oks_iou(a, POSE_B[None], AREA_A, [AREA_B], sigmas=SIGMAS, vis_thresh=0.5)[0] == \
        pytest.approx(OKS_AB, abs=1e-9)
    b[:, 2] = 0.0                       # nothing counted -> 0
    assert oks_iou(POSE_A, b[None], AREA_A, [AREA_B], sigmas=SIGMAS, vis_thresh=0.5)[0] == 0.0


def test_oks_default_sigmas_are_cocos_17():
    coco = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                     .87, .87, .89, .89]) / 10.0
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 50, (17, 2)), np.ones((17, 1))], axis=1)
    b = a[None] + np.concatenate([rng.normal(0, 3, (4, 17, 2)), np.zeros((4, 17, 1))], axis=2)
    np.testing.assert_array_equal(oks_iou(a, b, 900.0, [800.0] * 4),
                                  oks_iou(a, b, 900.0, [800.0] * 4, sigmas=coco))
    with pytest.raises(ValueError, match='2 keypoints but sigmas has shape'):
        oks_iou(POSE_A, POSE_B[None], AREA_A, [AREA_B])


def test_identical_duplicates_are_suppressed():
    kp = np.stack([POSE_A, POSE_A, POSE_A])
    keep = oks_nms(kp, [0.5, 0.9, 0.7], [AREA_A] * 3, sigmas=SIGMAS)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, [1])


def test_far_apart_people_are_kept_best_score_first():
    scores = [0.3, 0.9, 0.1, 0.6, 0.8]
    keep = oks_nms(far_apart(5), scores, [AREA_A] * 5, sigmas=SIGMAS)
    np.testing.assert_array_equal(keep, [1, 4, 3, 0, 2])


def test_equal_scores_come_last_index_first_as_official():
    keep = oks_nms(far_apart(3), [0.5, 0.5, 0.5], [AREA_A] * 3, sigmas=SIGMAS)
    np.testing.assert_array_equal(keep, [2, 1, 0])


def test_threshold_edge_oks_equal_to_thresh_survives():
    kp, areas = np.stack([POSE_A, POSE_B]), [AREA_A, AREA_B]
    oks = oks_iou(POSE_A, POSE_B[None], AREA_A, [AREA_B], sigmas=SIGMAS)[0]
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8], areas, oks, SIGMAS), [0, 1])
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8], areas, np.nextafter(oks, 0), SIGMAS), [0])
    # identical poses have OKS exactly 1: kept only at thresh 1
    dup = np.stack([POSE_A, POSE_A])
    np.testing.assert_array_equal(oks_nms(dup, [0.9, 0.8], [AREA_A] * 2, 1.0, SIGMAS), [0, 1])
    np.testing.assert_array_equal(oks_nms(dup, [0.9, 0.8], [AREA_A] * 2, np.nextafter(1.0, 0), SIGMAS), [0])


def test_greedy_compares_only_with_kept_poses():
    # B overlaps A (OKS 0.39) and is dropped at thresh 0.3; a far pose C survives
    kp = np.stack([POSE_A, POSE_B, POSE_A + [5000.0, 0.0, 0.0]])
    areas = [AREA_A, AREA_B, AREA_A]
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8, 0.7], areas, 0.3, SIGMAS), [0, 2])
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8, 0.7], areas, 0.5, SIGMAS), [0, 1, 2])


def test_nms_vis_thresh():
    b = POSE_B.copy()
    b[1, 2] = 0.1                       # with vis_thresh 0.5 the OKS of B drops to exp(-1.5625) = 0.21
    kp, areas = np.stack([POSE_A, b]), [AREA_A, AREA_B]
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8], areas, 0.3, SIGMAS), [0])
    np.testing.assert_array_equal(oks_nms(kp, [0.9, 0.8], areas, 0.3, SIGMAS, vis_thresh=0.5), [0, 1])


@pytest.mark.parametrize('score_c, expected', [(SOFT_B + 5e-5, [0, 2, 1]), (SOFT_B - 5e-5, [0, 1, 2])])
def test_soft_nms_gaussian_rescoring(score_c, expected):
    # after A is picked, B (OKS 0.3897 with A) is rescored to 0.5904495; C (far) keeps its score
    kp = np.stack([POSE_A, POSE_B, POSE_A + [5000.0, 0.0, 0.0]])
    keep = soft_oks_nms(kp, [0.9, 0.8, score_c], [AREA_A, AREA_B, AREA_A], 0.5, SIGMAS)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, expected)


def test_soft_nms_keeps_duplicates_and_at_most_20():
    dup = np.stack([POSE_A] * 3)
    np.testing.assert_array_equal(soft_oks_nms(dup, [0.7, 0.9, 0.8], [AREA_A] * 3, sigmas=SIGMAS), [1, 2, 0])
    scores = np.linspace(0.1, 0.9, 30)
    keep = soft_oks_nms(far_apart(30), scores, [AREA_A] * 30, sigmas=SIGMAS)
    np.testing.assert_array_equal(keep, np.arange(29, 9, -1))
    assert len(oks_nms(far_apart(30), scores, [AREA_A] * 30, sigmas=SIGMAS)) == 30
    assert len(soft_oks_nms(far_apart(30), scores, [AREA_A] * 30, sigmas=SIGMAS, max_dets=5)) == 5


@pytest.mark.parametrize('nms', [oks_nms, soft_oks_nms])
def test_empty_input(nms):
    for kp in (np.zeros((0, 17, 3)), np.zeros(0)):
        keep = nms(kp, np.zeros(0), np.zeros(0))
        assert keep.shape == (0,) and keep.dtype == np.int64


@pytest.mark.parametrize('nms', [oks_nms, soft_oks_nms])
@pytest.mark.parametrize('keypoints, scores, areas, message', [
    (np.zeros((2, 2, 2)), [0.9, 0.8], [1.0, 1.0], r'keypoints must have shape \(M, K, 3\)'),
    (np.zeros((2, 6)), [0.9, 0.8], [1.0, 1.0], r'keypoints must have shape \(M, K, 3\)'),
    (np.zeros((2, 2, 3)), [0.9], [1.0, 1.0], r'scores must have shape \(2,\)'),
    (np.zeros((2, 2, 3)), [[0.9, 0.8]], [1.0, 1.0], r'scores must have shape \(2,\)'),
    (np.zeros((2, 2, 3)), [0.9, 0.8], [1.0, 1.0, 1.0], r'areas must have shape \(2,\)'),
    (np.zeros((2, 2, 3)), [0.9, 0.8], [1.0, -1.0], 'areas must be non-negative'),
    (np.zeros((2, 2, 3)), [0.9, np.nan], [1.0, 1.0], 'scores contain NaN'),
])
def test_bad_input(nms, keypoints, scores, areas, message):
    with pytest.raises(ValueError, match=message):
        nms(keypoints, scores, areas, sigmas=SIGMAS)


def test_bad_sigmas_and_thresh():
    kp = np.stack([POSE_A, POSE_B])
    with pytest.raises(ValueError, match='2 keypoints but sigmas has shape'):
        oks_nms(kp, [0.9, 0.8], [AREA_A, AREA_B])                      # COCO's 17 by default
    with pytest.raises(ValueError, match='2 keypoints but sigmas has shape'):
        oks_nms(kp, [0.9, 0.8], [AREA_A, AREA_B], sigmas=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='sigmas must be positive'):
        oks_nms(kp, [0.9, 0.8], [AREA_A, AREA_B], sigmas=[0.1, 0.0])
    with pytest.raises(ValueError, match='Gaussian width\\) must be positive'):
        soft_oks_nms(kp, [0.9, 0.8], [AREA_A, AREA_B], 0.0, SIGMAS)


def test_oks_iou_bad_input():
    with pytest.raises(ValueError, match=r'keypoints_a must have shape \(K, 3\)'):
        oks_iou(POSE_A[None], POSE_B[None], AREA_A, [AREA_B], sigmas=SIGMAS)
    with pytest.raises(ValueError, match='keypoints_a has 2 keypoints but keypoints_b has 1'):
        oks_iou(POSE_A, POSE_B[None, :1], AREA_A, [AREA_B], sigmas=SIGMAS)
    with pytest.raises(ValueError, match=r'areas_b must have shape \(1,\)'):
        oks_iou(POSE_A, POSE_B[None], AREA_A, [AREA_B, AREA_B], sigmas=SIGMAS)
    with pytest.raises(ValueError, match='area_a must be non-negative'):
        oks_iou(POSE_A, POSE_B[None], -1.0, [AREA_B], sigmas=SIGMAS)
