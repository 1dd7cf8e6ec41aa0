"""hrnet_zoo.hub.convert per source layout: a random model saved in each layout (official, timm,
mmpose 0.x and 1.x with numpy arrays in ``meta``, mmdetection trunk + HRFPN neck) -> ``convert``
(layout detected) -> ``verify`` -> load -> the same outputs; and ``checkpoint_path=`` takes the same
files. Small trunks (hrnet_w18_small) and tiny inputs keep it to seconds. Nothing downloads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import hrnet_zoo
from hrnet_zoo import hub
from hrnet_zoo.checkpoint import WeightsError, read_state_dict
from conftest import randomize_bn

SMALL = {'arch': 'hrnet_w18_small'}
X = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(4))


def mmpose_meta():
    """The ``meta`` of an mmpose 1.x (mmengine) checkpoint: the dataset's metainfo as
    ``parse_pose_metainfo`` leaves it, numpy arrays included (float32 sigmas / weights, uint8 colours)."""
    return {'epoch': 210, 'mmengine_version': '0.7.4', 'seed': np.int64(21),
            'dataset_meta': {'dataset_name': 'coco', 'num_keypoints': 17, 'flip_indices': [0, 2, 1],
                             'sigmas': np.full(17, 0.05, dtype=np.float32),
                             'dataset_keypoint_weights': np.ones(17, dtype=np.float32),
                             'keypoint_colors': np.zeros((17, 3), dtype=np.uint8)}}


def in_layout(state, layout):
    """Our pose model's state_dict as each codebase saves it."""
    if layout == 'official':  # deep-high-resolution-net.pytorch: a plain state_dict, our keys
        return dict(state)
    head = {'mmpose 0.x': 'keypoint_head.', 'mmpose 1.x': 'head.'}[layout]
    sd = {(head + k if k.startswith('final_layer') else 'backbone.' + k): v for k, v in state.items()}
    if layout == 'mmpose 0.x':
        return {'meta': {'epoch': 210, 'mmpose_version': '0.29.0'}, 'state_dict': sd}
    sd.update({'data_preprocessor.mean': torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1),
               'data_preprocessor.std': torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)})
    return {'meta': mmpose_meta(), 'state_dict': sd}


@pytest.fixture(scope='module')
def pose():
    torch.manual_seed(0)
    return randomize_bn(hrnet_zoo.create_model('hrnet_pose', **SMALL)).eval()


@pytest.mark.parametrize('layout', ['official', 'mmpose 0.x', 'mmpose 1.x'])
def test_pose_layouts_convert_verify_load_same_outputs(pose, layout, tmp_path):
    path = tmp_path / 'pose.pth'
    # mmpose's publish_model.py saves with the legacy (non-zip) serialisation
    torch.save(in_layout(pose.state_dict(), layout), path, _use_new_zipfile_serialization=layout == 'official')
    assert hub.read_source(path).layout.label == layout
    out = hub.convert(path, 'hrnet_pose', tmp_path / 'out', model_args=SMALL)
    report = hub.verify(out)
    assert report.ok, report.problems
    card = (out / 'README.md').read_text()
    assert f'Converted from:** `pose.pth` ({layout} layout)' in card
    loaded = hrnet_zoo.create_model('hrnet_pose', pretrained=str(out), **SMALL).eval()
    direct = hrnet_zoo.create_model('hrnet_pose', checkpoint_path=str(path), **SMALL).eval()
    with torch.no_grad():
        ref = pose(X)
        assert ref.shape == (1, 17, 16, 12)
        assert torch.equal(loaded(X), ref) and torch.equal(direct(X), ref)


def test_numpy_meta_is_read_and_code_in_meta_still_refused(pose, tmp_path):
    path = tmp_path / 'mmpose1.pth'
    torch.save(in_layout(pose.state_dict(), 'mmpose 1.x'), path)
    with pytest.raises(Exception, match='Weights only load failed'):  # what plain weights_only=True does
        torch.load(path, weights_only=True)
    state = read_state_dict(path)
    assert 'head.final_layer.weight' in state and 'data_preprocessor.mean' in state
    meta = {'dataset_meta': {'names': np.array(['nose'], dtype=object)}}  # an object array: needs code
    torch.save({'meta': meta, 'state_dict': in_layout(pose.state_dict(), 'mmpose 1.x')['state_dict']},
               tmp_path / 'objects.pth')
    with pytest.raises(WeightsError, match='needs code to unpickle'):
        read_state_dict(tmp_path / 'objects.pth')


def test_timm_layout_classifier(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(hrnet_zoo.create_model('hrnet_w18_small', num_classes=7)).eval()
    torch.save(model.state_dict(), tmp_path / 'timm.pth')  # timm's keys: no prefix, no wrapper
    assert hub.read_source(tmp_path / 'timm.pth').layout.label == 'timm'
    out = hub.convert(tmp_path / 'timm.pth', 'hrnet_w18_small', tmp_path / 'out')
    assert hub.verify(out).ok and json.loads((out / 'config.json').read_text())['num_classes'] == 7
    x = torch.randn(1, 3, 64, 64)
    loaded = hrnet_zoo.create_model('hrnet_w18_small', pretrained=True, num_classes=7,
                                    pretrained_cfg_overlay=dict(file=str(out / hub.WEIGHTS_FILE), num_classes=7)).eval()
    direct = hrnet_zoo.create_model('hrnet_w18_small', num_classes=7, checkpoint_path=str(tmp_path / 'timm.pth')).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)) and torch.equal(direct(x), model(x))
    with pytest.raises(WeightsError, match='predicts 7 classes.*num_classes=7'):
        hrnet_zoo.create_model('hrnet_w18_small', checkpoint_path=str(tmp_path / 'timm.pth'))


DET = dict(arch='hrnet_w18_small', min_size=96, max_size=128)


def mmdet_checkpoint(backbone, path):
    """A detector's trunk + HRFPN neck as mmdetection 2.x saves them (ConvModule names), with its
    own RPN / RoI heads (not ours) beside them."""
    state = {}
    for k, v in backbone.state_dict().items():
        if k.startswith('neck.reduction_conv.0.'):
            k = k.replace('reduction_conv.0.', 'reduction_conv.conv.')
        elif k.startswith('neck.fpn_conv.'):
            level, rest = k[len('neck.fpn_conv.'):].split('.', 1)
            k = f'neck.fpn_convs.{level}.conv.{rest}'
        else:
            k = 'backbone.' + k
        state[k] = v
    state.update({'rpn_head.rpn_conv.weight': torch.randn(256, 256, 3, 3), 'roi_head.bbox_head.fc_cls.bias': torch.zeros(81)})
    torch.save({'meta': {'epoch': 12, 'mmdet_version': '2.7.0'}, 'state_dict': state}, path)


def test_mmdet_trunk_and_neck_into_a_detector(tmp_path):
    torch.manual_seed(0)
    source = randomize_bn(hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w18', **DET)).eval()
    path = tmp_path / 'faster_rcnn_hrnetv2p_w18_1x_coco.pth'
    mmdet_checkpoint(source.backbone, path)
    assert hub.read_source(path).layout.label == 'mmdet'
    out = hub.convert(path, 'fasterrcnn_hrnetv2p_w18', tmp_path / 'out', model_args=DET)
    config = json.loads((out / 'config.json').read_text())
    assert config['part'] == 'backbone.' and hub.verify(out).ok
    assert all(k.startswith('backbone.') for k in read_state_dict(out / hub.WEIGHTS_FILE))  # only what the file has
    front = yaml.safe_load((out / 'README.md').read_text().split('---')[1])
    assert front['pipeline_tag'] == 'object-detection' and '`backbone.*` only' in (out / 'README.md').read_text()
    loaded = hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w18', pretrained=str(out), **DET).eval()
    with pytest.warns(UserWarning, match=r'mmdet\) holds .* filled fasterrcnn_hrnetv2p_w18.backbone\.\*'):
        direct = hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w18', checkpoint_path=str(path), **DET).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = source.backbone(x)
        for model in (loaded, direct):
            for level, y in model.backbone(x).items():
                assert torch.equal(y, ref[level]), level
    with pytest.raises(WeightsError, match=r'is an mmdet checkpoint .*hrnet_pose is a pose model, which takes '
                                           r'official, mmpose 0.x, mmpose 1.x\.'):
        hrnet_zoo.create_model('hrnet_pose', checkpoint_path=str(path), **SMALL)
