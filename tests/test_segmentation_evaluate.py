"""Inference and evaluation (:mod:`hrnet_zoo.tasks.segmentation.evaluate`): sliding windows,
multi-scale + flip testing (with LIP's left/right classes swapped), mIoU over a dataset."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hrnet_zoo
from hrnet_zoo.tasks.segmentation.data import SyntheticShapes
from hrnet_zoo.tasks.segmentation.evaluate import evaluate, predict, sliding_window, swap_channels
from hrnet_zoo.tasks.segmentation.transforms import eval_transforms

from conftest import randomize_bn


@pytest.fixture(scope='module')
def small():
    return randomize_bn(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes')).eval()


class _PixelModel(nn.Module):
    """Translation-equivariant toy model (1x1 conv): sliding windows must equal the whole image."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_window_equals_whole_image_for_a_pixelwise_model():
    model = _PixelModel().eval()
    x = torch.randn(1, 3, 50, 70)
    whole = predict(model, x)
    windows = sliding_window(model, x, crop_size=(32, 32))
    assert windows.shape == whole.shape and torch.allclose(windows, whole, atol=1e-6)
    assert torch.allclose(predict(model, x, flip=True, crop_size=(32, 32)), whole, atol=1e-6)


def test_multi_scale_flip_prediction_shape(small):
    probs = predict(small, torch.randn(1, 3, 40, 56), scales=(0.75, 1.0, 1.5), flip=True, crop_size=(48, 48))
    assert probs.shape == (1, 19, 40, 56)
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 56), atol=1e-4)


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
    plain = predict(_LeftHalf(), x, flip=True)  # the mirrored guess disagrees everywhere: p = 0.5
    paired = predict(_LeftHalf(), x, flip=True, flip_pairs=[(1, 2)])
    assert (plain.max(1).values < 0.6).all() and (paired.max(1).values > 0.99).all()
    labels = paired.argmax(1)
    assert (labels[..., :4] == 1).all() and (labels[..., 4:] == 2).all()
    probs = torch.arange(4.).view(1, 4, 1, 1)
    assert swap_channels(probs, [(1, 3)]).flatten().tolist() == [0, 3, 2, 1]


def test_evaluate_gives_the_miou_of_the_predictions():
    val = SyntheticShapes(4, 32, 3, seed=1, transform=eval_transforms())
    model = _PixelModel(3).eval()
    out = evaluate(model, val, 3, batch_size=2)
    assert set(out) >= {'miou', 'pixel_acc', 'mean_acc', 'iou/background'} and 0 <= out['miou'] <= 1
    assert out == evaluate(model, val, 3, batch_size=4)  # one confusion matrix over the whole set
