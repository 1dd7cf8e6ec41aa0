"""Heatmap targets, loss, geometry and decoding: encode -> decode recovers keypoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_zoo.tasks.heatmap import (decode_heatmaps, flip_back, heatmap_coords, predict_heatmaps,
                                         to_image_coords)
from hrnet_zoo.tasks.heatmap import JointsMSELoss, gaussian_heatmaps
from hrnet_zoo.tasks.pose.specs import COCO_FLIP_PAIRS
from hrnet_zoo.tasks.topdown import (affine_matrix, apply_affine, box_to_center_scale,
                                             clip_box, flip_keypoints, warp_image)

HM = (64, 48)  # heatmap (h, w) of a 256x192 input
INPUT = (256, 192)


def random_points(k=17, seed=0, margin=3):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(margin, HM[1] - 1 - margin, k), rng.uniform(margin, HM[0] - 1 - margin, k)], 1)


def test_gaussian_target_peak_sigma_and_weights():
    pts = np.array([[10.0, 20.0], [30.0, 40.0], [-30.0, 5.0]])
    t, w = gaussian_heatmaps(pts, np.array([2, 0, 1]), HM, sigma=2.0)
    assert t.shape == (3, *HM) and w.shape == (3, 1)
    assert t[0, 20, 10] == pytest.approx(1.0) and t[0, 20, 12] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert t[0, 20, 17] == 0  # cut at 3 sigma
    assert w[:, 0].tolist() == [1, 0, 0]  # unlabelled, and window wholly outside the map
    assert t[1].max() == 0 and t[2].max() == 0
    t_off, _ = gaussian_heatmaps(np.array([[10.4, 20.0]]), np.array([1]), HM, unbiased=False)
    assert t_off[0, 20, 10] == pytest.approx(1.0)  # official rounding


def test_joints_mse_loss_is_half_mse_with_target_weights():
    torch.manual_seed(0)
    pred, tgt = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]).unsqueeze(-1)
    ref = sum(0.5 * ((pred[:, k] * w[:, k, None]) - (tgt[:, k] * w[:, k, None])).pow(2).mean() for k in range(3)) / 3
    assert JointsMSELoss()(pred, tgt, w).item() == pytest.approx(ref.item(), rel=1e-6)
    assert JointsMSELoss(use_target_weight=False)(pred, tgt).item() == pytest.approx(0.5 * (pred - tgt).pow(2).mean().item())
    with pytest.raises(ValueError, match='shape'):
        JointsMSELoss()(pred, tgt[:, :2], w)


@pytest.mark.parametrize('method,tol', [('argmax', 0.5), ('quarter', 0.25 + 1e-6), ('dark', 0.1)])
def test_encode_decode_within_half_pixel_at_heatmap_resolution(method, tol):
    pts = random_points()
    t, _ = gaussian_heatmaps(pts, np.ones(len(pts)), HM, sigma=2.0)
    coords, scores = heatmap_coords(torch.from_numpy(t)[None], method)
    assert np.abs(coords[0].numpy() - pts).max() <= tol
    assert torch.allclose(scores, torch.ones_like(scores), atol=0.1)


@pytest.mark.parametrize('flip', [False, True])
@pytest.mark.parametrize('rot', [0.0, 25.0])
def test_crop_encode_decode_back_projection_within_one_input_pixel(flip, rot):
    rng = np.random.default_rng(1)
    box = [100.0, 50.0, 120.0, 200.0]
    img_pts = np.stack([rng.uniform(115, 205, 17), rng.uniform(70, 230, 17)], 1)
    center, scale = box_to_center_scale(box, aspect_ratio=INPUT[1] / INPUT[0])
    crop_pts = apply_affine(img_pts, affine_matrix(center, scale, rot, INPUT))
    hm_pts = (crop_pts + 0.5) / 4 - 0.5
    assert np.allclose(hm_pts, apply_affine(img_pts, affine_matrix(center, scale, rot, HM)))  # same map
    t, _ = gaussian_heatmaps(hm_pts, np.ones(17), HM, sigma=2.0)
    heatmaps = torch.from_numpy(t)[None]
    if flip:  # what a model sees for the mirrored crop, flipped back
        mirrored = flip_keypoints(crop_pts, INPUT[1], COCO_FLIP_PAIRS)
        tf, _ = gaussian_heatmaps((mirrored + 0.5) / 4 - 0.5, np.ones(17), HM, sigma=2.0)
        back = flip_back(torch.from_numpy(tf)[None], COCO_FLIP_PAIRS)
        assert torch.allclose(back, heatmaps, atol=1e-6)  # exact under the pixel-centre convention
        heatmaps = 0.5 * (heatmaps + back)
    for method, tol in (('quarter', 1.0), ('dark', 0.5)):
        pred, _ = decode_heatmaps(heatmaps, center[None], scale[None], method, np.array([rot]))
        # error in input (crop) pixels along each axis: quarter shift <= 1/4 heatmap px = 1 input px
        err = np.abs(apply_affine(pred[0], affine_matrix(center, scale, rot, INPUT)) - crop_pts)
        assert err.max() <= tol + 1e-6, (method, err.max())


def test_warp_image_puts_a_pixel_where_the_affine_map_says():
    img = torch.zeros(1, 100, 120)
    img[0, 40, 70] = 1.0
    center, scale = box_to_center_scale([50, 20, 40, 50], 0.75)
    m = affine_matrix(center, scale, 30.0, INPUT)
    crop = warp_image(img, m, INPUT)[0]
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(192.0), indexing='ij')
    centroid = np.array([(xs * crop).sum() / crop.sum(), (ys * crop).sum() / crop.sum()])
    assert np.allclose(centroid, apply_affine(np.array([70.0, 40.0]), m), atol=0.05)
    inv = affine_matrix(center, scale, 30.0, INPUT, inverse=True)
    assert np.allclose(apply_affine(apply_affine(np.array([[70.0, 40.0]]), m), inv), [[70.0, 40.0]])


def test_box_to_center_scale_aspect_and_padding():
    c, s = box_to_center_scale([10, 20, 30, 100], aspect_ratio=0.75)
    assert np.allclose(c, [25, 70]) and np.allclose(s, np.array([75, 100]) / 200 * 1.25)
    c, s = box_to_center_scale([0, 0, 150, 100], aspect_ratio=0.75)
    assert np.allclose(s, np.array([150, 200]) / 200 * 1.25)
    with pytest.raises(ValueError, match='no area'):
        box_to_center_scale([0, 0, 0, 10], 0.75)


def test_clip_box_documented_clipping():
    assert clip_box([-10, -5, 50, 40], 100, 80) == [0.0, 0.0, 40.0, 35.0]
    assert clip_box([90, 70, 50, 50], 100, 80) == [90.0, 70.0, 9.0, 9.0]
    assert clip_box([200, 10, 20, 20], 100, 80) is None  # wholly outside


def test_flip_test_averages_model_and_mirrored_prediction():
    class Mirror(torch.nn.Module):  # a "model" whose heatmap is its input's first channel, per keypoint
        def forward(self, x):
            return x[:, :1].repeat(1, 17, 1, 1)
    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 2, 1] = 1.0
    out = predict_heatmaps(Mirror(), x, COCO_FLIP_PAIRS, flip_test=True)
    assert torch.allclose(out, x[:, :1].repeat(1, 17, 1, 1))  # equivariant model: unchanged
    with pytest.raises(ValueError, match='flip_pairs'):
        predict_heatmaps(Mirror(), x, None, flip_test=True)


def test_to_image_coords_inverts_the_crop():
    center, scale = np.array([[50.0, 60.0]]), np.array([[0.6, 0.8]])
    img_pts = np.array([[[40.0, 50.0], [70.0, 90.0]]])
    hm = apply_affine(img_pts[0], affine_matrix(center[0], scale[0], 10.0, HM))[None]
    assert np.allclose(to_image_coords(hm, center, scale, HM, np.array([10.0])), img_pts)


def test_unknown_decode_method():
    with pytest.raises(ValueError, match='dark'):
        heatmap_coords(torch.zeros(1, 1, 4, 4), 'softargmax')
