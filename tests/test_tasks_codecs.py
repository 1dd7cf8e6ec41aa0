"""The heatmap codecs, pinned by numbers worked out from the official formulas (the arithmetic is in
the comments): deep-high-resolution-net.pytorch (msra), UDP, DARK and HRNet-Facial-Landmark-Detection
(face); and the codec travelling with specs, pretrained_cfg, checkpoints and the --codec flag."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hrnet_zoo
from hrnet_zoo.tasks.codecs import (CODECS, DEFAULT_CODEC, apply_checkpoint_codec, checkpoint_codec, get_codec,
                                    resolve_codec)
from hrnet_zoo.tasks.codecs import face
from hrnet_zoo.tasks.heatmap import dark_refine, flip_back, gaussian_heatmaps, get_max_preds, quarter_offset
from hrnet_zoo.tasks.topdown import apply_affine, crop_box

SIZE, HM = (256, 192), (64, 48)   # input and heatmap (H, W)
BOX = [10.0, 20.0, 90.0, 120.0]   # x, y, w, h


def test_table_has_the_named_codecs_and_bad_names_fail():
    assert {'msra', 'dark', 'udp', 'udp_dark', 'face', 'face_continuous'} <= set(CODECS)
    assert DEFAULT_CODEC == 'udp' and get_codec() is CODECS['udp']
    with pytest.raises(ValueError, match='unknown heatmap codec'):
        get_codec('unbiased')
    assert get_codec('msra', 'dark').refine == 'dark' and get_codec('msra', 'dark').crop == 'msra'
    with pytest.raises(ValueError, match='decode method'):
        get_codec('msra', 'softargmax')


# --- box -> centre/scale -> crop matrix ------------------------------------------------------------
@pytest.mark.parametrize('name,lands', [('msra', (96.0, 128.0)), ('dark', (96.0, 128.0)),
                                        ('udp', (95.5, 127.5)), ('udp_dark', (95.5, 127.5))])
def test_box_centre_lands_where_the_convention_says(name, lands):
    # box [10, 20, 90, 120]: centre (10 + 45, 20 + 60) = (55, 80); w / h = 0.75 = 192 / 256 already,
    # scale = (90, 120) / 200 * 1.25 = (0.5625, 0.75); crop scale s = 192 / (0.5625 * 200) = 1.70667
    codec = get_codec(name)
    center, scale = codec.center_scale(BOX, SIZE[1] / SIZE[0])
    assert np.allclose(center, [55, 80]) and np.allclose(scale, [0.5625, 0.75])
    m = codec.crop_matrix(center, scale, 0.0, SIZE)
    s = 192 / 112.5
    # msra (get_affine_transform): centre -> (W/2, H/2) = (96, 128), translation 96 - 55 s = 2.1333,
    # 128 - 80 s = -8.5333; udp: centre -> ((W-1)/2, (H-1)/2) = (95.5, 127.5): half a pixel less
    assert np.allclose(m, [[s, 0, lands[0] - 55 * s], [0, s, lands[1] - 80 * s]])
    assert np.allclose(apply_affine(center, m), lands)
    # inverse: crop (0, 0) -> image (55 - 96 / s, 80 - 128 / s) = (-1.25, 5.0) under msra
    inv = codec.crop_matrix(center, scale, 0.0, SIZE, inverse=True)
    assert np.allclose(apply_affine([lands[0] - 96, lands[1] - 128], inv), [-1.25, 5.0])


def test_msra_heatmap_back_projection_is_transform_preds():
    # transform_preds: the msra matrix built for the 48 x 64 heatmap: s_h = 48 / 112.5, centre (24, 32);
    # heatmap (20.25, 30.25) -> (55 + (20.25 - 24) * 2.34375, 80 + (30.25 - 32) * 2.34375) = (46.2109375, 75.8984375)
    # udp: centre (23.5, 31.5) -> (55 - 3.25 * 2.34375, 80 - 1.25 * 2.34375) = (47.3828125, 77.0703125)
    c, s = np.array([[55.0, 80.0]]), np.array([[0.5625, 0.75]])
    coords = np.array([[[20.25, 30.25]]])
    assert np.allclose(get_codec('msra').to_image(coords, c, s, HM), [[[46.2109375, 75.8984375]]])
    assert np.allclose(get_codec('udp').to_image(coords, c, s, HM), [[[47.3828125, 77.0703125]]])


def test_ground_truth_box_cleaning():
    msra, udp = get_codec('msra'), get_codec('udp')
    # official sanitizing: x2 = min(W - 1, x1 + max(0, w - 1)): [10, 20, 80, 100] -> x2 = 89, y2 = 119
    assert msra.clean_box([10, 20, 80, 100], 640, 480) == [10.0, 20.0, 79.0, 99.0]
    # x1 = max(0, -5) = 0 but x2 = 0 + (50 - 1) = 49: the official box moves right when clipped;
    # udp clips: x2 = min(99, -5 + 50) = 45
    assert msra.clean_box([-5, -3, 50, 40], 100, 80) == [0.0, 0.0, 49.0, 39.0]
    assert udp.clean_box([-5, -3, 50, 40], 100, 80) == [0.0, 0.0, 45.0, 37.0]
    assert msra.clean_box([200, 10, 20, 20], 100, 80) is None       # x2 = 99 < x1 = 200
    assert msra.clean_box([10, 10, 20, 20], 100, 80, area=0) is None  # the annotation's area must be > 0
    # a box under one pixel wide is kept (x2 = x1) and grows from its height, as _xywh2cs does
    line = msra.clean_box([10, 20, 0.5, 30], 100, 80)
    assert line == [10.0, 20.0, 0.0, 29.0]
    center, scale = msra.center_scale(line, 0.75)
    assert np.allclose(center, [10, 34.5]) and np.allclose(scale, np.array([29 * 0.75, 29]) / 200 * 1.25)
    with pytest.raises(ValueError, match='no area'):
        udp.center_scale(line, 0.75)


def test_msra_crop_samples_like_warp_affine():
    # a pixel at image (55, 80), the box centre, lands on crop pixel (96, 128) under msra, and the
    # sampling is bilinear with pixel centres at integer coordinates (cv2.warpAffine INTER_LINEAR)
    image = torch.zeros(1, 200, 150)
    image[0, 80, 55] = 1.0
    crop, _, _ = get_codec('msra').crop_box(image, BOX, SIZE)
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(192.0), indexing='ij')
    centroid = [float((xs * crop[0]).sum() / crop[0].sum()), float((ys * crop[0]).sum() / crop[0].sum())]
    assert np.allclose(centroid, [96, 128], atol=1e-3)
    udp_crop, _, _ = get_codec('udp').crop_box(image, BOX, SIZE)
    assert torch.equal(udp_crop, crop_box(image, BOX, SIZE)[0])  # udp is the crop of before


# --- targets --------------------------------------------------------------------------------------
def test_msra_targets_round_and_cut_as_generate_target():
    # centre int(x / 4 + 0.5): crop x 41.9 -> int(10.975) = 10; 42 -> int(11.0) = 11; -3 -> int(-0.25) = 0
    # (truncation, not floor); 13-pixel window (sigma 2: c - 6 .. c + 6)
    xs = np.array([41.9, 42.0, -3.0])
    hm_x = get_codec('msra').crop_to_heatmap(np.stack([xs, np.full(3, 80.0)], 1), SIZE, HM)
    t, w = gaussian_heatmaps(hm_x, np.ones(3), HM, sigma=2.0, unbiased=False)
    assert [int(np.argmax(t[k, 20])) for k in range(3)] == [10, 11, 0]
    assert t[0, 20, 10] == 1.0 and np.nonzero(t[0, 20])[0].tolist() == list(range(4, 17))
    assert t[0, 20, 12] == pytest.approx(np.exp(-4 / 8))
    # weight 0 when the window is off the map: mu = -8 (ul = -14, br = -1 < 0) or mu = 48 + 6 = 54
    # (ul = 48 >= w); mu = -7 keeps weight 1 with an empty map (window -13 .. -1), as the official code
    _, w = gaussian_heatmaps(np.array([[-8.0, 5], [54, 5], [-7, 5], [53, 5]]), np.ones(4), HM, unbiased=True,
                             window='official')
    assert w[:, 0].tolist() == [0, 0, 1, 1]


def test_official_window_moves_a_gaussian_near_the_border():
    # sigma 1.5: r = 4.5, window [int(c - 4.5), int(c + 5.5)), the Gaussian on its pixel 10 // 2 = 5:
    # c = 10 -> window 5 .. 14, centre 10; c = 3 -> int(-1.5) = -1 (truncation), window -1 .. 7, centre
    # -1 + 5 = 4: the official face targets of landmarks near the border sit one pixel inside
    t, _ = gaussian_heatmaps(np.array([[10.0, 10.0], [3.0, 10.0]]), np.ones(2), (32, 32), 1.5, window='official')
    assert int(np.argmax(t[0, 10])) == 10 and int(np.argmax(t[1, 10])) == 4
    assert np.nonzero(t[0, 10])[0].tolist() == list(range(5, 15))
    assert np.nonzero(t[1, 10])[0].tolist() == list(range(0, 8))


def test_codec_encode_from_image_points():
    # image point (55 + 13.9 / s, 80): msra crop x = 96 + 13.9 = 109.9 -> heatmap 27.475 -> int(27.975) = 27;
    # dark: 27.475, sub-pixel over the whole map; udp: crop x = 95.5 + 13.9 = 109.4 -> (109.4 + 0.5) / 4 - 0.5
    # = 26.975, sub-pixel within 3 sigma
    c, s = np.array([55.0, 80.0]), np.array([0.5625, 0.75])
    pt = np.array([[55 + 13.9 * 112.5 / 192, 80.0]])
    expect = {'msra': 27.0, 'udp': 26.975, 'dark': 27.475}
    for name, u in expect.items():
        t, w = get_codec(name).encode(pt, np.ones(1), c, s, 0.0, SIZE, HM)
        row = t[0, 32].astype(np.float64)
        assert w[0, 0] == 1.0
        if name == 'msra':
            assert int(np.argmax(row)) == 27 and row[27] == 1.0
        else:  # a Gaussian's centre from two neighbours: u - x = ln(r[x+1] / r[x-1]) * sigma^2 / 2
            x = int(np.argmax(row))
            assert x + np.log(row[x + 1] / row[x - 1]) * 2 == pytest.approx(u, abs=1e-4)
    # dark's Gaussian covers the whole map, udp's stops at 3 sigma: column 35 is 7.5 px from 27.475
    assert get_codec('dark').encode(pt, np.ones(1), c, s, 0.0, SIZE, HM)[0][0, 32, 35] > 0
    assert get_codec('udp').encode(pt, np.ones(1), c, s, 0.0, SIZE, HM)[0][0, 32, 35] == 0


# --- decode: argmax, quarter offset, border rules, flip test ---------------------------------------
def peak_map(x, y, h=10, w=12):
    """One map with its maximum 1 at (x, y), 0.5 right of / below it and 0.2 left of / above it."""
    m = torch.zeros(1, 1, h, w)
    m[0, 0, y, x] = 1.0
    for dx, v in ((1, 0.5), (-1, 0.2)):
        if 0 <= x + dx < w:
            m[0, 0, y, x + dx] = v
        if 0 <= y + dx < h:
            m[0, 0, y + dx, x] = v
    return m


@pytest.mark.parametrize('x,pose,face_rule', [(0, False, False), (1, False, True), (2, True, True),
                                              (10, True, True), (11, False, False)])
def test_quarter_offset_border_rules(x, pose, face_rule):
    # w = 12: pose (get_final_preds) moves maxima with 1 < px < w - 1 = 11 (and 1 < py < h - 1), i.e.
    # columns 2..10; face (decode_preds, 1-based px > 1 and px < 12) columns 1..10; a quarter pixel
    # towards the higher neighbour along both axes, or along neither
    m = peak_map(x, 5)
    coords, _ = get_max_preds(m)
    assert quarter_offset(m, coords, first=2)[0, 0].tolist() == [x + 0.25 * pose, 5 + 0.25 * pose]
    assert quarter_offset(m, coords, first=1)[0, 0].tolist() == [x + 0.25 * face_rule, 5 + 0.25 * face_rule]
    # rows too: a maximum on row 1 moves under the face rule only
    m = peak_map(5, 1)
    c, _ = get_max_preds(m)
    assert quarter_offset(m, c, first=2)[0, 0].tolist() == [5.0, 1.0]
    assert quarter_offset(m, c, first=1)[0, 0].tolist() == [5.25, 1.25]


def test_flip_back_with_and_without_the_official_shift():
    # a mirrored-input heatmap peaking at column 27 of 48 comes back at 48 - 1 - 27 = 20; SHIFT_HEATMAP
    # moves every column one right (out[..., 1:] = out[..., :-1]): 21; column 0 keeps its own value
    b = torch.zeros(1, 17, 64, 48)
    b[0, 3, 30, 27] = 1.0   # channel 3 (left ear) is channel 4 (right ear) of the mirrored image
    b[0, 0, 5, 47] = 0.7
    plain = flip_back(b, ((3, 4),))
    shifted = flip_back(b, ((3, 4),), shift=True)
    assert plain[0, 4, 30, 20] == 1 and shifted[0, 4, 30, 21] == 1 and shifted[0, 4, 30, 20] == 0
    assert plain[0, 0, 5, 0] == 0.7 and shifted[0, 0, 5, 0] == 0.7 and shifted[0, 0, 5, 1] == 0.7


class Mirror(torch.nn.Module):
    """Heatmap A for a batch marked in its first column, B for its mirror."""

    def __init__(self, a, b, codec):
        super().__init__()
        self.a, self.b, self.flip_pairs, self.pretrained_cfg = a, b, (), {'codec': codec}
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.a if x[0, 0, 0, 0] > 0.5 else self.b


@pytest.mark.parametrize('codec,plain,flipped', [('msra', (45.625, 75.8984375), (46.2109375, 75.8984375)),
                                                  ('udp', (46.796875, 77.0703125), (46.796875, 77.0703125))])
def test_decoded_keypoint_with_and_without_the_flip_shift(codec, plain, flipped):
    from hrnet_zoo.tasks.pose.evaluate import keypoints_of_crops
    # A: a maximum 1 at heatmap (20, 30), 0.5 below and 0.2 above it, nothing left or right: (20, 30.25).
    # The mirrored prediction B peaks at column 47 - 20 = 27. msra: flipped back to 20 and shifted to 21,
    # the mean is 0.5 at columns 20 and 21 of row 30: argmax 20 (the first), right neighbour higher ->
    # (20.25, 30.25). udp: B comes back on column 20 itself: (20, 30.25) again.
    # Image, msra: (55 + (u - 24) * 2.34375, 80 + (v - 32) * 2.34375): u = 20 -> 45.625, 20.25 -> 46.2109375,
    # v = 30.25 -> 75.8984375; udp: (55 + (20 - 23.5) * 2.34375, 80 + (30.25 - 31.5) * 2.34375)
    # = (46.796875, 77.0703125)
    a, b = torch.zeros(1, 1, 64, 48), torch.zeros(1, 1, 64, 48)
    a[0, 0, 30, 20], a[0, 0, 31, 20], a[0, 0, 29, 20] = 1.0, 0.5, 0.2
    b[0, 0, 30, 27], b[0, 0, 31, 27], b[0, 0, 29, 27] = 1.0, 0.5, 0.2
    crops = torch.zeros(1, 3, *SIZE)
    crops[0, 0, :, 0] = 1.0  # the mirrored batch has the mark on its right: Mirror answers B
    c, s = np.array([[55.0, 80.0]]), np.array([[0.5625, 0.75]])
    model = Mirror(a, b, codec)
    assert np.allclose(keypoints_of_crops(model, crops, c, s, flip_test=False)[0][0, 0], plain)
    assert np.allclose(keypoints_of_crops(model, crops, c, s, flip_test=True)[0][0, 0], flipped)


def test_dark_recovers_an_exact_sub_pixel_gaussian():
    # log of a Gaussian is quadratic: the Newton step from the integer maximum (20, 31) lands on the
    # centre (20.3, 30.7) exactly without blur, and within 1e-3 after the 11-tap blur (a Gaussian too)
    t, _ = gaussian_heatmaps(np.array([[20.3, 30.7]]), np.ones(1), HM, 2.0, window='full')
    h = torch.from_numpy(t)[None]
    coords, _ = get_max_preds(h)
    assert coords[0, 0].tolist() == [20, 31]
    assert np.allclose(dark_refine(h, coords, None)[0, 0], [20.3, 30.7], atol=1e-5)
    assert np.allclose(dark_refine(h, coords, 11)[0, 0], [20.3, 30.7], atol=1e-3)
    # the official border rule 1 < x < w - 2: a maximum on column 1 or w - 2 stays
    t, _ = gaussian_heatmaps(np.array([[1.3, 30.7], [46.2, 30.7]]), np.ones(2), HM, 2.0, window='full')
    h = torch.from_numpy(t)[None]
    coords, _ = get_max_preds(h)
    assert torch.equal(dark_refine(h, coords, 11)[..., 0], coords[..., 0])
    # through the dark codec: image -> target -> decode is the identity to 1e-3 heatmap px (~4e-3 image px)
    c, s = np.array([55.0, 80.0]), np.array([0.5625, 0.75])
    pts = np.array([[47.3, 61.2], [70.0, 95.5]])
    for name in ('dark', 'udp_dark'):
        codec = get_codec(name)
        t, _ = codec.encode(pts, np.ones(2), c, s, 0.0, SIZE, HM)
        dec, _ = codec.decode(torch.from_numpy(t)[None], c[None], s[None])
        assert np.abs(dec[0] - pts).max() < 5e-3, name


# --- face ------------------------------------------------------------------------------------------
def test_face_crop_box_and_where_the_centre_lands():
    # h = 200 * 1.0 = 200 at x = 300: ul = int(300 + 200 / 256 * (-1 - 128)) + 1 = int(199.22) + 1 = 200,
    # br = int(300 + 200 / 256 * (255 - 128)) + 1 = int(399.22) + 1 = 400: the box 200 .. 399 (200 px);
    # resized to 256, image x -> (x - 200 + 0.5) * 256 / 200 - 0.5: the centre on 128.14
    ul, br = face.crop_window((300.0, 300.0), 1.0, (256, 256))
    assert ul.tolist() == [200, 200] and br.tolist() == [400, 400]
    codec = get_codec('face')
    assert np.allclose(apply_affine([300.0, 300.0], codec.crop_matrix((300.0, 300.0), 1.0, 0.0, (256, 256))), 128.14)
    # h = 400: ul = int(300 - 201.5625) + 1 = 99, br = int(498.44) + 1 = 499; (201.5 * 0.64) - 0.5 = 128.46,
    # on the way to 128.5 - 128 / h (127.5 under udp, 128 under msra)
    assert np.allclose(apply_affine([300.0, 300.0], codec.crop_matrix((300.0, 300.0), 2.0, 0.0, (256, 256))), 128.46)
    image = torch.full((3, 600, 600), 0.2)
    image[:, 300, 300] = 0.6
    crop = codec.crop_image(image, np.array([300.0, 300.0]), 1.0, 0.0, (256, 256))
    # bytescale (scipy.misc.imresize of a float crop): min -> 0, max -> 1 before the resize, so the
    # background 0.2 becomes 0; the bright pixel's centroid on 128.14
    assert face.bytescale(torch.tensor([0.2, 0.6, 0.4])).tolist() == pytest.approx([0, 1, 0.5])
    assert float(crop.min()) == 0 and float(crop[:, :100].max()) == 0 and float(crop.max()) > 0.7
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing='ij')
    m = crop[0]
    assert np.allclose([float((xs * m).sum() / m.sum()), float((ys * m).sum() / m.sum())], 128.14, atol=0.05)


def test_face_targets_and_decode_with_the_integer_cast():
    # targets: T(x) = 64 * (x - cx) / h + 32; x = 80 at cx = 100, h = 200: 25.6 -> int -> column 25
    c, s = np.array([100.0, 120.0]), 1.0
    t, _ = get_codec('face').encode(np.array([[80.0, 120.0]]), np.ones(1), c, s, 0.0, (256, 256), (64, 64), 1.5)
    assert np.unravel_index(np.argmax(t[0]), t[0].shape) == (32, 25)
    # decode: peak (20, 30), right neighbour higher -> u = 20.25, v = 30 (no y difference);
    # x = cx + h / 64 * (u + 0.5 - 32) = 100 + 3.125 * (-11.25) = 64.84375 -> int + 1 = 65
    # y = 120 + 3.125 * (30.5 - 32) = 115.3125 -> 116; without the cast (face_continuous): 64.84375, 115.3125
    m = torch.zeros(1, 1, 64, 64)
    m[0, 0, 30, 20], m[0, 0, 30, 21], m[0, 0, 30, 19] = 1.0, 0.5, 0.2
    assert get_codec('face').decode(m, c[None], np.array([s]))[0][0, 0].tolist() == [65, 116]
    assert get_codec('face_continuous').decode(m, c[None], np.array([s]))[0][0, 0].tolist() == [64.84375, 115.3125]
    # no positive value: get_preds gives 1-based (0, 0): x = 100 + 3.125 * (-0.5 - 32) = -1.5625 -> int(-1.56) + 1 = 0
    assert get_codec('face').decode(torch.zeros(1, 1, 64, 64), c[None], np.array([s]))[0][0, 0].tolist() == [0, 19]


def test_face_transform_pixel_official_rounding():
    # transform_pixel((80, 120) + 1, c=(100, 120), scale 1, (64, 64)): T(81 - 1) = 64 * (80 - 100) / 200 + 32 = 25.6
    # -> int 25 + 1 = 26; invert maps 26 back to int(100 + 3.125 * (25 - 32)) + 1 = int(78.125) + 1 = 79
    assert face.transform_pixel([81.0, 121.0], (100.0, 120.0), 1.0, (64, 64)).tolist() == [26, 33]
    assert face.transform_pixel([26.0, 33.0], (100.0, 120.0), 1.0, (64, 64), invert=True).tolist() == [79, 121]


# --- the codec travels with the model --------------------------------------------------------------
def test_specs_and_pretrained_cfg_name_their_codec():
    from hrnet_zoo import get_model_spec
    from hrnet_zoo.tasks.landmarks.specs import MMPOSE_SPECS as MMPOSE_FACES
    from hrnet_zoo.tasks.pose.specs import MMPOSE_SPECS
    mmpose = {s.name for s in MMPOSE_SPECS + MMPOSE_FACES}  # mmpose's codecs: tests/test_pose_mmpose.py
    for name in hrnet_zoo.list_models(task='pose'):
        spec = get_model_spec(name)
        if name not in mmpose:
            assert spec.codec == ('udp' if name == 'hrnet_pose' else 'msra'), name
    for name in hrnet_zoo.list_models(task='landmarks'):
        assert get_model_spec(name).codec == 'face' or name in mmpose
    m = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=3)
    assert m.pretrained_cfg['codec'] == 'udp' and resolve_codec(m).name == 'udp'
    m = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=3, codec='msra')
    assert m.pretrained_cfg['codec'] == 'msra' and resolve_codec(m, 'dark').name == 'dark'
    with pytest.raises(ValueError, match='unknown heatmap codec'):
        hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', codec='official')
    assert resolve_codec(object()).name == DEFAULT_CODEC  # nothing recorded: made before codecs


def test_checkpoints_carry_their_codec(tmp_path):
    from hrnet_zoo.train.checkpoint import CHECKPOINT_FORMAT
    model = torch.nn.Linear(1, 1)  # a model of an official spec: it records msra
    model.pretrained_cfg = {'architecture': 'hrnet_w32_pose_coco_256x192', 'codec': 'msra'}
    # an engine checkpoint from before codecs (no pretrained_cfg) was trained under UDP
    legacy = tmp_path / 'last.pth'
    torch.save({'format': CHECKPOINT_FORMAT, 'model': {}, 'optimizer': {}}, legacy)
    assert checkpoint_codec(str(legacy)) == 'udp'
    assert apply_checkpoint_codec(model, str(legacy)).pretrained_cfg['codec'] == 'udp'
    new = tmp_path / 'new.pth'
    torch.save({'format': CHECKPOINT_FORMAT, 'model': {}, 'pretrained_cfg': {'codec': 'dark'}}, new)
    assert checkpoint_codec(str(new)) == 'dark'
    official = tmp_path / 'pose_hrnet_w32_256x192.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, official)
    assert checkpoint_codec(str(official)) is None  # the spec's codec holds
    folder = tmp_path / 'converted'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps({'codec': 'msra'}))
    assert checkpoint_codec(str(folder / 'model.safetensors')) == 'msra'


def test_training_records_the_codec_in_the_model_and_its_checkpoint(tmp_path):
    from hrnet_zoo.tasks.codecs import training_codec
    from hrnet_zoo.tasks.pose.data import COCOKeypoints
    from hrnet_zoo.tasks.pose.synthetic import write_synthetic_coco
    from hrnet_zoo.tasks.pose.training import heatmap_loss_fn
    from hrnet_zoo.train.engine import TrainConfig, Trainer
    ann, images = write_synthetic_coco(str(tmp_path / 'data'), num_images=2, num_keypoints=3, image_size=(48, 48),
                                       box_range=(24, 40))
    model = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=3, input_size=(32, 32))
    train_set = COCOKeypoints(ann, images, input_size=(32, 32), train=True)
    assert train_set.codec is None  # follows the model's codec, here overridden
    codec, train_set = training_codec(model, train_set, 'msra')
    assert codec.name == train_set.codec.name == model.pretrained_cfg['codec'] == 'msra'
    with pytest.raises(ValueError, match="built with codec 'udp'"):
        training_codec(model, COCOKeypoints(ann, images, input_size=(32, 32), codec='udp'), 'msra')
    assert training_codec(model, COCOKeypoints(ann, images, input_size=(32, 32), codec='dark'))[0].name == 'dark'
    assert model.pretrained_cfg['codec'] == 'dark'  # the train set's codec is what the model learns
    cfg = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=1, batch_size=1, progress=False, device='cpu',
                      handle_signals=False)
    state = Trainer(model, train_set, heatmap_loss_fn(), cfg).state_dict()
    assert checkpoint_codec({**state, 'format': 'hrnet_zoo.train/1'}) == 'dark'


@pytest.mark.parametrize('task', ['pose', 'landmarks'])
def test_codec_flag_overrides_the_model_and_checkpoint(task, tmp_path):
    from importlib import import_module
    from hrnet_zoo.tasks.cli import build_parser, load_task_recipe
    from hrnet_zoo.train.checkpoint import CHECKPOINT_FORMAT
    main = import_module(f'hrnet_zoo.tasks.{task}.__main__')
    model_args = (['--model', 'hrnet_pose', '--arch', 'hrnet_w18_small', '--num-keypoints', '3'] if task == 'pose'
                  else ['--model', 'hrnet_w18_face_aflw', '--arch', 'hrnet_w18_small'])
    parser = build_parser(main.COMMAND)

    def codec(*extra):
        args = parser.parse_args(['predict', '--image', 'x.png', *model_args, *extra])
        return main._model(args, load_task_recipe(args, main.COMMAND)).pretrained_cfg['codec']
    spec_codec = 'udp' if task == 'pose' else 'face'
    assert codec() == spec_codec
    assert codec('--codec', 'dark') == 'dark'
    m = main._model(parser.parse_args(['predict', '--image', 'x.png', *model_args]),
                    load_task_recipe(parser.parse_args(['predict', '--image', 'x', *model_args]), main.COMMAND))
    legacy = tmp_path / 'legacy.pth'  # an engine checkpoint of this model from before codecs: decodes as udp
    torch.save({'format': CHECKPOINT_FORMAT, 'model': m.state_dict()}, legacy)
    assert codec('--checkpoint', str(legacy)) == 'udp'
    assert codec('--checkpoint', str(legacy), '--codec', 'msra') == 'msra'
