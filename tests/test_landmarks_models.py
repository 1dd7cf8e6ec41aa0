"""FaceHRNet: bilinear fusion, V2 head with a 1x1 mix, quarter-resolution heatmaps, its pretrained_cfg."""
from __future__ import annotations

import pytest
import torch

from hrnet_zoo.tasks.landmarks.specs import build_face_model


def test_bilinear_fusion_v2_head_and_quarter_resolution_heatmaps():
    m = build_face_model(num_landmarks=19, arch='hrnet_w18_small').eval()
    assert m.cfg.upsample_mode == 'bilinear' and not m.cfg.align_corners
    assert m.stage4[-1].upsample_mode == 'bilinear' and len(m.stage4[-1].fuse_layers) == 4
    assert m.representation.mix[0].kernel_size == (1, 1) and m.final_layer.kernel_size == (1, 1)
    assert all(bn.momentum == 0.01 for bn in m.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 64)).shape == (2, 19, 16, 16)


def test_a_model_built_without_a_spec_describes_itself():
    from hrnet_zoo import get_config
    from hrnet_zoo.tasks.landmarks import FaceHRNet
    m = FaceHRNet('hrnet_w18_small', num_landmarks=7, flip_pairs=((0, 1),), input_size=(64, 48))
    cfg = m.pretrained_cfg
    assert (cfg['architecture'], cfg['trunk'], cfg['num_landmarks'], cfg['input_size']) == ('FaceHRNet', 'hrnet_w18_small',
                                                                                           7, (3, 64, 48))
    assert cfg['flip_pairs'] == [[0, 1]] and (m.num_landmarks, m.flip_pairs, m.input_size) == (7, ((0, 1),), (64, 48))
    assert FaceHRNet(get_config('hrnet_w18_small'), num_landmarks=3).pretrained_cfg['trunk'] == 'hrnet_w18_small'
    with pytest.raises(ValueError, match='positive'):
        FaceHRNet('hrnet_w18_small', num_landmarks=0)
