"""HRNetV1 pose model: shapes, parameter counts (official README), official key map, errors."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.tasks.pose import PoseHRNet, convert_official_pose_state_dict, load_official_checkpoint

from conftest import randomize_bn


def hrnet_pose(**kwargs):
    return hrnet_zoo.create_model('hrnet_pose', **kwargs)

POSE_NAMES = ['hrnet_w32_pose_coco_256x192', 'hrnet_w32_pose_coco_384x288',
              'hrnet_w48_pose_coco_256x192', 'hrnet_w48_pose_coco_384x288']


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('name,official_m', [('hrnet_w32_pose_coco_256x192', 28.5), ('hrnet_w48_pose_coco_384x288', 63.6)])
def test_params_match_official_readme(name, official_m):
    m = hrnet_zoo.create_model(name)
    assert abs(n_params(m) / 1e6 - official_m) < 0.05


def test_registered_names_and_generic_builder():
    assert set(POSE_NAMES) | {'hrnet_pose'} <= set(hrnet_zoo.list_models())
    m = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5)
    assert m.final_layer.out_channels == 5 and m.branch_channels[0] == 16
    assert hrnet_zoo.create_model('hrnet_w48_pose_coco_384x288', num_keypoints=16).input_size == (384, 288)


def test_last_stage_fuses_only_into_high_resolution_branch():
    m = hrnet_pose(arch='hrnet_w18_small', num_keypoints=3)
    assert len(m.stage4[-1].fuse_layers) == 1  # V1: only the high-resolution output is fused
    assert not any(k.startswith('stage4.0.fuse_layers.1') for k in m.state_dict())


@pytest.mark.parametrize('size', [(64, 48), (70, 50)])
def test_heatmap_shape_is_quarter_resolution(size):
    m = hrnet_pose(arch='hrnet_w18_small', num_keypoints=17).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, *size))
    assert y.shape == (2, 17, -(-size[0] // 4), -(-size[1] // 4))


def official_layout_state_dict(model, seed=0):
    """A random state_dict in the official pose checkpoint layout: the same key names (trunk +
    final_layer) saved from DataParallel, i.e. with a 'module.' prefix."""
    g = torch.Generator().manual_seed(seed)
    return {f'module.{k}': (torch.randn(v.shape, generator=g) * 0.05 if v.is_floating_point() else v.clone())
            for k, v in model.state_dict().items()}


def test_official_key_map_loads_strictly_and_gives_same_heatmaps(tmp_path):
    ref = randomize_bn(hrnet_pose(width=32))
    sd = official_layout_state_dict(ref)
    for k in list(sd):  # official BN statistics must stay valid
        if k.endswith('running_var'):
            sd[k] = sd[k].abs() + 0.5
    converted = convert_official_pose_state_dict(sd)
    assert set(converted) == set(ref.state_dict())
    assert {k.split('.')[0] for k in converted} == {'conv1', 'bn1', 'conv2', 'bn2', 'layer1', 'transition1',
                                                    'transition2', 'transition3', 'stage2', 'stage3', 'stage4',
                                                    'final_layer'}
    path = tmp_path / 'pose_hrnet_w32_256x192.pth'
    torch.save({'state_dict': sd}, path)
    a = hrnet_zoo.create_model('hrnet_w32_pose_coco_256x192', checkpoint_path=str(path)).eval()
    b = PoseHRNet(hrnet_zoo.get_config('hrnet_w32')).eval()
    b.load_state_dict(converted)
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert torch.equal(a.final_layer.weight, sd['module.final_layer.weight'])


def test_checkpoint_with_other_keypoint_count_is_a_clear_error():
    m = hrnet_pose(arch='hrnet_w18_small', num_keypoints=17)
    sd = hrnet_pose(arch='hrnet_w18_small', num_keypoints=16).state_dict()
    with pytest.raises(ValueError, match='16 keypoints.*num_keypoints=16'):
        load_official_checkpoint(m, sd)


def test_checkpoint_of_another_width_or_missing_keys_is_a_clear_error():
    m = hrnet_pose(arch='hrnet_w18_small', num_keypoints=17)
    sd = dict(m.state_dict())
    sd['stage2.0.branches.0.0.conv1.weight'] = torch.zeros(18, 18, 3, 3)  # a W18 tensor in a W16 model
    with pytest.raises(ValueError, match='shape mismatch.*stage2.0.branches.0.0.conv1.weight'):
        load_official_checkpoint(m, sd)
    with pytest.raises(KeyError, match='unexpected keys.*layer1.1.bn1'):
        load_official_checkpoint(m, hrnet_pose(width=18).state_dict())
    sd = dict(m.state_dict())
    del sd['stage2.0.branches.0.0.conv1.weight']
    with pytest.raises(KeyError, match='missing keys.*stage2.0.branches.0.0.conv1.weight'):
        load_official_checkpoint(m, sd)


def test_pretrained_without_local_checkpoint_explains_what_to_do():
    with pytest.raises(RuntimeError, match='no weights.*pose_hrnet_w32_256x192.pth.*checkpoint_path'):
        hrnet_zoo.create_model('hrnet_w32_pose_coco_256x192', pretrained=True)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        hrnet_zoo.create_model('hrnet_w32_pose_coco_256x192', pretrained=True, checkpoint_path='nope.pth')
