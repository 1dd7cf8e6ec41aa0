"""hubconf.py: torch.hub.load(repo_dir, ..., source='local') for classifiers, features and the
generic entry; dependencies and docstrings. (In torch 2.14, torch.hub.list/help need a GitHub repo,
so the entry points are inspected through the hubconf module itself.)"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import hrnet_zoo
from hrnet_zoo import _timm, hub
from hrnet_zoo.tasks import TASK_MODELS

ROOT = Path(__file__).resolve().parent.parent
X = torch.randn(1, 3, 64, 64)


@pytest.fixture(scope='module')
def hubconf():
    return torch.hub._import_module('hubconf', str(ROOT / 'hubconf.py'))


def test_dependencies_and_one_documented_entry_per_variant(hubconf):
    assert hubconf.dependencies == ['torch', 'timm', 'safetensors', 'huggingface_hub']
    entries = {n: f for n, f in vars(hubconf).items() if callable(f) and not n.startswith('_')}
    assert set(_timm.MODEL_NAMES) | set(TASK_MODELS) | {'hrnet'} == set(entries)
    for name, fn in entries.items():
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name
        assert 'pretrained' in inspect.signature(fn).parameters, name
    for name in TASK_MODELS:  # task entries carry their builder's docstring
        assert entries[name].__doc__.startswith(TASK_MODELS[name].__doc__.strip()[:20]), name
    for arch in _timm.MODEL_NAMES:  # each explicit entry pins a weight that is in the manifest
        tag = inspect.getsource(entries[arch]).split(f"'{arch}.")[1].split("'")[0]
        assert f'{arch}.{tag}' in hub.load_manifest(), arch


def test_load_classifier_and_features_from_local_dir():
    model = torch.hub.load(str(ROOT), 'hrnet_w18_small', source='local', num_classes=7).eval()
    assert model(X).shape == (1, 7)
    assert model.pretrained_cfg['tag'] == 'ms_in1k'
    feats = torch.hub.load(str(ROOT), 'hrnet', 'hrnet_w18_small', source='local', features_only=True,
                           out_indices=(1, 2), feature_location='').eval()
    assert feats.feature_info.channels() == [16, 32]  # W18-small-v1 branches: 16, 32, 64, 128
    assert [tuple(y.shape[-2:]) for y in feats(X)] == [(16, 16), (8, 8)]


def test_pretrained_and_kwargs_pass_through(tmp_path):
    ref = hrnet_zoo.create_model('hrnet_w18_small')
    save_file(ref.state_dict(), str(tmp_path / 'model.safetensors'))
    model = torch.hub.load(str(ROOT), 'hrnet_w18_small', source='local', pretrained=True,
                           pretrained_cfg_overlay=dict(file=str(tmp_path / 'model.safetensors')))
    torch.testing.assert_close(model.final_layer[0].weight, ref.final_layer[0].weight)


def test_generic_entry_takes_any_zoo_name_and_published_repos(hubconf, monkeypatch, tmp_path):
    monkeypatch.setitem(TASK_MODELS, 'tiny_task_for_test', lambda pretrained=False, **kw: torch.nn.Linear(2, kw['n']))
    assert hubconf.hrnet('tiny_task_for_test', n=3).out_features == 3
    ref = hrnet_zoo.create_model('hrnet_w18_small', num_classes=4)
    torch.save(ref.state_dict(), tmp_path / 'ckpt.pth')
    folder = hub.convert(tmp_path / 'ckpt.pth', 'hrnet_w18_small', tmp_path / 'repo')
    model = hubconf.hrnet(f'local-dir:{folder}', pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(X), ref.eval()(X))
    with pytest.raises(ValueError, match='unknown model'):
        hubconf.hrnet('resnet50')


def test_task_model_entry_builds_the_registered_model():
    model = torch.hub.load(str(ROOT), 'hrnet_w18_face_aflw', source='local').eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 19, 16, 16)


def test_generic_entry_loads_a_task_repo_folder(hubconf, tmp_path):
    ref = hrnet_zoo.create_model('hrnet_w18_face_aflw').eval()
    torch.save({'state_dict': {f'module.{k}': v for k, v in ref.state_dict().items()}}, tmp_path / 'engine.pth')
    folder = hub.convert(tmp_path / 'engine.pth', 'hrnet_w18_face_aflw', tmp_path / 'repo')
    model = hubconf.hrnet(f'local-dir:{folder}', pretrained=True).eval()
    assert model.pretrained_cfg['architecture'] == 'hrnet_w18_face_aflw'
    with torch.no_grad():
        torch.testing.assert_close(model(X), ref(X))
