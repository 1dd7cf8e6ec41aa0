"""Segmentation models (:mod:`hrnet_zoo.tasks.segmentation.models` and ``.ocr``): shapes, params,
head layout, fusion mode, the OCR head, and the pretrained_cfg every model carries."""
from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import hrnet_zoo
from hrnet_zoo.tasks.segmentation import (HRNetOCRSegmentation, HRNetSegmentation, SegmentationLoss,
                                          load_official_checkpoint)

from conftest import randomize_bn


@pytest.fixture(scope='module')
def small():
    return randomize_bn(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes')).eval()


@functools.lru_cache(maxsize=None)
def _meta(name):
    """Models on the meta device: shapes and keys without allocating (or initialising) weights."""
    with torch.device('meta'):
        return hrnet_zoo.create_model(name)


def test_w48_cityscapes_params_match_official():
    """Official README: 65.8M. Ours: 65.859M; the README truncates (it is not 65.9), nothing is
    missing: trunk 65.32M + last_layer (720x720 conv + bias, BN, 720x19 conv + bias) 0.534M."""
    n = sum(p.numel() for p in _meta('hrnet_w48_seg_cityscapes').parameters())
    assert math.floor(n / 1e5) / 10 == 65.8
    assert abs(n / 1e6 - 65.8) < 0.06


@pytest.mark.parametrize('name, classes, head_in', [
    ('hrnet_w48_seg_cityscapes', 19, 720), ('hrnet_w48_seg_pascal_context', 59, 720),
    ('hrnet_w18_seg_lip', 20, 270),
    ('hrnet_w18_small_seg_cityscapes', 19, 240)])
def test_head_layout_and_fusion_mode(name, classes, head_in):
    m = _meta(name)
    assert m.last_layer[0].in_channels == head_in == m.last_layer[0].out_channels  # 15C for the standard nets
    assert m.last_layer[3].out_channels == classes and m.last_layer[3].kernel_size == (1, 1)
    assert m.last_layer[0].bias is not None and isinstance(m.last_layer[1], nn.BatchNorm2d)
    fusions = [mod for mod in m.modules() if hasattr(mod, 'upsample_mode')]
    assert fusions and all(f.upsample_mode == 'bilinear' and f.align_corners is False for f in fusions)
    assert name in hrnet_zoo.list_models()


@pytest.mark.parametrize('size', [(64, 64), (33, 47), (65, 97)])
def test_logits_have_input_size(small, size):
    with torch.no_grad():
        out = small(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, *size)
    assert torch.isfinite(out).all()


def test_too_small_input_is_a_clear_error(small):
    with pytest.raises(ValueError, match='at least 32x32'):
        small(torch.randn(1, 3, 16, 64))


def test_align_corners_option_reaches_every_resize():
    m = HRNetSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5, align_corners=True)
    assert m.cfg.align_corners and m.v2.align_corners and m.align_corners
    assert all(f.align_corners for f in m.modules() if hasattr(f, 'upsample_mode'))


def test_attributes_come_from_the_constructor_and_pretrained_cfg():
    named = _meta('hrnet_w48_ocr_seg_lip')
    assert (named.num_classes, named.variant, named.input_size, named.align_corners) == (
        20, 'hrnet_w48', (473, 473), True)
    assert named.spec is hrnet_zoo.get_model_spec('hrnet_w48_ocr_seg_lip')
    assert named.pretrained_cfg['architecture'] == 'hrnet_w48_ocr_seg_lip' and named.pretrained_cfg['head'] == 'v2_ocr'
    assert 'variant' not in vars(named) and 'spec' not in vars(named)  # nothing patched on after construction
    plain = HRNetSegmentation('hrnet_w18_small', 7)  # a spec-less model gets a default cfg
    cfg = plain.pretrained_cfg
    assert (plain.variant, plain.spec, cfg['num_classes'], cfg['task'], cfg['head']) == (
        'hrnet_w18_small', None, 7, 'segmentation', 'v2')
    assert cfg['mean'] == (0.485, 0.456, 0.406) and cfg['align_corners'] is False


def test_ocr_head_keys_outputs_and_checkpoint(tmp_path):
    from hrnet_zoo.tasks.segmentation.training import make_loss_fn
    w48 = _meta('hrnet_w48_ocr_seg_cityscapes')
    assert w48.align_corners is True  # the official OCR configs (alignTrue)
    keys = set(w48.state_dict())
    for key in ('conv3x3_ocr.0.weight', 'conv3x3_ocr.0.bias', 'conv3x3_ocr.1.running_mean', 'cls_head.weight',
                'aux_head.0.weight', 'aux_head.3.weight', 'ocr_distri_head.conv_bn_dropout.0.weight',
                'ocr_distri_head.conv_bn_dropout.1.0.weight', 'ocr_distri_head.object_context_block.f_pixel.2.weight',
                'ocr_distri_head.object_context_block.f_pixel.3.0.running_var',
                'ocr_distri_head.object_context_block.f_up.1.0.bias'):
        assert key in keys, key  # names of the official lib/models/seg_hrnet_ocr.py
    assert w48.conv3x3_ocr[0].out_channels == 512 and w48.cls_head.out_channels == 19
    model = randomize_bn(HRNetOCRSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5))
    x, y = torch.randn(2, 3, 65, 47), torch.randint(0, 5, (2, 65, 47))
    out = model(x)
    assert set(out) == {'out', 'aux'} and out['out'].shape == out['aux'].shape == (2, 5, 65, 47)
    make_loss_fn(SegmentationLoss(5, ohem=True))(model, (x, y)).backward()
    model.eval()
    official = {'model.' + k: v.clone() for k, v in model.state_dict().items()}
    fresh = HRNetOCRSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5).eval()
    load_official_checkpoint(fresh, official)
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), atol=1e-5)
