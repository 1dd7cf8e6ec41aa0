"""Registration with timm: our names, timm's pretrained tags, pretrained loading through timm."""
from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg
from timm.models import hrnet as timm_hrnet

import hrnet_zoo
from hrnet_zoo import _timm
from hrnet_zoo.classifier import HighResolutionNet, HighResolutionNetFeatures

from conftest import randomize_bn, timm_reference


def test_import_registers_without_overwrite_warnings():
    code = ('import warnings; warnings.simplefilter("always"); import timm\n'
            'with warnings.catch_warnings(record=True) as w:\n'
            '    warnings.simplefilter("always")\n'
            '    import hrnet_zoo\n'
            'print("\\n".join(str(x.message) for x in w))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert 'Overwriting' not in out.stdout + out.stderr


@pytest.mark.parametrize('name', _timm.MODEL_NAMES)
def test_timm_create_model_builds_ours(name):
    with torch.device('meta'):
        model = timm.create_model(name)
    assert type(model) is HighResolutionNet
    assert name in timm.list_models('hrnet*')


def test_every_timm_pretrained_tag_is_kept():
    for arch, default_cfg in timm_hrnet.default_cfgs.items():
        for tag in default_cfg.tags:
            full = f'{arch}.{tag}'
            cfg = get_pretrained_cfg(full)
            assert cfg is not None and cfg.hf_hub_id == f'timm/{full}', full
            assert full in timm.list_models(pretrained=True)
            assert full in hrnet_zoo.list_models(pretrained=True)
    with torch.device('meta'):
        m = timm.create_model('hrnet_w32.ms_in1k')
    assert m.pretrained_cfg['tag'] == 'ms_in1k' and m.pretrained_cfg['hf_hub_id'] == 'timm/hrnet_w32.ms_in1k'


def test_list_models():
    names = hrnet_zoo.list_models()
    assert set(_timm.MODEL_NAMES) <= set(names)
    with pytest.raises(ValueError, match='list_models'):
        hrnet_zoo.create_model('resnet50')


@pytest.fixture(scope='module')
def weight_file(tmp_path_factory):
    """timm's own model's weights saved as a local file: the stand-in for a downloaded checkpoint."""
    ref = randomize_bn(timm_reference('hrnet_w18_small')).eval()
    path = tmp_path_factory.mktemp('w') / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    return ref, path


def test_pretrained_classifier_from_local_file(weight_file):
    ref, path = weight_file
    m = timm.create_model('hrnet_w18_small', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), rtol=1e-4, atol=1e-4)


def test_pretrained_features_only_from_local_file(weight_file):
    ref, path = weight_file
    m = timm.create_model('hrnet_w18_small', pretrained=True, features_only=True,
                          pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert isinstance(m, HighResolutionNetFeatures)
    ref_f = timm_reference('hrnet_w18_small', feature_location='incre').eval()
    ref_f.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        for a, b in zip(m(x), ref_f(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert 'classifier' not in m.pretrained_cfg or not m.pretrained_cfg.get('num_classes')


def test_pretrained_with_new_num_classes_resets_classifier(weight_file):
    ref, path = weight_file
    m = timm.create_model('hrnet_w18_small', pretrained=True, num_classes=10,
                          pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert m.classifier.out_features == 10
    torch.testing.assert_close(m.conv1.weight, ref.conv1.weight)
