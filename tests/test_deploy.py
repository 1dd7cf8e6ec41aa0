"""The deploy path: BatchNorm folding, channels_last, bfloat16, and ONNX export checked with onnxruntime."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hrnet_zoo
from hrnet_zoo.deploy import DeployedModel, check_onnx, find_conv_bn_pairs, fold_batchnorm, onnx_session
from hrnet_zoo.layers import BasicBlock, Bottleneck

from conftest import randomize_bn

NAME = 'hrnet_w18_small'


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Fixed random images: low-frequency patterns plus some pixel noise."""
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=(size, size), mode='bilinear')
    return low + 0.3 * torch.randn(n, 3, size, size, generator=g)


def sane_model(model: nn.Module, residual_gain: float = 0.2) -> nn.Module:
    """Give a random model sane BatchNorm: running statistics measured on data (so every layer's
    activations are normalised) and a small gain on each residual unit's last BN (as in the
    zero-init-last-BN training init), so the logits depend on the image and are not chaotic."""
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.constant_(m.bn2.weight, residual_gain)
        elif isinstance(m, Bottleneck):
            nn.init.constant_(m.bn3.weight, residual_gain)
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(smooth_images(32, 32, seed=1))
    return model.eval()


@pytest.fixture(scope='module')
def classifier():
    torch.manual_seed(0)
    return randomize_bn(hrnet_zoo.create_model(NAME)).eval()


def test_fp32_logits_match_and_every_bn_is_folded(classifier):
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    deployed = hrnet_zoo.deploy(classifier)
    assert isinstance(deployed, DeployedModel)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in classifier.modules()) == 91  # the caller's model is intact
    for k, v in classifier.state_dict().items():
        assert torch.equal(v, before[k]), k
    conv = deployed.model.conv1
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for shape in [(2, 3, 64, 64), (1, 3, 72, 88)]:  # any size >= 32, not only multiples of 32
            x = torch.randn(*shape)
            ref, got = classifier(x), deployed(x)
            assert ref.abs().max() > 1e-2
            assert got.dtype == torch.float32 and got.shape == ref.shape
            assert (got - ref).abs().max().item() <= 1e-3
    assert deployed.num_classes == 1000  # attributes of the model stay reachable


@pytest.mark.parametrize('location', ['incre', 'v2', 'v2p'])
def test_features_only_models(location):
    model = randomize_bn(hrnet_zoo.create_model(NAME, features_only=True, feature_location=location)).eval()
    deployed = hrnet_zoo.deploy(model, channels_last=location != 'v2')
    assert deployed.feature_info.channels() == model.feature_info.channels()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        ref, got = model(x), deployed(x)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-3 * max(1.0, a.abs().max().item())


def test_bfloat16_agrees_with_float32():
    """bf16 deploy on a fixed random batch: logits and features close to float32 (cosine >= 0.99)
    and the same top-1 for >= 95% of images (see benchmarks/RESULTS.md: on random models even
    rounding only the input to bf16 flips 1-3% of the top-1s)."""
    torch.manual_seed(0)
    model = sane_model(hrnet_zoo.create_model(NAME, num_classes=10))
    deployed = hrnet_zoo.deploy(model, dtype=torch.bfloat16)
    assert deployed.model.conv1.weight.dtype == torch.bfloat16
    x = smooth_images(128, 32, seed=2)
    with torch.no_grad():
        ref = model(x)
        got = deployed(x)
        ref_feat = model.forward_head(model.forward_features(x[:16]), pre_logits=True)
        got_feat = deployed.model.forward_head(deployed.model.forward_features(
            x[:16].to(torch.bfloat16).contiguous(memory_format=torch.channels_last)), pre_logits=True).float()
    assert got.dtype == torch.float32
    assert ref.argmax(1).unique().numel() >= 5  # logits are not degenerate: the batch spreads over classes
    agreement = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    assert agreement >= 0.95, agreement
    assert F.cosine_similarity(ref, got).min().item() >= 0.99
    assert F.cosine_similarity(ref_feat, got_feat).min().item() >= 0.99


def test_bfloat16_feature_maps_cosine():
    torch.manual_seed(0)
    model = sane_model(hrnet_zoo.create_model(NAME, features_only=True, feature_location=''))
    deployed = hrnet_zoo.deploy(model, dtype=torch.bfloat16)
    x = smooth_images(4, 64, seed=3)
    with torch.no_grad():
        for a, b in zip(model(x), deployed(x)):
            assert b.dtype == torch.float32
            assert F.cosine_similarity(a.flatten(1), b.flatten(1)).min().item() >= 0.99


def test_bad_arguments_and_training_are_clear_errors(classifier):
    with pytest.raises(ValueError, match='dtype'):
        hrnet_zoo.deploy(classifier, dtype=torch.int8)
    with pytest.raises(ValueError, match='backend'):
        hrnet_zoo.deploy(classifier, backend='tensorrt')
    deployed = hrnet_zoo.deploy(classifier)
    with pytest.raises(RuntimeError, match='inference-only'):
        deployed.train()


class _SharedConvOutput(nn.Module):
    """A conv whose output feeds its BN and also a skip: folding the BN would change the skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.bn2 = nn.BatchNorm2d(8)

    def forward(self, x):
        c = self.conv(x)
        return self.bn2(self.conv2(self.bn(c) + c))


def test_folding_finds_pairs_and_refuses_unsafe_folds():
    model = randomize_bn(_SharedConvOutput()).eval()
    x = torch.randn(2, 3, 16, 16)
    assert sorted(find_conv_bn_pairs(model, x)) == [('conv', 'bn'), ('conv2', 'bn2')]
    with pytest.raises(RuntimeError, match='folding changed output'):
        hrnet_zoo.deploy(model, example_input=x)
    folded = fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), randomize_bn(nn.Sequential(nn.BatchNorm2d(4)))[0]).eval(),
                            example_input=x)
    assert isinstance(folded[1], nn.Identity) and folded[0].bias is not None


@pytest.mark.parametrize('features_only', [False, True])
def test_export_onnx_dynamic_hw_matches_pytorch(tmp_path, classifier, features_only):
    model = classifier if not features_only else randomize_bn(
        hrnet_zoo.create_model(NAME, features_only=True, feature_location='v2')).eval()
    path = tmp_path / 'model.onnx'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert hrnet_zoo.export_onnx(model, str(path)) == str(path)
    session = onnx_session(str(path))
    assert [i.name for i in session.get_inputs()] == ['input']
    for shape in [(2, 3, 64, 64), (1, 3, 96, 128)]:  # sizes other than the export example's
        x = torch.randn(*shape)
        assert check_onnx(str(path), model, x, session=session) <= 1e-3 * 10
    assert not list(tmp_path.glob('*.onnx.tmp*')) and len(list(tmp_path.iterdir())) == 1
