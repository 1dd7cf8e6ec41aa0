"""The classifier's timm model API and the features_only model (timm's model-test expectations)."""
from __future__ import annotations

import math

import pytest
import timm
import torch
from timm.models import FeatureInfo
from timm.models._features_fx import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import hrnet_zoo
from hrnet_zoo.classifier import HighResolutionNet, HighResolutionNetFeatures

from conftest import randomize_bn

NAME = 'hrnet_w18_small'


@pytest.fixture(scope='module')
def model():
    return randomize_bn(hrnet_zoo.create_model(NAME)).eval()


def _fx_model(model, train=False):
    kw = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
              param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=kw)
    return create_feature_extractor(model, train_return_nodes=[train_nodes[-1]],
                                    eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=kw)


def test_default_cfg_and_head_api(model):
    """timm's test_model_default_cfgs expectations."""
    cfg = model.pretrained_cfg
    x = torch.randn(1, *cfg['input_size'])
    assert model.num_classes == 1000 and model.num_features == model.head_hidden_size == 2048
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[-2:] == cfg['pool_size'] and feats.shape[1] == model.num_features
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        torch.testing.assert_close(model.forward_head(feats), model(x))
    state = model.state_dict()
    assert cfg['classifier'] + '.weight' in state and cfg['first_conv'] + '.weight' in state
    assert isinstance(model.get_classifier(), torch.nn.Linear)


def test_reset_classifier_and_no_pool():
    m = hrnet_zoo.create_model(NAME).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        m.reset_classifier(0)
        assert m.num_classes == 0 and m(x).shape == (1, 2048)
        m.reset_classifier(0, '')
        assert m(x).shape == (1, 2048, 7, 7)
        m.reset_classifier(5, 'avg')
        assert m(x).shape == (1, 5)
        m2 = hrnet_zoo.create_model(NAME, num_classes=0, global_pool='').eval()
        assert m2(x).shape == (1, 2048, 7, 7)
        m3 = hrnet_zoo.create_model(NAME, global_pool='catavgmax', num_classes=3).eval()
        assert m3.classifier.in_features == 4096 and m3(x).shape == (1, 3)


def test_in_chans_and_drop_rate():
    m = hrnet_zoo.create_model(NAME, in_chans=1, drop_rate=0.5, num_classes=4)
    assert m.conv1.in_channels == 1 and m.head_drop.p == 0.5
    m.train()
    out = m(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 4)


def test_backward_reaches_every_parameter():
    """timm's test_model_backward: every parameter gets a gradient."""
    m = hrnet_zoo.create_model(NAME, num_classes=42).train()
    m(torch.randn(2, 3, 64, 64)).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing


def test_group_matcher_groups_every_parameter(model):
    from timm.models import group_parameters
    groups = group_parameters(model, model.group_matcher(coarse=False))
    grouped = {n for names in groups.values() for n in names}
    assert grouped == {n for n, _ in model.named_parameters()}
    assert len(group_parameters(model, model.group_matcher(coarse=True))) > 3


def test_forward_intermediates(model):
    """timm's test_model_forward_intermediates: channels/reductions as feature_info, final matches."""
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert len(inter) == len(info.channels()) == 5
        for f, c, r in zip(inter, info.channels(), info.reduction()):
            assert f.shape[1] == c and f.shape[-1] == math.ceil(224 / r)
        torch.testing.assert_close(final, model.forward_features(x))
        only = model.forward_intermediates(x, indices=[1, 4], intermediates_only=True)
        torch.testing.assert_close(only[0], inter[1])
        torch.testing.assert_close(only[1], inter[4])
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape[1] for t in last2] == [512, 1024]
    with pytest.raises(ValueError, match='NCHW'):
        model.forward_intermediates(x, output_fmt='NHWC')


def test_feature_getter_and_prune():
    """timm's test_model_forward_intermediates_features (feature_cls='getter')."""
    m = timm.create_model(NAME, features_only=True, feature_cls='getter', out_indices=(1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 96, 64))
    assert [o.shape[1] for o in outs] == m.feature_info.channels() == [128, 256, 512, 1024]
    for o, r in zip(outs, m.feature_info.reduction()):
        assert o.shape[-2:] == (math.ceil(96 / r), math.ceil(64 / r))


@pytest.mark.parametrize('location, channels, reductions', [
    ('incre', [64, 128, 256, 512, 1024], [2, 4, 8, 16, 32]),
    ('', [64, 16, 32, 64, 128], [2, 4, 8, 16, 32]),
    ('v2', [240], [4]),
    ('v2p', [256] * 5, [4, 8, 16, 32, 64]),
])
def test_features_only_locations(location, channels, reductions):
    m = hrnet_zoo.create_model(NAME, features_only=True, feature_location=location).eval()
    assert isinstance(m, HighResolutionNetFeatures)
    assert m.feature_info.channels() == channels and m.feature_info.reduction() == reductions
    h, w = 100, 76
    with torch.no_grad():
        outs = m(torch.randn(2, 3, h, w))
    assert [o.shape[1] for o in outs] == channels
    for o, r in zip(outs, reductions):
        assert o.shape[-2:] == (math.ceil(h / r), math.ceil(w / r))


def test_out_indices():
    m = hrnet_zoo.create_model(NAME, features_only=True, out_indices=(1, 3)).eval()
    assert m.feature_info.channels() == [128, 512] and m.feature_info.reduction() == [4, 16]
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]
    neg = hrnet_zoo.create_model(NAME, features_only=True, out_indices=(-1,))
    assert neg.feature_info.channels() == [1024]
    with pytest.raises(ValueError, match='out_indices'):
        hrnet_zoo.create_model(NAME, features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match='feature_location'):
        hrnet_zoo.create_model(NAME, features_only=True, feature_location='v3')


def test_features_have_no_classifier_params():
    m = hrnet_zoo.create_model(NAME, features_only=True)
    keys = m.state_dict().keys()
    assert not any(k.startswith(('classifier', 'final_layer', 'downsamp_modules')) for k in keys)
    assert any(k.startswith('incre_modules') for k in keys)


def test_fx_forward_matches_eager(model):
    """timm's test_model_forward_fx: the traced graph gives identical outputs (odd size too)."""
    fx = _fx_model(model)
    for hw in [(224, 224), (97, 131)]:
        x = torch.randn(1, 3, *hw)
        with torch.inference_mode():
            assert torch.equal(tuple(fx(x).values())[0], model(x))


def test_fx_backward():
    m = hrnet_zoo.create_model(NAME, num_classes=42).train()
    fx = _fx_model(m, train=True)
    out = tuple(fx(torch.randn(2, 3, 64, 64)).values())[0]
    assert out.shape == (2, 42)
    out.mean().backward()
    assert all(p.grad is not None for p in fx.parameters())


@pytest.mark.parametrize('features_only', [False, True])
def test_torch_export(features_only):
    m = hrnet_zoo.create_model(NAME, features_only=features_only).eval()
    x = torch.randn(1, 3, 64, 64)
    exported = torch.export.export(m, (x,))
    with torch.no_grad():
        a, b = exported.module()(x), m(x)
    for t, u in zip(a if features_only else [a], b if features_only else [b]):
        torch.testing.assert_close(t, u, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('features_only', [False, True])
def test_torch_compile(features_only):
    """Compiles (dynamo graph capture with no graph breaks) and runs with the same outputs."""
    m = hrnet_zoo.create_model(NAME, features_only=features_only).eval()
    compiled = torch.compile(m, backend='aot_eager', fullgraph=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = compiled(x), m(x)
    for t, u in zip(a if features_only else [a], b if features_only else [b]):
        torch.testing.assert_close(t, u, rtol=1e-4, atol=1e-5)


def test_output_stride_other_than_32_is_refused():
    with pytest.raises(ValueError, match='output_stride'):
        HighResolutionNet(hrnet_zoo.get_config(NAME), output_stride=16)
