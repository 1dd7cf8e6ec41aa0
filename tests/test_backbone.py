"""The trunk, the fusion and the variants: parity with timm's HRNet, sizes, checkpointing."""
from __future__ import annotations

import math

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.backbone import HRNet, HighResolutionModule
from hrnet_zoo.configs import HRNET_CONFIGS, StageConfig, get_config

from conftest import randomize_bn, timm_reference

# Params (M) of the reference table in the GUIDE (HRNet-Image-Classification README, = timm).
REFERENCE_PARAMS = {
    'hrnet_w18_small': 13.2, 'hrnet_w18_small_v2': 15.6, 'hrnet_w18': 21.3, 'hrnet_w30': 37.7,
    'hrnet_w32': 41.2, 'hrnet_w40': 57.6, 'hrnet_w44': 67.1, 'hrnet_w48': 77.5, 'hrnet_w64': 128.1,
}
ALL_VARIANTS = sorted(HRNET_CONFIGS)
SIZES = [(224, 224), (256, 192)]


def _num_params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _build_loaded(build, state, strict=True):
    """Build on the meta device (no random init: fast) and take the given tensors."""
    with torch.device('meta'):
        model = build()
    result = model.load_state_dict(state, strict=strict, assign=True)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    assert not leftover, f'not loaded: {leftover}'
    return model.eval(), result


@pytest.mark.parametrize('name', ALL_VARIANTS)
def test_matches_timm_logits_and_features(name):
    """timm's state_dict loads strictly into ours and gives the same logits and features."""
    ref = randomize_bn(timm_reference(name)).eval()
    state = ref.state_dict()
    ours, _ = _build_loaded(lambda: hrnet_zoo.create_model(name), state)
    diffs = {}
    with torch.no_grad():
        for h, w in SIZES:
            x = torch.randn(1, 3, h, w)
            expected = ref(x)
            assert expected.abs().max() > 1e-2  # a meaningful comparison, not two zero vectors
            diffs[f'logits{h}x{w}'] = (ours(x) - expected).abs().max().item()
        for location in ('incre', ''):
            ref_f, _ = _build_loaded(lambda: timm_reference(name, feature_location=location), state, strict=False)
            ours_f, (missing, _) = _build_loaded(
                lambda: hrnet_zoo.create_model(name, features_only=True, feature_location=location), state, strict=False)
            assert not missing, missing
            assert ours_f.feature_info.channels() == [f['num_chs'] for f in ref_f.feature_info]
            assert ours_f.feature_info.reduction() == [f['reduction'] for f in ref_f.feature_info]
            for h, w in SIZES:
                x = torch.randn(1, 3, h, w)
                for k, (a, b) in enumerate(zip(ours_f(x), ref_f(x))):
                    assert a.shape == b.shape
                    diffs[f'{location or "raw"}{k}@{h}x{w}'] = (a - b).abs().max().item()
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= 1e-4, f'{name}: max abs diff {diffs[worst]:.2e} at {worst}'


@pytest.mark.parametrize('name', sorted(REFERENCE_PARAMS))
def test_param_counts_match_reference(name):
    with torch.device('meta'):
        model = hrnet_zoo.create_model(name)
    assert abs(_num_params(model) - REFERENCE_PARAMS[name]) <= 0.05


@pytest.mark.parametrize('name', ['hrnet_w18_small', 'hrnet_w18_small_v2'])
@pytest.mark.parametrize('hw', [(32, 32), (33, 47), (97, 131), (225, 161)])
def test_odd_input_sizes(name, hw):
    h, w = hw
    model = hrnet_zoo.create_model(name, features_only=True, feature_location='').eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, h, w))
    for f, stride in zip(feats, model.feature_info.reduction()):
        assert f.shape[-2:] == (math.ceil(h / stride), math.ceil(w / stride))
        assert torch.isfinite(f).all()
    classifier = hrnet_zoo.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert classifier(torch.randn(2, 3, h, w)).shape == (2, 7)


@pytest.mark.parametrize('hw', [(31, 64), (64, 16), (1, 1)])
def test_too_small_input_is_a_clear_error(hw):
    model = hrnet_zoo.create_model('hrnet_w18_small').eval()
    with pytest.raises(ValueError, match='at least 32x32'):
        model(torch.randn(1, 3, *hw))


def test_non_4d_input_is_a_clear_error():
    model = hrnet_zoo.create_model('hrnet_w18_small').eval()
    with pytest.raises(ValueError, match='NCHW'):
        model(torch.randn(3, 64, 64))


@pytest.mark.parametrize('name', ['hrnet_w18_small', 'hrnet_w18_small_v2'])
def test_grad_checkpointing_gives_same_loss_and_grads(name):
    torch.manual_seed(0)
    model = hrnet_zoo.create_model(name, num_classes=10)
    model.train()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 7])
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_and_grads(checkpointing: bool):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        model.set_grad_checkpointing(checkpointing)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss0, grads0 = loss_and_grads(False)
    loss1, grads1 = loss_and_grads(True)
    assert torch.allclose(loss0, loss1, rtol=1e-5, atol=1e-6)
    assert grads0.keys() == grads1.keys()
    for n in grads0:
        assert torch.allclose(grads0[n], grads1[n], rtol=1e-4, atol=1e-6), n


def test_fusion_sums_transformed_inputs():
    """out_r = sum_x f_xr(in_x): with all fusion convs zeroed, each output is relu(in_r)."""
    stage = StageConfig(1, 'basic', (1, 1, 1), (4, 8, 16))
    module = HighResolutionModule(stage, [4, 8, 16]).eval()
    for row in module.fuse_layers:
        for f in row:
            for p in f.parameters():
                torch.nn.init.zeros_(p)
    xs = [torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
    out = module.fuse([x.clone() for x in xs])
    for o, x in zip(out, xs):
        torch.testing.assert_close(o, torch.relu(x))


def test_fusion_layer_shapes_follow_the_paper():
    """x < r: (r - x) stride-2 3x3 convs; x > r: a 1x1 conv; x == r: identity."""
    stage = StageConfig(1, 'basic', (1, 1, 1, 1), (4, 8, 16, 32))
    module = HighResolutionModule(stage, [4, 8, 16, 32])
    for r, row in enumerate(module.fuse_layers):
        for x, f in enumerate(row):
            convs = [m for m in f.modules() if isinstance(m, torch.nn.Conv2d)]
            if x == r:
                assert not convs
            elif x < r:
                assert len(convs) == r - x
                assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
            else:
                assert len(convs) == 1 and convs[0].kernel_size == (1, 1)


def test_single_scale_output_for_hrnet_v1():
    trunk = HRNet(get_config('hrnet_w18_small'), multi_scale_output=False).eval()
    with torch.no_grad():
        out = trunk(torch.randn(1, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (1, 16, 16, 16)


def test_bilinear_fusion_option():
    cfg = get_config('hrnet_w18_small')
    nearest = HRNet(cfg).eval()
    bilinear = HRNet(cfg.with_upsample('bilinear', align_corners=True)).eval()
    bilinear.load_state_dict(nearest.state_dict())
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        a, b = nearest(x), bilinear(x)
    assert [t.shape for t in a] == [t.shape for t in b]
    assert not torch.allclose(a[0], b[0])


def test_unknown_variant_lists_choices():
    with pytest.raises(KeyError, match='hrnet_w32'):
        get_config('hrnet_w33')
