"""Inference and evaluation (:mod:`hrnet_zoo.tasks.segmentation.evaluate`): the official
HRNet-Semantic-Segmentation test protocol (``base_dataset.py`` / ``cityscapes.py`` / ``lip.py``
``multi_scale_inference`` and ``inference``) pinned with numbers worked out from its formulas,
the softmax rule kept as an option, sliding windows, LIP's left/right classes, mIoU over a dataset."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hrnet_zoo
from hrnet_zoo.tasks.segmentation.data import SyntheticShapes
from hrnet_zoo.tasks.segmentation.evaluate import (MMSEG_TESTS, MMSegTest, evaluate, mmseg_size, predict, scaled_size,
                                                   sliding_window, swap_channels, window_boxes)
from hrnet_zoo.tasks.segmentation.transforms import eval_transforms

from conftest import randomize_bn


@pytest.fixture(scope='module')
def small():
    return randomize_bn(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes')).eval()


class _PixelModel(nn.Module):
    """Translation-equivariant toy model (1x1 conv): sliding windows must equal the whole image.
    Records the inputs it is run on."""

    def __init__(self, classes: int = 4, pretrained_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 1)
        self.pretrained_cfg = pretrained_cfg or {}
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.conv(x)


def test_sliding_window_equals_whole_image_for_a_pixelwise_model():
    model = _PixelModel().eval()
    x = torch.randn(1, 3, 50, 70)
    whole = predict(model, x)
    windows = sliding_window(model, x, crop_size=(32, 32))
    assert windows.shape == whole.shape and torch.allclose(windows, whole, atol=1e-6)
    assert torch.allclose(predict(model, x, flip=True, crop_size=(32, 32)), whole, atol=1e-6)
    assert torch.allclose(whole, model.conv(x).exp(), atol=1e-6)  # one scale, no flip: exp(logits)


def test_multi_scale_flip_prediction_shape(small):
    x = torch.randn(1, 3, 40, 56)
    probs = predict(small, x, scales=(0.75, 1.0, 1.5), flip=True, crop_size=(48, 48), combine='softmax')
    assert probs.shape == (1, 19, 40, 56)
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 56), atol=1e-4)
    scores = predict(small, x, scales=(0.75, 1.0, 1.5), flip=True, crop_size=(48, 48))
    assert scores.shape == (1, 19, 40, 56) and (scores > 0).all()  # official: sums of exp, not probabilities


class _Table(nn.Module):
    """Spatially constant logits looked up by (input width, mirrored?). The test image is a
    left-to-right ramp, so a mirrored input has its larger value on the left."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, x):
        mirrored = bool(x[0, 0, 0, 0] > x[0, 0, 0, -1])
        logits = torch.tensor(self.table[(x.shape[-1], mirrored)])
        return logits.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[-2:]).clone()


def test_multi_scale_flip_combination_is_the_official_one():
    """Official ``inference`` + ``multi_scale_inference``: per scale exp((logits + mirrored) / 2),
    summed over scales. Scale 1 (width 128): logits [0, 2], mirrored [0, 0] -> exp([0, 1]) =
    [1, e]; scale 0.5 (width 64): [6, 5] and [4, 4] -> exp([5, 4.5]) = [148.413, 90.017];
    sum [149.413, 92.735] -> class 0. Averaging softmax instead: scale 1 ([0.1192, 0.8808] +
    [0.5, 0.5]) / 2 = [0.3096, 0.6904], scale 0.5 ([0.7311, 0.2689] + [0.5, 0.5]) / 2 =
    [0.6155, 0.3845], mean [0.4626, 0.5374] -> class 1: the two rules disagree here."""
    model = _Table({(128, False): [0., 2.], (128, True): [0., 0.], (64, False): [6., 5.], (64, True): [4., 4.]})
    ramp = torch.linspace(0, 1, 128).expand(1, 3, 64, 128)
    official = predict(model, ramp, scales=(0.5, 1.0), flip=True)
    expected = torch.tensor([1 + math.exp(5), math.e + math.exp(4.5)])
    assert official.shape == (1, 2, 64, 128)
    assert torch.allclose(official[0, :, 10, 20], expected, rtol=1e-5)
    assert torch.allclose(official, expected.view(1, 2, 1, 1).expand_as(official), rtol=1e-5)
    assert (official.argmax(1) == 0).all()
    soft = predict(model, ramp, scales=(0.5, 1.0), flip=True, combine='softmax')
    assert torch.allclose(soft[0, :, 10, 20], torch.tensor([0.46257, 0.53743]), atol=1e-5)
    assert (soft.argmax(1) == 1).all()
    with pytest.raises(ValueError, match='combine must be one of'):
        predict(model, ramp, combine='mean')


def test_scaled_size_is_multi_scale_aug():
    """Long side int(base * s + 0.5), other side int(side * long / long_side + 0.5)."""
    assert scaled_size(1024, 2048, 0.75) == (768, 1536) and scaled_size(1024, 2048, 1.75) == (1792, 3584)
    assert scaled_size(333, 500, 1.25, base_size=520) == (433, 650)  # 650, int(333 * 650 / 500 + 0.5) = int(433.4)
    assert scaled_size(373, 500, 0.5) == (187, 250)  # 373 * 250 / 500 = 186.5 -> 187 (Python's round gives 186)
    assert scaled_size(500, 333, 1.0, base_size=473) == (473, 315)  # tall: int(333 * 473 / 500 + 0.5) = 315
    assert scaled_size(473, 473, 1.5) == (710, 710)  # int(709.5 + 0.5)


def test_cityscapes_windows_step_a_full_crop_and_end_at_the_border():
    """Cityscapes at scale 1.25 with TEST.IMAGE_SIZE 2048x1024: 1280x2560; rows ceil(256 / 1024) + 1
    = 2, cols ceil(512 / 2048) + 1 = 2; the second row/column ends at the border and starts one
    crop before it (1280 - 1024 = 256, 2560 - 2048 = 512); nothing is padded."""
    size, boxes = window_boxes(1280, 2560, (1024, 2048), 'cityscapes')
    assert size == (1280, 2560)
    assert boxes == [(0, 1024, 0, 2048), (0, 1024, 512, 2560), (256, 1280, 0, 2048), (256, 1280, 512, 2560)]
    # scale 1.75: 1792x3584, rows ceil(768 / 1024) + 1 = 2, cols ceil(1536 / 2048) + 1 = 2
    assert window_boxes(1792, 3584, (1024, 2048), 'cityscapes')[1] == [
        (0, 1024, 0, 2048), (0, 1024, 1536, 3584), (768, 1792, 0, 2048), (768, 1792, 1536, 3584)]
    # an image smaller than the crop is one window of its own size
    assert window_boxes(480, 640, (1024, 2048), 'cityscapes') == ((480, 640), [(0, 480, 0, 640)])


def test_base_windows_step_two_thirds_of_a_crop_and_are_padded():
    """BaseDataset: PASCAL-Context 520x520 crops, stride int(520 * 2 / 3) = 346; a 433x650 image is
    padded to 520x650, cols ceil(130 / 346) + 1 = 2, the second window 346..650 (304 wide, padded
    to 520 when run). 1280x2560 with 1024x2048 crops: strides 682 / 1365, rows ceil(256 / 682) + 1 =
    2, cols ceil(512 / 1365) + 1 = 2."""
    assert window_boxes(433, 650, (520, 520)) == ((520, 650), [(0, 520, 0, 520), (0, 520, 346, 650)])
    assert window_boxes(1280, 2560, (1024, 2048))[1] == [
        (0, 1024, 0, 2048), (0, 1024, 1365, 2560), (682, 1280, 0, 2048), (682, 1280, 1365, 2560)]
    assert window_boxes(300, 400, (473, 473)) == ((473, 473), [(0, 473, 0, 473)])  # within one crop: padded
    with pytest.raises(ValueError, match='windows must be one of'):
        window_boxes(10, 10, (5, 5), 'tiles')


def test_cityscapes_rule_runs_whole_images_up_to_scale_1_then_windows():
    """64x96 input, crop = its own size (no crop_size): scale 0.75 -> 48x72 whole; scale 1.5 ->
    96x144, four 64x96 windows (rows ceil(32 / 64) + 1 = 2, cols ceil(48 / 96) + 1 = 2). The
    rule comes from the model's pretrained_cfg['test_windows']."""
    model = _PixelModel(pretrained_cfg={'test_windows': 'cityscapes'}).eval()
    predict(model, torch.randn(1, 3, 64, 96), scales=(0.75, 1.5))
    assert [tuple(x.shape[-2:]) for x in model.inputs] == [(48, 72)] + [(64, 96)] * 4
    model.inputs.clear()
    predict(model, torch.randn(1, 3, 64, 96), scales=(0.75, 1.5), windows='base')  # the base rule, whole images
    assert [tuple(x.shape[-2:]) for x in model.inputs] == [(48, 72), (96, 144)]


def test_base_rule_pads_with_black():
    """Official pad_image with padvalue -mean / std (raw 0 after normalisation): ImageNet
    (-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225) = (-2.1179, -2.0357, -1.8044), at the
    bottom/right; the padding is cut off the scores."""
    model = _PixelModel().eval()
    x = torch.randn(1, 3, 36, 36)
    scores = predict(model, x, crop_size=(48, 48))
    (seen,) = model.inputs
    assert seen.shape == (1, 3, 48, 48) and torch.equal(seen[:, :, :36, :36], x)
    black = torch.tensor([-2.1179039, -2.0357143, -1.8044444]).view(1, 3, 1, 1)
    assert torch.allclose(seen[:, :, 36:, :], black.expand(1, 3, 12, 48))
    assert torch.allclose(seen[:, :, :, 36:], black.expand(1, 3, 48, 12))
    assert scores.shape == (1, 4, 36, 36)


class _LowRes(nn.Module):
    """Logits at half the input's size (as the official model's stride-4 output), align_corners True."""

    align_corners = True

    def __init__(self, classes: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2)


def test_align_corners_reaches_every_score_resize(monkeypatch):
    """Official: the logits to the window, each scale back to the input and testval's resize to
    the label use MODEL.ALIGN_CORNERS; image resizes are cv2.resize (half-pixel, False)."""
    calls = []
    interpolate = F.interpolate

    def spy(x, *args, **kwargs):
        calls.append((x.shape[1], kwargs.get('align_corners')))
        return interpolate(x, *args, **kwargs)

    monkeypatch.setattr(F, 'interpolate', spy)
    model = _LowRes().eval()
    x = torch.randn(1, 3, 40, 40)
    predict(model, x, scales=(0.5, 1.0), resize_to=(48, 48))
    # resize_to (image), scale 0.5 (image), its logits, its scores back to 48x48, scale 1 logits,
    # the scores back to 40x40
    assert calls == [(3, False), (3, False), (5, True), (5, True), (5, True), (5, True)]
    calls.clear()
    predict(model, x, scales=(1.0,), flip=True, align_corners=False)
    assert calls == [(5, False), (5, False)]  # an explicit align_corners wins over the model's


class _LeftHalf(nn.Module):
    """Predicts class 1 ('left') on the image's left half and class 2 ('right') on its right half."""

    def forward(self, x):
        n, _, h, w = x.shape
        logits = torch.zeros(n, 3, h, w)
        logits[:, 1, :, : w // 2] = 10
        logits[:, 2, :, w // 2:] = 10
        return logits


def test_flip_test_swaps_left_right_classes():
    x = torch.randn(1, 3, 8, 8)
    plain = predict(_LeftHalf(), x, flip=True, combine='softmax')  # the mirrored guess disagrees everywhere: p = 0.5
    paired = predict(_LeftHalf(), x, flip=True, flip_pairs=[(1, 2)], combine='softmax')
    assert (plain.max(1).values < 0.6).all() and (paired.max(1).values > 0.99).all()
    labels = paired.argmax(1)
    assert (labels[..., :4] == 1).all() and (labels[..., 4:] == 2).all()
    probs = torch.arange(4.).view(1, 4, 1, 1)
    assert swap_channels(probs, [(1, 3)]).flatten().tolist() == [0, 3, 2, 1]
    # official (LIP.inference): the mirrored logits' channels are swapped, then averaged, then exp:
    # a left pixel gets ([0, 10, 0] + [0, 0, 10]) / 2 -> exp = [1, e^5, e^5] unpaired,
    # ([0, 10, 0] + [0, 10, 0]) / 2 -> [1, e^10, 1] paired
    unpaired = predict(_LeftHalf(), x, flip=True)
    official = predict(_LeftHalf(), x, flip=True, flip_pairs=[(1, 2)])
    assert torch.allclose(unpaired[0, :, 5, 1], torch.tensor([1, math.exp(5), math.exp(5)]))
    assert torch.allclose(official[0, :, 5, 1], torch.tensor([1, math.exp(10), 1]))
    assert torch.equal(official.argmax(1), labels)


def test_evaluate_gives_the_miou_of_the_predictions():
    val = SyntheticShapes(4, 32, 3, seed=1, transform=eval_transforms())
    model = _PixelModel(3).eval()
    out = evaluate(model, val, 3, batch_size=2)
    assert set(out) >= {'miou', 'pixel_acc', 'mean_acc', 'iou/background'} and 0 <= out['miou'] <= 1
    assert out == evaluate(model, val, 3, batch_size=4)  # one confusion matrix over the whole set
    assert out == evaluate(model, val, 3, combine='softmax')  # one scale, no flip: the same argmax


# ---------------------------------------------------------------- mmseg's protocol (protocol='mmseg')
def test_mmseg_keep_ratio_resize():
    # mmcv rescale_size: f = min(long / max(h, w), short / min(h, w)); each side int(side * f + 0.5)
    assert mmseg_size(1024, 2048, (2048, 1024)) == (1024, 2048)  # Cityscapes at its test scale: f = 1
    assert mmseg_size(1024, 2048, (2048, 1024), 0.75) == (768, 1536)  # ratio 0.75: scale (1536, 768), f = 0.75
    assert mmseg_size(375, 500, (2048, 512)) == (512, 683)  # VOC: f = min(4.096, 512/375); 500 * 1.3653 = 682.67
    assert mmseg_size(375, 500, (2048, 512), 0.5) == (256, 341)  # scale (1024, 256): f = 256/375; 341.33
    assert mmseg_size(375, 500, (520, 520)) == (390, 520)  # PASCAL-Context: f = min(520/500, 520/375) = 1.04


def test_mmseg_slide_windows():
    # slide_inference: h_grids = max(390 - 480 + 320 - 1, 0) // 320 + 1 = 1; w_grids = (520 - 480 + 319) // 320 + 1 = 2;
    # a window ends at min(start + crop, side) and starts max(end - crop, 0): x 320 -> 520, start 40; never padded
    assert window_boxes(390, 520, (480, 480), 'slide', (320, 320)) == ((390, 520), [(0, 390, 0, 480), (0, 390, 40, 520)])
    assert window_boxes(30, 40, (480, 480), 'whole') == ((30, 40), [(0, 30, 0, 40)])


def test_mmseg_tests_per_dataset():
    assert (MMSEG_TESTS['cityscapes'].scale, MMSEG_TESTS['cityscapes'].mode) == ((2048, 1024), 'whole')
    assert MMSEG_TESTS['ade20k'].scale == MMSEG_TESTS['voc12aug'].scale == (2048, 512)
    pc = MMSEG_TESTS['pascal_context']
    assert (pc.scale, pc.mode, pc.crop_size, pc.stride) == ((520, 520), 'slide', (480, 480), (320, 320))
    assert hrnet_zoo.get_model_spec('hrnet_w48_seg_pascal_context_mmseg').dataset in MMSEG_TESTS


def test_mmseg_protocol_averages_softmax_over_resized_views():
    model = _PixelModel(pretrained_cfg={'test_protocol': 'mmseg', 'dataset': 'cityscapes'}).eval()
    x = torch.randn(1, 3, 36, 48)
    got = predict(model, x, scales=(1.0, 0.5), flip=True, test_scale=(96, 72))
    # ratio 1: scale (96, 72), f = 2 -> 72x96; ratio 0.5: (48, 36), f = 1 -> 36x48; each view also mirrored
    assert [tuple(i.shape[-2:]) for i in model.inputs] == [(72, 96)] * 2 + [(36, 48)] * 2
    up = F.interpolate(x, (72, 96), mode='bilinear', align_corners=False)
    back = F.interpolate(model.conv(up), (36, 48), mode='bilinear', align_corners=False)
    want = 0.5 * (back.softmax(1) + model.conv(x).softmax(1))  # a pixelwise model: mirrored views are the same
    assert torch.allclose(got, want, atol=1e-6)
    # slide windows average logits (mmseg: preds / count_mat): for a pixelwise model the whole image's
    slid = predict(model, x, test_scale=(48, 36), crop_size=(16, 16), stride=(12, 12))
    assert torch.allclose(slid, model.conv(x).softmax(1), atol=1e-6)
    with pytest.raises(ValueError, match="protocol='mmseg' combines"):
        predict(model, x, combine='official')
    with pytest.raises(ValueError, match="pass protocol='mmseg'"):
        predict(model, x, protocol='official', windows='whole')
    with pytest.raises(ValueError, match='no mmseg test protocol for dataset'):
        predict(_PixelModel(pretrained_cfg={'test_protocol': 'mmseg'}), x)


def test_mmseg_test_scale_overrides_the_scale_only(monkeypatch):
    # a dataset whose test slides 16x16 windows by 12: test_scale=(48, 36) keeps the slide (36x48 -> windows
    # at x 0, 12, 24, 32 and y 0, 12, 20: 4 x 3 = 12 inputs of 16x16), it does not switch to the whole image
    monkeypatch.setitem(MMSEG_TESTS, 'tiny', MMSegTest((96, 72), 'slide', (16, 16), (12, 12)))
    model = _PixelModel(pretrained_cfg={'test_protocol': 'mmseg', 'dataset': 'tiny'}).eval()
    predict(model, torch.randn(1, 3, 36, 48), test_scale=(48, 36))
    assert [tuple(i.shape[-2:]) for i in model.inputs] == [(16, 16)] * 12
