"""mmsegmentation's FCN-HRNet and OCRNet-HRNet as the ``*_mmseg`` models
(:mod:`hrnet_zoo.tasks.segmentation.specs` ``MMSEG_SPECS``): the table, the datasets' classes
(:mod:`hrnet_zoo.tasks.segmentation.metainfo`) and the two differences from the official network
(bias-free head convs, mmseg's ``2 ** k`` then exact-size fusion). The comparison with mmseg's own
network (venv-mm, same random weights: max |diff| 0 on 64x128 and 70x90) is manual: docs/segmentation.md."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import hrnet_zoo
from hrnet_zoo.tasks.segmentation import data
from hrnet_zoo.tasks.segmentation.metainfo import DATASETS, get_dataset, label_map
from hrnet_zoo.tasks.segmentation.models import HRNetSegmentation
from hrnet_zoo.tasks.segmentation.specs import MMSEG_SPECS

from conftest import randomize_bn

# classes per dataset: mmseg 1.2.2 mmseg/datasets/*.py METAINFO
CLASSES = {'cityscapes': 19, 'ade20k': 150, 'voc12aug': 21, 'pascal_context': 59, 'pascal_context_60': 60,
           'loveda': 7, 'potsdam': 6, 'vaihingen': 6, 'isaid': 16}


def test_the_table_is_what_mmseg_published():
    names = {s.name for s in MMSEG_SPECS}
    # FCN: 7 datasets x (hr18s, hr18, hr48) + PASCAL-Context 59 / 60 (hr48 only); OCRNet: 3 datasets x 3 trunks
    assert len(names) == 7 * 3 + 2 + 3 * 3 == 32
    assert {'hrnet_w18_small_v2_seg_isaid_mmseg', 'hrnet_w48_seg_pascal_context_60_mmseg',
            'hrnet_w18_ocr_seg_voc12aug_mmseg'} <= names and 'hrnet_w18_seg_pascal_context_mmseg' not in names
    for s in MMSEG_SPECS:
        assert s.num_outputs == CLASSES[s.dataset] and s.license == 'apache-2.0', s.name
        assert (s.options['align_corners'], s.options['head_bias'], s.options['fuse_upsample']) == (False, False, 'factor')
        assert s.options.get('dropout', 0.0) == 0.0 and s.pretrained_cfg()['test_protocol'] == 'mmseg'
    assert hrnet_zoo.get_model_spec('hrnet_w48_ocr_seg_ade20k_mmseg').input_size == (512, 512)


def test_dataset_tables():
    assert {n: d.num_classes for n, d in DATASETS.items() if n in CLASSES} == CLASSES
    assert data.CITYSCAPES_CLASSES is get_dataset('cityscapes').classes  # one copy
    assert get_dataset('ade20k').classes[7] == 'bed' and get_dataset('voc12aug').palette[1] == (128, 0, 0)
    # reduce_zero_label (ADE20K): label 0 (unlabelled) ignored, k -> k - 1; 151.. are not classes
    m = label_map('ade20k')
    assert (0 not in m, m[1], m[150], 151 in m) == (True, 0, 149, False)
    assert label_map('cityscapes') == {k: k for k in range(19)}
    with pytest.raises(KeyError, match='unknown segmentation dataset'):
        get_dataset('kitti')


def test_mmseg_head_and_fusion_options():
    torch.manual_seed(0)
    official = randomize_bn(HRNetSegmentation('hrnet_w18_small_v2', 5)).eval()
    mmseg = HRNetSegmentation('hrnet_w18_small_v2', 5, head_bias=False, fuse_upsample='factor').eval()
    keys = set(official.state_dict())
    assert keys - set(mmseg.state_dict()) == {'last_layer.0.bias'}  # mmseg's ConvModule: no bias before its BN
    with torch.no_grad():
        official.last_layer[0].bias.zero_()
        mmseg.load_state_dict({k: v for k, v in official.state_dict().items() if k != 'last_layer.0.bias'})
        # sides that are multiples of 32: every branch doubles exactly, both fusions agree
        x = torch.randn(1, 3, 64, 64)
        want = official(x)
        assert (mmseg(x) - want).abs().max() <= 1e-5 * want.abs().max()
        # 70 rows: branches of 18, 9, 5, 3 rows; 3 -> x8 = 24 -> 18 (mmseg) is not 3 -> 18 (official)
        x = torch.randn(1, 3, 70, 90)
        want = official(x)
        assert (mmseg(x) - want).abs().max() > 1e-3 * want.abs().max()
    ups = [m for m in mmseg.modules() if isinstance(m, nn.Upsample)]
    assert sorted({m.scale_factor for m in ups}) == [2.0, 4.0, 8.0] and not any(m.align_corners for m in ups)
    with pytest.raises(ValueError, match='fuse_upsample must be one of'):
        HRNetSegmentation('hrnet_w18_small_v2', 5, fuse_upsample='nearest')


def test_eval_follows_the_models_protocol():
    """``eval`` / ``predict`` take mmseg's protocol for the ``*_mmseg`` models (single scale, no flip,
    the dataset's resize and windows) unless ``--protocol official``."""
    from hrnet_zoo.tasks.segmentation.__main__ import _eval_kwargs
    from hrnet_zoo.train.recipes import load_recipe
    model = SimpleNamespace(pretrained_cfg={'test_protocol': 'mmseg', 'dataset': 'ade20k'})
    args = argparse.Namespace(protocol=None, scales=None, flip_test=None, eval_crop=None, combine=None, windows=None)
    recipe = load_recipe('seg_cityscapes')
    assert _eval_kwargs(args, recipe, model) == dict(protocol='mmseg', scales=(1.0,), flip=False, flip_pairs=(),
                                                      crop_size=None, combine=None, windows=None)
    args.protocol = 'official'
    assert _eval_kwargs(args, recipe, model)['protocol'] == 'official'
