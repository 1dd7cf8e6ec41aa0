"""pytest-benchmark suite for the hot paths (not run by CI, whose testpaths are tests/ only).

    .venv/bin/python -m pytest benchmarks/ --benchmark-group-by=group --benchmark-columns=median,iqr,ops

Groups pair ours with timm's own HRNet on the same input, so the tables read as comparisons.
"""
from __future__ import annotations

import pytest
import torch
import timm.models.hrnet as timm_hrnet

import hrnet_zoo
from hrnet_zoo.backbone import HighResolutionModule, upsample_to
from hrnet_zoo.configs import StageConfig

NAME = 'hrnet_w18_small'


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    ref = timm_hrnet.HighResolutionNet(dict(timm_hrnet.cfg_cls[NAME])).eval()
    ours = hrnet_zoo.create_model(NAME).eval()
    ours.load_state_dict(ref.state_dict())
    return {'ours': ours, 'timm': ref}


@pytest.fixture(scope='module')
def image():
    return torch.randn(1, 3, 224, 224)


@pytest.mark.parametrize('which', ['ours', 'timm'])
def test_forward_eager(benchmark, models, image, which):
    benchmark.group = f'{NAME} forward 1x224 fp32'
    with torch.no_grad():
        benchmark(models[which], image)


@pytest.mark.parametrize('which', ['ours', 'timm'])
def test_forward_channels_last(benchmark, models, image, which):
    benchmark.group = f'{NAME} forward 1x224 fp32 channels_last'
    import copy
    model = copy.deepcopy(models[which]).to(memory_format=torch.channels_last)
    x = image.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        benchmark(model, x)


def test_forward_deploy(benchmark, models, image):
    benchmark.group = f'{NAME} forward 1x224 fp32 channels_last'
    deployed = hrnet_zoo.deploy(models['ours'])
    benchmark(deployed, image)


def test_deploy_build_time(benchmark, models):
    benchmark.group = 'deploy() build'
    benchmark.pedantic(hrnet_zoo.deploy, args=(models['ours'],), rounds=3, iterations=1)


def test_fusion(benchmark):
    """One stage-4 multi-resolution fusion of hrnet_w32 at 224x224 (branch maps at strides 4..32)."""
    benchmark.group = 'fusion'
    stage = StageConfig(num_modules=1, block="basic", num_blocks=(4, 4, 4, 4),
                        num_channels=(32, 64, 128, 256))
    module = HighResolutionModule(stage, [32, 64, 128, 256]).eval()
    xs = [torch.randn(1, 32 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i) for i in range(4)]
    with torch.no_grad():
        benchmark(module.fuse, xs)


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_upsample_to(benchmark, mode):
    benchmark.group = 'upsample_to 256ch 7x7 -> 56x56'
    x, ref = torch.randn(1, 256, 7, 7), torch.empty(1, 32, 56, 56)
    benchmark(upsample_to, x, ref, mode)
