"""The segmentation model table (:mod:`hrnet_zoo.tasks.segmentation.specs`): registered names,
official checkpoints and figures, the official key map, strict loading with clear errors, the
builders' options and pretrained_cfg, and the deprecated names kept for one release."""
from __future__ import annotations

import functools

import pytest
import torch

import hrnet_zoo
from hrnet_zoo import checkpoint
from hrnet_zoo.tasks import segmentation as seg
from hrnet_zoo.tasks.segmentation import SPECS, load_official_checkpoint
from hrnet_zoo.tasks.segmentation.specs import MMSEG_SPECS, OFFICIAL_KEY_MAP

from conftest import randomize_bn

NAMES = ('hrnet_w48_seg_cityscapes', 'hrnet_w48_seg_pascal_context', 'hrnet_w48_seg_lip', 'hrnet_w18_seg_cityscapes',
         'hrnet_w18_small_seg_cityscapes', 'hrnet_w18_small_v2_seg_cityscapes', 'hrnet_w18_seg_pascal_context',
         'hrnet_w18_seg_lip', 'hrnet_w48_ocr_seg_cityscapes', 'hrnet_w48_ocr_seg_pascal_context',
         'hrnet_w48_ocr_seg_lip')


@pytest.fixture(scope='module')
def small():
    return randomize_bn(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes')).eval()


@functools.lru_cache(maxsize=None)
def _meta(name, **kwargs):
    with torch.device('meta'):
        return hrnet_zoo.create_model(name, **kwargs)


def test_every_name_is_registered_and_an_attribute():
    assert tuple(s.name for s in SPECS) == NAMES
    mmseg = tuple(s.name for s in MMSEG_SPECS)  # test_segmentation_mmseg.py
    assert sorted(hrnet_zoo.list_models(task='segmentation')) == sorted(NAMES + mmseg)
    for name in NAMES + mmseg:
        assert getattr(seg, name).__name__ == name and name in dir(seg)
    with pytest.raises(AttributeError):
        seg.hrnet_w32_seg_nowhere


def test_official_files_and_figures_are_the_readme_s():
    by_name = {s.name: s for s in SPECS}
    files = {n: s.official.filename for n, s in by_name.items() if s.official}
    assert files == {'hrnet_w48_seg_cityscapes': 'hrnet_cs_8090_torch11.pth',
                     'hrnet_w48_seg_pascal_context': 'hrnet_pascal_ctx_5410_torch11.pth',
                     'hrnet_w48_seg_lip': 'hrnet_lip_5583_torch04.pth',
                     'hrnet_w48_ocr_seg_cityscapes': 'hrnet_ocr_cs_8162_torch11.pth',
                     'hrnet_w48_ocr_seg_pascal_context': 'hrnet_ocr_pascal_ctx_5618_torch11.pth',
                     'hrnet_w48_ocr_seg_lip': 'hrnet_ocr_lip_5648_torch04.pth'}
    miou = {n: s.metrics['miou'] for n, s in by_name.items() if s.metrics}
    assert miou == {'hrnet_w48_seg_cityscapes': 80.9, 'hrnet_w48_ocr_seg_cityscapes': 81.6,
                    'hrnet_w18_small_seg_cityscapes': 70.3, 'hrnet_w18_small_v2_seg_cityscapes': 76.2,
                    'hrnet_w48_seg_pascal_context': 54.1, 'hrnet_w48_ocr_seg_pascal_context': 56.2,
                    'hrnet_w48_seg_lip': 55.83, 'hrnet_w48_ocr_seg_lip': 56.48}
    assert all(s.metrics['source'].startswith('HRNet-Semantic-Segmentation README')
               for s in by_name.values() if s.metrics)
    assert all(s.official.key_map == OFFICIAL_KEY_MAP for s in by_name.values() if s.official)
    assert by_name['hrnet_w48_seg_lip'].flip_pairs == ((14, 15), (16, 17), (18, 19))  # official lip.py


def test_builder_options_and_pretrained_cfg():
    m = _meta('hrnet_w48_seg_cityscapes', num_classes=7, arch='hrnet_w18_small', input_size=(256, 512))
    cfg = m.pretrained_cfg
    assert m.num_classes == 7 and m.last_layer[3].out_channels == 7 and m.variant == 'hrnet_w18_small'
    assert cfg['trunk'] == 'hrnet_w18_small' and cfg['input_size'] == (3, 256, 512) and cfg['num_classes'] == 7
    assert cfg['official_checkpoint'] == 'hrnet_cs_8090_torch11.pth' and cfg['metrics']['miou'] == 80.9
    ocr = _meta('hrnet_w48_ocr_seg_cityscapes', align_corners=False)
    assert ocr.align_corners is False and ocr.pretrained_cfg['align_corners'] is False
    assert _meta('hrnet_w48_ocr_seg_lip').pretrained_cfg['flip_pairs'] == [[14, 15], [16, 17], [18, 19]]


def test_test_windows_are_the_dataset_s_official_rule():
    """Cityscapes.multi_scale_inference overrides BaseDataset's: 'cityscapes' for the Cityscapes
    models, 'base' for PASCAL-Context and LIP; in pretrained_cfg, where predict() reads it."""
    rules = {s.name: s.options['test_windows'] for s in SPECS}
    assert {n for n, r in rules.items() if r == 'cityscapes'} == {n for n in NAMES if n.endswith('_cityscapes')}
    assert {r for n, r in rules.items() if not n.endswith('_cityscapes')} == {'base'}
    assert _meta('hrnet_w48_ocr_seg_cityscapes').pretrained_cfg['test_windows'] == 'cityscapes'
    assert _meta('hrnet_w48_seg_pascal_context').pretrained_cfg['test_windows'] == 'base'


def test_official_checkpoint_layout_loads(small, tmp_path):
    """A random state_dict in the official trainer's layout (``FullModel``: ``model.`` prefix and
    the loss's class-weight buffer) loads strictly and reproduces the source model's logits."""
    src = small.state_dict()
    official = {'model.' + k: v.clone() for k, v in src.items()}
    official['loss.criterion.weight'] = torch.rand(19)
    for key in ('model.last_layer.0.weight', 'model.last_layer.0.bias', 'model.last_layer.1.running_var',
                'model.last_layer.3.weight', 'model.last_layer.3.bias', 'model.stage4.0.fuse_layers.0.3.0.weight',
                'model.stage4.0.fuse_layers.3.0.0.0.weight', 'model.transition3.3.0.0.weight',
                'model.layer1.0.downsample.0.weight', 'model.stage2.0.branches.1.1.conv2.weight'):
        assert key in official, key  # the official module names (lib/models/seg_hrnet.py)
    path = tmp_path / 'hrnet_cs.pth'
    torch.save({'state_dict': official}, path)
    fresh = hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes').eval()
    load_official_checkpoint(fresh, str(path))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(fresh(x), small(x), atol=1e-5)
    # the builder reads a spec's official layout (here W48's, with a W18-small trunk) by itself
    via_builder = hrnet_zoo.create_model('hrnet_w48_seg_cityscapes', arch='hrnet_w18_small',
                                         checkpoint_path=str(path)).eval()
    with torch.no_grad():
        assert torch.allclose(via_builder(x), small(x), atol=1e-5)


def test_official_key_map_w48_is_complete():
    m = _meta('hrnet_w48_seg_cityscapes')
    assert SPECS[2].name == 'hrnet_w48_seg_lip' and SPECS[2].num_outputs == 20 and SPECS[2].trunk == 'hrnet_w48'
    official = {'module.model.' + k: v for k, v in m.state_dict().items()}
    official['module.loss.criterion.weight'] = torch.empty(19, device='meta')
    assert set(OFFICIAL_KEY_MAP.apply(official)) == set(m.state_dict())


def test_wrong_checkpoint_is_a_clear_error(small, tmp_path):
    state = {'model.' + k: v for k, v in small.state_dict().items() if not k.startswith('last_layer')}
    with pytest.raises(KeyError, match='missing'):
        load_official_checkpoint(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes'), state)
    five = {'model.' + k: v for k, v in _five_class_model().state_dict().items()}
    torch.save(five, tmp_path / 'five.pth')
    with pytest.raises(checkpoint.WeightsError, match='num_classes=5'):  # the builder checks the head's size
        hrnet_zoo.create_model('hrnet_w48_seg_cityscapes', arch='hrnet_w18_small',
                               checkpoint_path=str(tmp_path / 'five.pth'))
    with pytest.raises(checkpoint.WeightsError, match=r'five\.pth predicts 5 classes.*num_classes=5'):
        load_official_checkpoint(hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes'), tmp_path / 'five.pth')


def _five_class_model():
    return hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes', num_classes=5)


def test_pretrained_without_published_weights_explains():
    with pytest.raises(ValueError, match='load_official_checkpoint'):  # an official file exists: how to load it
        hrnet_zoo.create_model('hrnet_w48_seg_cityscapes', pretrained=True)
    with pytest.raises(ValueError, match='checkpoint_path'):  # W18-small: official weights have no file name
        hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes', pretrained=True)


def test_deprecated_names_keep_working(small):
    with pytest.warns(DeprecationWarning):
        SEG_MODELS = seg.SEG_MODELS
    assert SEG_MODELS['hrnet_w48_seg_lip'].num_classes == 20 and SEG_MODELS['hrnet_w48_seg_lip'].variant == 'hrnet_w48'
    with pytest.warns(DeprecationWarning):
        from hrnet_zoo.tasks.segmentation import build_segmentation_model, convert_official_state_dict
    m = _meta('hrnet_w48_seg_cityscapes')
    official = {'module.model.' + k: v for k, v in m.state_dict().items()}
    official['module.loss.criterion.weight'] = torch.empty(19, device='meta')
    assert set(convert_official_state_dict(official)) == set(m.state_dict())
    assert build_segmentation_model('hrnet_w18_small_seg_cityscapes', num_classes=3).num_classes == 3
    with pytest.warns(DeprecationWarning):
        load_backbone_weights = seg.load_backbone_weights
    trunk = {k: v for k, v in small.state_dict().items() if not k.startswith('last_layer')}
    fresh = hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes')
    loaded = load_backbone_weights(fresh, trunk)
    assert loaded and all(torch.equal(fresh.state_dict()[k], trunk[k]) for k in loaded)
    assert not any(k.startswith('last_layer') for k in loaded)
