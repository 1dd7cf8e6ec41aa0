"""HRNetV2-W18 facial landmark models: names, shapes, params, official key map."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.tasks.landmarks.model import (OFFICIAL_FACE_KEY_MAP, build_face_model,
                                             convert_official_face_state_dict, load_official_face_checkpoint)

from conftest import randomize_bn

NAMES = {'hrnet_w18_face_wflw': 98, 'hrnet_w18_face_300w': 68, 'hrnet_w18_face_aflw': 19, 'hrnet_w18_face_cofw': 29}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_names_landmark_counts_and_params():
    """Measured 9.66M for WFLW: the paper's 9.3M matches the trunk without the last stage's
    lower-resolution fusions (9.32M); the full V2 trunk is 9.56M and the 270-ch head adds 0.10M."""
    for name, n in NAMES.items():
        m = hrnet_zoo.create_model(name)
        assert m.final_layer.out_channels == n and len(m.flip_pairs) > 0
    m = hrnet_zoo.create_model('hrnet_w18_face_wflw')
    assert abs(n_params(m) / 1e6 - 9.66) < 0.01
    head = sum(p.numel() for k, p in m.named_parameters() if k.startswith(('representation', 'final_layer')))
    assert head == 270 * 270 + 270 + 2 * 270 + 270 * 98 + 98


def test_bilinear_fusion_v2_head_and_quarter_resolution_heatmaps():
    m = build_face_model(num_landmarks=19, arch='hrnet_w18_small').eval()
    assert m.cfg.upsample_mode == 'bilinear' and not m.cfg.align_corners
    assert m.stage4[-1].upsample_mode == 'bilinear' and len(m.stage4[-1].fuse_layers) == 4
    assert m.representation.mix[0].kernel_size == (1, 1) and m.final_layer.kernel_size == (1, 1)
    assert all(bn.momentum == 0.01 for bn in m.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 64)).shape == (2, 19, 16, 16)


def to_official_layout(sd):
    """Our keys -> the official HRNet-Facial-Landmark-Detection layout (head.0/1/3, 'module.')."""
    out = {}
    for k, v in sd.items():
        for official, ours in OFFICIAL_FACE_KEY_MAP:
            if k.startswith(ours):
                k = official + k[len(ours):]
        out['module.' + k] = v
    return out


def test_official_key_map_loads_strictly_and_gives_same_heatmaps(tmp_path):
    ref = randomize_bn(hrnet_zoo.create_model('hrnet_w18_face_aflw')).eval()
    official = to_official_layout(ref.state_dict())
    assert {'module.head.0.weight', 'module.head.0.bias', 'module.head.1.running_var', 'module.head.3.weight'} <= set(official)
    assert not any('representation' in k or 'final_layer' in k for k in official)
    path = tmp_path / 'HR18-AFLW.pth'
    torch.save({'state_dict': official}, path)
    m = hrnet_zoo.create_model('hrnet_w18_face_aflw', checkpoint_path=str(path)).eval()
    assert set(convert_official_face_state_dict(official)) == set(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), ref(x))


def test_wrong_landmark_count_and_pretrained_errors():
    m = build_face_model(num_landmarks=98, arch='hrnet_w18_small')
    sd = to_official_layout(build_face_model(num_landmarks=68, arch='hrnet_w18_small').state_dict())
    with pytest.raises(ValueError, match='68 landmarks.*num_landmarks=68'):
        load_official_face_checkpoint(m, sd)
    with pytest.raises(RuntimeError, match='HR18-WFLW.pth.*checkpoint_path'):
        hrnet_zoo.create_model('hrnet_w18_face_wflw', pretrained=True)
