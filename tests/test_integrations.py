"""The libraries that take timm models, run for real on ours: timm's feature wrappers (every
``feature_cls``), transformers (``TimmBackbone``, ``AutoBackbone``, ``TimmWrapperModel``,
``AutoModelForImageClassification`` on a converted folder), torch.hub on a converted folder,
segmentation_models_pytorch's ``tu-`` encoders and torchvision's ``create_feature_extractor``.
Nothing downloads: weights are random, folders are written by ``hrnet_zoo.hub.convert``."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import hrnet_zoo
from hrnet_zoo import hub as W
from hrnet_zoo.classifier import HighResolutionNetFeatures

from conftest import randomize_bn

NAME = 'hrnet_w18_small'
ROOT = Path(__file__).resolve().parent.parent
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def classifier():
    """A classifier with random, well-conditioned BN statistics (eval mode)."""
    torch.manual_seed(0)
    return randomize_bn(hrnet_zoo.create_model(NAME)).eval()


def _native_features(classifier, **kwargs):
    m = hrnet_zoo.create_model(NAME, features_only=True, **kwargs).eval()
    m.load_state_dict(classifier.state_dict(), strict=False)
    return m


# ---------------------------------------------------------------- timm feature wrappers
@pytest.mark.parametrize('feature_cls', [None, 'hook', 'fx', 'getter'])
def test_every_timm_feature_cls_gives_the_same_maps(classifier, feature_cls):
    """features_only with each of timm's feature classes: the maps of the default location, equal
    to hrnet-zoo's own features model, and every feature_info module exists in the classifier."""
    kw = {} if feature_cls is None else dict(feature_cls=feature_cls)
    m = timm.create_model(NAME, features_only=True, **kw).eval()
    wrapped = {None: None, 'hook': 'body', 'fx': 'graph_module', 'getter': 'model'}[feature_cls]
    inner = m if wrapped is None else getattr(m, wrapped)  # the classifier inside timm's wrapper
    missing, _ = inner.load_state_dict(classifier.state_dict(), strict=False)
    assert not missing
    modules = dict(classifier.named_modules())
    assert all(name in modules for name in m.feature_info.module_name()), m.feature_info.module_name()
    with torch.no_grad():
        out = m(X)
        ref = _native_features(classifier)(X)
    assert [tuple(o.shape) for o in out] == [(2, c, math.ceil(64 / r), math.ceil(64 / r))
                                            for c, r in zip(m.feature_info.channels(), m.feature_info.reduction())]
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('location', ['incre', '', 'v2', 'v2p'])
def test_feature_info_modules_output_the_feature_maps(location):
    """For every feature_location, a forward hook on each feature_info module catches exactly the
    map the model returns for it (so hook-based tools find the right tensors by name)."""
    m = hrnet_zoo.create_model(NAME, features_only=True, feature_location=location).eval()
    modules = dict(m.named_modules())
    caught = {}
    for name in m.feature_info.module_name():
        modules[name].register_forward_hook(lambda mod, args, out, name=name: caught.__setitem__(name, out))
    with torch.no_grad():
        out = m(torch.randn(1, 3, 96, 64))
    assert [caught[n] is o for n, o in zip(m.feature_info.module_name(), out)] == [True] * len(out)


def test_feature_cls_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match="feature_location='' needs hrnet-zoo's own features model"):
        timm.create_model(NAME, features_only=True, feature_cls='hook', feature_location='')
    with pytest.raises(ValueError, match="'dict'.*sequential"):
        timm.create_model(NAME, features_only=True, feature_cls='dict')
    m = hrnet_zoo.create_model(NAME, features_only=True)
    m.return_layers = {'stage4': '0'}
    with pytest.raises(KeyError, match='not feature maps of this model'):
        m(X)


# ---------------------------------------------------------------- torchvision
def test_torchvision_create_feature_extractor(classifier):
    """torchvision's fx feature extraction by feature_info module names, plus the logits."""
    from torchvision.models.feature_extraction import create_feature_extractor
    nodes = {f['module']: f'f{i}' for i, f in enumerate(classifier.feature_info) if i in (0, 4)}
    nodes['classifier'] = 'logits'
    fx = create_feature_extractor(classifier, return_nodes=nodes).eval()
    with torch.no_grad():
        out = fx(X)
        final, inter = classifier.forward_intermediates(X)
        logits = classifier(X)
    assert list(out) == ['f0', 'f4', 'logits']
    assert out['f0'].shape == (2, 64, 32, 32) and out['f4'].shape == (2, 1024, 2, 2)
    torch.testing.assert_close(out['f0'], inter[0], rtol=0, atol=0)
    torch.testing.assert_close(out['f4'], inter[4], rtol=0, atol=0)
    torch.testing.assert_close(out['logits'], logits, rtol=0, atol=0)


# ---------------------------------------------------------------- transformers backbones
def _timm_backbone(**kwargs):
    from transformers import TimmBackbone, TimmBackboneConfig
    cfg = TimmBackboneConfig(backbone=NAME, out_indices=(1, 2, 3, 4), use_pretrained_backbone=False)
    return TimmBackbone(cfg, **kwargs).eval()


def test_transformers_timm_backbone_plain_and_hidden_states(classifier):
    bb = _timm_backbone()
    assert isinstance(bb._backbone, HighResolutionNetFeatures)
    bb._backbone.load_state_dict(_native_features(classifier).state_dict())
    with torch.no_grad():
        plain = bb(X)
        full = bb(X, output_hidden_states=True)
        ref = _native_features(classifier)(X)
        again = bb(X)
    assert bb.stage_names == ['act1', 'incre_modules.0', 'incre_modules.1', 'incre_modules.2', 'incre_modules.3']
    assert [f.shape[1] for f in plain.feature_maps] == bb.channels == [128, 256, 512, 1024]
    assert plain.hidden_states is None
    assert [h.shape[1] for h in full.hidden_states] == [64, 128, 256, 512, 1024]  # every level, in order
    for a, b in zip(full.hidden_states, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b, c in zip(plain.feature_maps, full.feature_maps, again.feature_maps):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)  # the return_layers swap is undone


def test_transformers_timm_backbone_raw_branches_and_autobackbone():
    """feature_location='' (raw branches) through TimmBackbone's kwargs, and AutoBackbone routing a
    TimmBackboneConfig to TimmBackbone; forward + backward."""
    from transformers import AutoBackbone, TimmBackbone, TimmBackboneConfig
    bb = _timm_backbone(feature_location='')
    with torch.no_grad():
        out = bb(X, output_hidden_states=True)
    assert bb.stage_names[1:] == [f'branch_out.{i}' for i in range(4)]
    assert [h.shape[1] for h in out.hidden_states] == [64, 16, 32, 64, 128]
    auto = AutoBackbone.from_config(TimmBackboneConfig(backbone=NAME, out_indices=(2, 4)))
    assert isinstance(auto, TimmBackbone) and auto.channels == [256, 1024]
    maps = auto(torch.randn(1, 3, 65, 97)).feature_maps
    assert [tuple(f.shape[-2:]) for f in maps] == [(9, 13), (3, 4)]  # odd sizes too
    sum(f.mean() for f in maps).backward()
    net = auto._backbone
    assert net.conv1.weight.grad.abs().sum() > 0 and net.incre_modules[3][0].conv1.weight.grad is not None


# ---------------------------------------------------------------- converted folders
@pytest.fixture(scope='module')
def converted(tmp_path_factory, classifier):
    """(model, folder): a 10-class classifier saved in the official layout, then `convert`ed."""
    tmp = tmp_path_factory.mktemp('convert')
    torch.manual_seed(1)
    model = randomize_bn(hrnet_zoo.create_model(NAME, num_classes=10), 1).eval()
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}}, tmp / 'ckpt.pth')
    return model, W.convert(tmp / 'ckpt.pth', NAME, tmp / 'repo', tag='ms_in1k')


def test_converted_folder_loads_in_transformers(converted):
    """AutoModelForImageClassification -> TimmWrapperForImageClassification with the same logits;
    TimmWrapperModel gives the pooled features and the unpooled map."""
    from transformers import AutoModelForImageClassification, TimmWrapperModel
    model, folder = converted
    clf = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
    base = TimmWrapperModel.from_pretrained(str(folder)).eval()
    assert type(clf).__name__ == 'TimmWrapperForImageClassification' and clf.config.num_labels == 10
    with torch.no_grad():
        logits = clf(X).logits
        out = base(X)
        expected = model(X)
        feats = model.forward_features(X)
    assert logits.shape == (2, 10)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.last_hidden_state, feats, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.pooler_output, model.forward_head(feats, pre_logits=True), rtol=1e-5, atol=1e-5)


def test_converted_folder_preprocessing_in_transformers_is_timms(converted):
    """AutoImageProcessor reads the folder's pretrained_cfg: the same tensor as timm's eval transform."""
    import numpy as np
    from PIL import Image
    from transformers import AutoImageProcessor
    _, folder = converted
    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 260, 3), dtype=np.uint8))
    pixels = AutoImageProcessor.from_pretrained(str(folder))(image, return_tensors='pt')['pixel_values']
    cfg = timm.data.resolve_data_config({}, model=timm.create_model(f'local-dir:{folder}'))
    torch.testing.assert_close(pixels, timm.data.create_transform(**cfg)(image).unsqueeze(0))


STOCK_TRANSFORMERS = """
import sys, torch
from transformers import AutoModelForImageClassification
assert 'hrnet_zoo' not in sys.modules
model = AutoModelForImageClassification.from_pretrained(sys.argv[1]).eval()
assert type(model.timm_model).__module__ == 'timm.models.hrnet' and 'hrnet_zoo' not in sys.modules
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])).logits, sys.argv[3])
"""


def test_converted_folder_loads_in_transformers_without_hrnet_zoo(converted, tmp_path):
    """What a user without hrnet-zoo gets: transformers + stock timm (``python -I``: hrnet_zoo
    cannot be imported) load the folder with the same logits."""
    model, folder = converted
    torch.save(X, tmp_path / 'x.pt')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, '-I', '-c', STOCK_TRANSFORMERS, str(folder), str(tmp_path / 'x.pt'),
                           str(tmp_path / 'y.pt')], env=dict(env, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1'),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / 'y.pt'), model(X), rtol=1e-5, atol=1e-5)


def test_converted_folder_loads_with_torch_hub_and_timm(converted):
    model, folder = converted
    hub = torch.hub.load(str(ROOT), 'hrnet', f'local-dir:{folder}', source='local', pretrained=True).eval()
    local = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    with torch.no_grad():
        expected = model(X)
        torch.testing.assert_close(hub(X), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(local(X), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- segmentation_models_pytorch
@pytest.mark.parametrize('arch, hw', [('Unet', (65, 97)), ('FPN', (64, 96))])
def test_smp_tu_hrnet_w18(arch, hw):
    """smp's timm-universal encoder 'tu-hrnet_w18' in Unet (any size: an odd one) and FPN (sides
    divisible by 32, as smp requires for FPN): forward and backward reach the encoder."""
    import segmentation_models_pytorch as smp
    model = getattr(smp, arch)('tu-hrnet_w18', encoder_weights=None, classes=3)
    assert isinstance(model.encoder.model, HighResolutionNetFeatures)
    y = model(torch.randn(2, 3, *hw))
    assert y.shape == (2, 3, *hw)
    y.square().mean().backward()
    assert model.encoder.model.conv1.weight.grad.abs().sum() > 0
