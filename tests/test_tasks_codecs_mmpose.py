"""mmpose's heatmap conventions (hrnet_zoo.tasks.codecs.mmpose and the mmpose_* / mmpose0x_* codecs),
each difference from the official code pinned by numbers worked out from mmpose's formulas (the
arithmetic is in the comments): 1.x ``get_udp_warp_matrix``, ``UDPHeatmap``,
``generate_udp_gaussian_heatmaps``, ``refine_keypoints`` (each axis on its own),
``refine_keypoints_dark_udp``, ``get_heatmap_maximum`` (-1 for an empty map), the box cleaning of
``BaseCocoStyleDataset`` (clip) and 0.x (the official rule with ``x2 > x1``), the combined targets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hrnet_zoo.tasks.codecs import CODECS, get_codec
from hrnet_zoo.tasks.codecs import mmpose
from hrnet_zoo.tasks.heatmap import get_max_preds, quarter_offset
from hrnet_zoo.tasks.topdown import apply_affine

SIZE, HM = (256, 192), (64, 48)   # input and heatmap (H, W)
BOX = [10.0, 20.0, 90.0, 120.0]   # x, y, w, h: centre (55, 80), scale (0.5625, 0.75) after the 1.25 padding


def test_the_mmpose_codecs_and_their_rules():
    table = {name: (c.crop, c.target, c.refine, c.flip_shift, c.box_cleaning, c.mmpose, c.blur_kernel)
             for name, c in CODECS.items() if name.startswith('mmpose')}
    assert table == {
        'mmpose_msra': ('msra', 'rounded', 'quarter_axis', True, 'clip', '1.x', 11),
        'mmpose_dark': ('msra', 'dark', 'dark', True, 'clip', '1.x', 11),
        'mmpose_udp': ('mmpose_udp', 'udp', 'dark_udp', False, 'clip', '1.x', 11),
        'mmpose_udp_combined': ('mmpose_udp', 'combined', 'argmax', False, 'clip', '1.x', 11),
        'mmpose0x_msra': ('msra', 'rounded', 'quarter', True, 'sanitize_strict', '0.x', 11),
        'mmpose0x_dark': ('msra', 'dark', 'dark', True, 'sanitize_strict', '0.x', 11),
        'mmpose0x_dark_k17': ('msra', 'dark', 'dark', True, 'sanitize_strict', '0.x', 17),
        'mmpose0x_udp': ('mmpose_udp', 'udp', 'dark_udp', False, 'sanitize_strict', '0.x', 11),
        'mmpose0x_udp_k17': ('mmpose_udp', 'udp', 'dark_udp', False, 'sanitize_strict', '0.x', 17),
        'mmpose0x_udp_combined': ('mmpose_udp', 'combined', 'argmax', False, 'sanitize_strict', '0.x', 11)}
    assert all(CODECS[n].empty_at == -1.0 for n in table) and CODECS['msra'].empty_at == 0.0
    assert CODECS['mmpose_udp_combined'].maps_per_keypoint == 3 and CODECS['mmpose_udp'].maps_per_keypoint == 1


# --- the UDP crop ---------------------------------------------------------------------------------
def test_udp_crop_maps_the_box_onto_w_minus_1_pixels():
    codec = get_codec('mmpose_udp')
    center, scale = codec.center_scale(BOX, SIZE[1] / SIZE[0])
    np.testing.assert_allclose(center, [55, 80]) and np.testing.assert_allclose(scale, [0.5625, 0.75])
    m = codec.crop_matrix(center, scale, 0.0, SIZE)
    # box 112.5 x 150 px onto 191 x 255 crop px: x' = 191 / 112.5 (x - 55) + 95.5, y' = 255 / 150 (y - 80) + 127.5
    pts = np.array([[55.0, 80.0], [55 + 56.25, 80 + 75.0], [55 - 56.25, 80 - 75.0]])
    np.testing.assert_allclose(apply_affine(pts, m), [[95.5, 127.5], [191.0, 255.0], [0.0, 0.0]], atol=1e-9)
    # the official three-point crop puts the centre on (96, 128) and the box edge on 192
    official = get_codec('msra').crop_matrix(center, scale, 0.0, SIZE)
    np.testing.assert_allclose(apply_affine(pts[:2], official), [[96.0, 128.0], [192.0, 256.0]], atol=1e-9)
    # rotation by 90 degrees turns as [[cos, -sin], [sin, cos]]: (x - 55, 0) -> (0, 255 / 150 (x - 55))
    r = mmpose.udp_matrix(center, scale, 90.0, SIZE)
    np.testing.assert_allclose(apply_affine(np.array([[65.0, 80.0]]), r), [[95.5, 127.5 + 10 * 255 / 150]], atol=1e-9)
    np.testing.assert_allclose(mmpose.udp_matrix(center, scale, 30.0, SIZE, inverse=True)
                               @ np.vstack([mmpose.udp_matrix(center, scale, 30.0, SIZE), [0, 0, 1]]),
                               [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_udp_heatmap_scale_and_back_projection():
    codec = get_codec('mmpose_udp')
    # UDPHeatmap.scale_factor = (48 - 1) / (192 - 1): crop 191 -> heatmap 47, crop 95.5 -> 23.5
    np.testing.assert_allclose(codec.crop_to_heatmap(np.array([[191.0, 255.0], [95.5, 127.5]]), SIZE, HM),
                               [[47.0, 63.0], [23.5, 31.5]])
    # heatmap u -> c + (u / (w - 1) - 0.5) * S: u = 0 -> 55 - 56.25 = -1.25, u = 47 -> 111.25, y: 63 -> 155
    out = codec.to_image(np.array([[[0.0, 0.0], [47.0, 63.0], [23.5, 31.5]]]), [[55, 80]], [[0.5625, 0.75]], HM)
    np.testing.assert_allclose(out[0], [[-1.25, 5.0], [111.25, 155.0], [55.0, 80.0]], atol=1e-9)


def test_udp_targets_cut_to_the_13_pixel_window():
    # u = (10.3, 20.0): mu = int(u + 0.5) = (10, 20), window x in [int(10 - 6), int(10 + 7)) = 4 .. 16
    hm, w = mmpose.udp_heatmaps(np.array([[10.3, 20.0], [60.0, 5.0]]), np.array([1, 1]), HM)
    assert hm.shape == (2, 64, 48) and w[:, 0].tolist() == [1.0, 0.0]  # x = 60: window 54 .. 66 misses 48 columns
    row = hm[0, 20]
    np.testing.assert_allclose(row[10], math.exp(-0.3 ** 2 / 8), rtol=1e-6)   # exp(-(10 - 10.3)^2 / (2 * 2^2))
    np.testing.assert_allclose(row[4], math.exp(-6.3 ** 2 / 8), rtol=1e-5)    # first column of the window
    assert row[3] == 0 and row[17] == 0 and row[16] > 0 and not hm[1].any()
    assert hm[0, 13, 10] == 0 and hm[0, 14, 10] > 0                           # y window 14 .. 26


# --- decoding -------------------------------------------------------------------------------------
def _peak(x, y, h=8, w=8, dx=0.5, dy=0.5):
    """A map with its maximum at (x, y) and higher right / lower neighbours."""
    hm = torch.zeros(1, 1, h, w)
    hm[0, 0, y, x] = 1.0
    if x + 1 < w:
        hm[0, 0, y, x + 1] = dx
    if y + 1 < h:
        hm[0, 0, y + 1, x] = dy
    return hm


@pytest.mark.parametrize('x,y,axis_rule,official', [
    (4, 4, (4.25, 4.25), (4.25, 4.25)),   # inside: both move towards the higher neighbour
    (1, 4, (1.0, 4.25), (1.0, 4.0)),      # column 1: 1 < x fails; mmpose 1.x still moves y, the official neither
    (4, 1, (4.25, 1.0), (4.0, 1.0)),      # row 1 likewise
    (4, 0, (4.0, 0.0), (4.0, 0.0)),       # row 0: x moves only when 0 < y, so neither moves
])
def test_quarter_offset_each_axis_on_its_own(x, y, axis_rule, official):
    hm = _peak(x, y)
    coords, _ = get_max_preds(hm)
    assert mmpose.quarter_offset_per_axis(hm, coords)[0, 0].tolist() == list(axis_rule)
    assert quarter_offset(hm, coords, first=2)[0, 0].tolist() == list(official)
    assert get_codec('mmpose_msra').heatmap_coords(hm)[0][0, 0].tolist() == list(axis_rule)
    assert get_codec('mmpose0x_msra').heatmap_coords(hm)[0][0, 0].tolist() == list(official)


def test_a_map_without_a_positive_value_decodes_at_minus_one():
    hm = -torch.rand(1, 2, 8, 8)
    for name in ('mmpose_msra', 'mmpose_dark', 'mmpose0x_msra', 'mmpose0x_dark'):  # get_heatmap_maximum: -1
        coords, maxvals = get_codec(name).heatmap_coords(hm)
        assert (maxvals <= 0).all() and coords.eq(-1).all(), name
    coords, _ = get_codec('msra').heatmap_coords(hm.clone())  # the official get_max_preds: (0, 0) x 0 = 0
    assert coords.eq(0).all()


def test_blur_kernel_sigma_is_opencvs():
    # OpenCV getGaussianKernel(k, 0): sigma = 0.3 ((k - 1) / 2 - 1) + 0.8: 11 taps -> 2.0, 17 -> 0.3 * 7 + 0.8 = 2.9
    for k, sigma in ((11, 2.0), (17, 2.9)):
        g = mmpose._gaussian_kernel(k, torch.float64, 'cpu')
        t = torch.arange(k, dtype=torch.float64) - k // 2
        ref = torch.exp(-t ** 2 / (2 * sigma ** 2))
        torch.testing.assert_close(g, ref / ref.sum())
    with pytest.raises(ValueError, match='odd'):
        mmpose._gaussian_kernel(8, torch.float32, 'cpu')
    # keep_max: the blurred map is rescaled to the maximum it had (mmpose gaussian_blur)
    hm = torch.zeros(1, 1, 32, 32)
    hm[0, 0, 16, 16] = 2.0
    assert float(mmpose.gaussian_blur_cv2(hm, 11, 'zeros', keep_max=True).max()) == pytest.approx(2.0)
    assert float(mmpose.gaussian_blur_cv2(hm, 11).max()) < 0.1   # 2 * 0.1995^2 without the rescale


@pytest.mark.parametrize('generation', mmpose.GENERATIONS)
def test_dark_udp_refinement_lands_on_a_gaussian_centre(generation):
    # a Gaussian of sigma 2 at (20.3, 15.6) stays a Gaussian centred there after the blur (sigma
    # sqrt(2^2 + 2^2)); log of it is a quadratic, so the Newton step from the argmax (20, 16) lands on it
    h, w, mu = 64, 48, (20.3, 15.6)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    hm = torch.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / 8).float()[None, None]
    coords, _ = get_max_preds(hm)
    assert coords[0, 0].tolist() == [20.0, 16.0]
    out = mmpose.dark_udp_refine(hm, coords, 11, generation)
    np.testing.assert_allclose(out[0, 0].numpy(), mu, atol=2e-3)
    with pytest.raises(ValueError, match='generation'):
        mmpose.dark_udp_refine(hm, coords, 11, '2.x')


# --- ground-truth boxes ---------------------------------------------------------------------------
def test_ground_truth_box_cleaning_of_each_generation():
    # 1.x clip: [x1, y1, clip(x + w, 0, W - 1), ...]: [-5, 10, 30, 20] in 100 x 50 -> [0, 10, 25, 20]
    assert get_codec('mmpose_msra').clean_box([-5, 10, 30, 20], 100, 50) == [0, 10, 25, 20]
    # 0.x: official x1 = max(0, -5) = 0, x2 = min(W - 1, x1 + max(0, w - 1)) = 29 (from the clipped x1): [0, 10, 29, 19]
    assert get_codec('mmpose0x_msra').clean_box([-5, 10, 30, 20], 100, 50) == [0, 10, 29, 19]
    # a box narrower than a pixel: official keeps x2 >= x1 (width 0), 0.x wants x2 > x1, 1.x clips
    thin = [10, 10, 0.5, 5]
    assert get_codec('msra').clean_box(thin, 100, 50) == [10, 10, 0, 4]
    assert get_codec('mmpose0x_msra').clean_box(thin, 100, 50) is None
    assert get_codec('mmpose_msra').clean_box(thin, 100, 50) == [10, 10, 0.5, 5]


# --- combined targets (udp_regress) ---------------------------------------------------------------
def test_combined_flip_back_swaps_and_negates_x_offsets():
    hm = torch.arange(2 * 9 * 4 * 5, dtype=torch.float32).reshape(2, 9, 4, 5)
    out = mmpose.combined_flip_back(hm, [(0, 2)])
    torch.testing.assert_close(out[:, 0:3][:, 0], hm[:, 6].flip(-1))     # keypoint 0's disc = 2's, mirrored
    torch.testing.assert_close(out[:, 1], -hm[:, 7].flip(-1))            # its x offset negated
    torch.testing.assert_close(out[:, 2], hm[:, 8].flip(-1))             # its y offset kept
    torch.testing.assert_close(out[:, 3:6], torch.stack([hm[:, 3].flip(-1), -hm[:, 4].flip(-1), hm[:, 5].flip(-1)], 1))
    with pytest.raises(ValueError, match='3 maps per keypoint'):
        mmpose.combined_flip_back(hm[:, :8], [])


@pytest.mark.parametrize('generation,radius', [('1.x', 0.0546875 * 64), ('0.x', 0.0546875 * 64)])
def test_combined_decode_adds_the_offsets_times_the_radius(generation, radius):
    # a disc peaking at (20, 30) of a 48 x 64 map, offsets constant (0.25, -0.5) in radius units;
    # radius 0.0546875 * max(48, 64) = 3.5 (1.x) = 0.0546875 * H = 3.5 (0.x); keypoint (20.875, 28.25)
    h, w = 64, 48
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing='ij')
    disc = torch.exp(-((xs - 20) ** 2 + (ys - 30) ** 2) / 8)
    maps = torch.stack([disc, torch.full_like(disc, 0.25), torch.full_like(disc, -0.5)])[None]
    coords, score = mmpose.combined_decode(maps, 11, generation)
    np.testing.assert_allclose(coords[0, 0].numpy(), [20 + 0.25 * radius, 30 - 0.5 * radius], atol=1e-4)
    assert 0 < float(score) < 1
    with pytest.raises(ValueError, match='trained'):  # decoded here, not encoded
        get_codec('mmpose_udp_combined').encode(np.zeros((1, 2)), np.ones(1), [55, 80], [0.5625, 0.75], 0.0, SIZE, HM)
