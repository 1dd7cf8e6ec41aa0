"""Shared test helpers. Nothing here touches the network."""
from __future__ import annotations

import contextlib
import os
from unittest import mock

import pytest
import torch
from torch import nn

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def timm_reference(name: str, **kwargs) -> nn.Module:
    """timm's own HRNet for ``name``, built from its module (hrnet_zoo overrides the registry)."""
    from timm.models import hrnet as th
    arch = {'hrnet_w18_ssld': 'hrnet_w18', 'hrnet_w48_ssld': 'hrnet_w48'}.get(name, name)
    cfg = dict(th.cfg_cls[arch])
    if name.endswith('_ssld'):
        cfg['head_conv_bias'] = False
    cls = th.HighResolutionNetFeatures if 'feature_location' in kwargs else th.HighResolutionNet
    return cls(cfg, **kwargs)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random, well-conditioned statistics and affine parameters, so that a
    randomly initialised deep model produces O(1) outputs in eval mode (not overflowing values)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.2 + 0.2)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def needs(*modules):
    """Skip (with the reason) unless the optional packages are installed."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    extras = {'openvino': 'openvino', 'nncf': 'openvino', 'av': 'video'}
    extra = next((extras[m] for m in missing if m in extras), 'onnx')
    return pytest.mark.skipif(bool(missing), reason=f'{", ".join(missing)} not installed: pip install "hrnet-zoo[{extra}]"')


@pytest.fixture(autouse=True)
def _deterministic_seed():
    torch.manual_seed(0)
    yield


@contextlib.contextmanager
def shapes_only():
    """Build models on the meta device with weight init skipped: parameter shapes only, fast."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.device('meta'))
        for fn in ('kaiming_normal_', 'kaiming_uniform_', 'uniform_', 'normal_', 'ones_', 'zeros_', 'constant_'):
            stack.enter_context(mock.patch.object(torch.nn.init, fn, lambda t, *a, **k: t))
        yield
