"""The landmark model table: names, landmark counts, params, pretrained_cfg, official key map and errors."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.tasks.landmarks import (OFFICIAL_FACE_KEY_MAP, build_face_model,
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


OFFICIAL_NME = {'hrnet_w18_face_wflw': {'nme': 4.60}, 'hrnet_w18_face_aflw': {'nme': 1.57, 'nme_frontal': 1.46},
                'hrnet_w18_face_300w': {'nme': 3.34, 'nme_common': 2.91, 'nme_challenge': 5.11, 'nme_test': 3.85},
                'hrnet_w18_face_cofw': {'nme': 3.45, 'fr': 0.20}}


def test_spec_table_official_checkpoints_and_figures():
    from hrnet_zoo.tasks import landmarks
    official = [s for s in landmarks.SPECS if s not in landmarks.specs.MMPOSE_SPECS]  # mmpose's: test_pose_mmpose.py
    assert [s.name for s in official] == list(NAMES)
    assert hrnet_zoo.list_models(task='landmarks') == sorted(list(NAMES) + [s.name for s in landmarks.specs.MMPOSE_SPECS])
    for spec in official:
        assert (spec.task, spec.trunk, spec.head, spec.input_size) == ('landmarks', 'hrnet_w18', 'v2', (256, 256))
        assert spec.num_outputs == NAMES[spec.name] == landmarks.FACE_DATASETS[spec.dataset].num_landmarks
        assert spec.official.filename == f'HR18-{spec.dataset.upper()}.pth'
        assert spec.official.key_map is landmarks.OFFICIAL_KEY_MAP and spec.official.published_at.startswith('https://')
        assert {k: v for k, v in spec.metrics.items() if isinstance(v, float)} == OFFICIAL_NME[spec.name]
        assert spec.metrics['source'].startswith('HRNet-Facial-Landmark-Detection README')
        assert getattr(landmarks, spec.name) is hrnet_zoo.TASK_MODELS[spec.name] and spec.name in dir(landmarks)
    assert landmarks.OFFICIAL_FACE_KEY_MAP == landmarks.OFFICIAL_KEY_MAP.rename
    with pytest.raises(AttributeError):
        landmarks.hrnet_w18_face_helen


def test_pretrained_cfg_of_a_named_model():
    m = hrnet_zoo.create_model('hrnet_w18_face_300w', input_size=(128, 128))
    cfg = m.pretrained_cfg
    assert (cfg['architecture'], cfg['task'], cfg['trunk'], cfg['dataset']) == ('hrnet_w18_face_300w', 'landmarks',
                                                                                 'hrnet_w18', '300w')
    assert cfg['num_landmarks'] == 68 and cfg['input_size'] == (3, 128, 128) and m.input_size == (128, 128)
    assert cfg['official_checkpoint'] == 'HR18-300W.pth' and cfg['metrics']['nme'] == 3.34
    assert cfg['align_corners'] is False and cfg['bn_momentum'] == 0.01
    assert m.flip_pairs == hrnet_zoo.get_model_spec('hrnet_w18_face_300w').flip_pairs
    assert cfg['flip_pairs'] == [list(p) for p in m.flip_pairs]


def test_overrides_show_in_pretrained_cfg_and_the_trunk_loads_from_a_classifier():
    import timm
    from hrnet_zoo.checkpoint import load_trunk
    cfg = build_face_model(num_landmarks=5, arch='hrnet_w18_small', bn_momentum=0.1).pretrained_cfg
    assert (cfg['architecture'], cfg['trunk'], cfg['num_landmarks'], cfg['flip_pairs'], cfg['bn_momentum']) == (
        'FaceHRNet', 'hrnet_w18_small', 5, [], 0.1)
    cfg = hrnet_zoo.create_model('hrnet_w18_face_wflw', num_landmarks=5, arch='hrnet_w18_small').pretrained_cfg
    assert (cfg['architecture'], cfg['trunk'], cfg['num_landmarks'], cfg['flip_pairs']) == (
        'hrnet_w18_face_wflw', 'hrnet_w18_small', 5, [])
    assert cfg['metrics'] == {} and cfg['official_checkpoint'] is None and cfg['dataset'] is None
    classifier = timm.create_model('hrnet_w18_small')
    m = hrnet_zoo.create_model('hrnet_w18_face_aflw', arch='hrnet_w18_small', weights_backbone=classifier.state_dict())
    assert m.pretrained_cfg['trunk'] == 'hrnet_w18_small' and m.pretrained_cfg['num_landmarks'] == 19
    assert m.pretrained_cfg['metrics'] == {} and len(m.flip_pairs) == 8
    trunk = [k for k in m.state_dict() if k.startswith(('conv1.', 'layer1.', 'stage4.'))]
    assert trunk and all(torch.equal(m.state_dict()[k], classifier.state_dict()[k]) for k in trunk)
    assert load_trunk(build_face_model(dataset='aflw', arch='hrnet_w18_small'), classifier.state_dict())


def test_load_official_checkpoint_from_a_file(tmp_path):
    from hrnet_zoo.tasks.landmarks import load_official_checkpoint
    ref = randomize_bn(build_face_model(dataset='cofw', arch='hrnet_w18_small')).eval()
    torch.save(to_official_layout(ref.state_dict()), tmp_path / 'HR18-COFW.pth')
    m = load_official_checkpoint(build_face_model(dataset='cofw', arch='hrnet_w18_small'), str(tmp_path / 'HR18-COFW.pth'))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), ref(x))
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(m, str(tmp_path / 'HR18-WFLW.pth'))
    with pytest.raises(ValueError, match='unknown face dataset'):
        build_face_model(dataset='helen')
