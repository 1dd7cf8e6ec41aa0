"""Detection models: the HRNetV2p backbone for torchvision (levels, strides, channels, official
HRFPN keys), the spec table and its builders (pretrained_cfg, arch=, no patched attributes), the
four detector classes (forward / backward), and weights: ``weights_backbone=`` from a classifier
or an official mmdetection checkpoint (trunk + neck), ``checkpoint_path=`` / load_official_checkpoint."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
import hrnet_zoo.tasks.detection as det
from hrnet_zoo.checkpoint import KeysMismatch, WeightsError
from hrnet_zoo.configs import get_config
from hrnet_zoo.tasks.detection import (HRNetV2pBackbone, SyntheticBoxes, collate, convert_official_detection_state_dict,
                                       load_official_checkpoint)

SMALL = dict(min_size=128, max_size=128)
# Fewer proposals / sampled RoIs than COCO's defaults keep the CPU tests fast (torchvision kwargs).
SMALL_RCNN = dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
                  rpn_post_nms_top_n_test=50, box_batch_size_per_image=64, box_detections_per_img=20)
SMALL_DENSE = dict(topk_candidates=100, detections_per_img=20)
NAMES = ('fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32', 'fasterrcnn_hrnetv2p_w40', 'maskrcnn_hrnetv2p_w32',
         'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32',
         'maskrcnn_hrnetv2p_w18', 'maskrcnn_hrnetv2p_w40', 'fcos_hrnetv2p_w18', 'fcos_hrnetv2p_w40')  # mmdet widths


def small_detector(kind, **kw):
    extra = SMALL_RCNN if kind in ('fasterrcnn', 'maskrcnn') else SMALL_DENSE
    return det.build_detector(kind, 'hrnet_w18_small', num_classes=3, **SMALL, **extra, **kw)


_small = small_detector


@pytest.mark.parametrize('size', [(128, 192), (100, 75)])
def test_v2p_levels_strides_and_channels(size):
    bb = HRNetV2pBackbone(get_config('hrnet_w18_small')).eval()
    with torch.no_grad():
        out = bb(torch.randn(1, 3, *size))
    assert list(out) == ['0', '1', '2', '3', '4'] and bb.out_channels == 256
    assert bb.strides == [4, 8, 16, 32, 64]
    for (name, level), stride in zip(out.items(), bb.strides):
        assert level.shape == (1, 256, -(-size[0] // stride), -(-size[1] // stride)), name


def test_v2p_official_hrfpn_keys_and_feature_mode():
    bb = HRNetV2pBackbone(get_config('hrnet_w18_small'))
    keys = set(bb.state_dict())
    assert {'neck.reduction_conv.0.weight', 'neck.reduction_conv.0.bias', 'neck.fpn_conv.4.weight',
            'neck.fpn_conv.0.bias'} <= keys
    assert bb.neck.reduction_conv[0].in_channels == 16 + 32 + 64 + 128 and bb.neck.fpn_conv[0].kernel_size == (3, 3)
    assert torch.count_nonzero(bb.neck.fpn_conv[2].bias) == 0  # official init: zero biases
    official = {'backbone.' + k: v for k, v in bb.state_dict().items() if not k.startswith('neck.')}
    official.update({k: v for k, v in bb.state_dict().items() if k.startswith('neck.')})
    official['rpn_head.rpn_conv.weight'] = torch.zeros(1)  # mmdetection head: not converted
    converted = convert_official_detection_state_dict({'state_dict': official})
    assert set(converted) == {'backbone.' + k for k in bb.state_dict()}
    feats = hrnet_zoo.create_model('hrnet_w18_small', features_only=True, feature_location='v2p')
    assert feats.feature_info.channels() == [256] * 5 and feats.feature_info.reduction() == [4, 8, 16, 32, 64]
    assert 'neck.fpn_conv.0.weight' in feats.state_dict()


def test_public_builders():
    m = det.fasterrcnn_hrnetv2p_w32(num_classes=5)
    assert m.backbone.out_channels == 256 and m.roi_heads.box_predictor.cls_score.out_features == 5
    assert m.rpn.anchor_generator.num_anchors_per_location() == [3] * 5
    assert m.transform.size_divisible == 64 and m.backbone.branch_channels == [32, 64, 128, 256]
    assert m.backbone.norm_eval is False
    for name in ('fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32', 'fasterrcnn_hrnetv2p_w40',
                 'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32'):
        assert name in hrnet_zoo.list_models() and callable(getattr(det, name))
    with pytest.raises(ValueError, match='no detection weights'):  # no mmdetection file either
        det.retinanet_hrnetv2p_w32(pretrained=True)
    # mmdetection's files are records (trunk + HRFPN only: tests/test_hub_openmmlab.py), none for RetinaNet
    assert hrnet_zoo.hub.record_for_model('fasterrcnn_hrnetv2p_w18').name == 'fasterrcnn_hrnetv2p_w18.mmdet_2x'
    with pytest.raises(ValueError, match='background'):
        det.build_detector('fasterrcnn', 'hrnet_w18_small', num_classes=1)


def test_spec_table_is_the_official_one():
    specs = {s.name: s for s in det.SPECS}
    assert tuple(specs) == NAMES and hrnet_zoo.list_models(task='detection') == sorted(NAMES)
    assert {n: s.trunk for n, s in specs.items()} == {
        'fasterrcnn_hrnetv2p_w18': 'hrnet_w18', 'fasterrcnn_hrnetv2p_w32': 'hrnet_w32',
        'fasterrcnn_hrnetv2p_w40': 'hrnet_w40', 'maskrcnn_hrnetv2p_w32': 'hrnet_w32',
        'retinanet_hrnetv2p_w32': 'hrnet_w32', 'fcos_hrnetv2p_w32': 'hrnet_w32',
        'maskrcnn_hrnetv2p_w18': 'hrnet_w18', 'maskrcnn_hrnetv2p_w40': 'hrnet_w40', 'fcos_hrnetv2p_w18': 'hrnet_w18',
        'fcos_hrnetv2p_w40': 'hrnet_w40'}
    for s in specs.values():
        assert (s.task, s.num_outputs, s.input_size, s.official, s.dataset) == ('detection', 91, (800, 1333), None, 'coco')
        assert hrnet_zoo.get_model_spec(s.name) is s and s.head == 'v2p_' + s.options['detector']
    aps = {n: s.metrics.get('bbox_AP') for n, s in specs.items()}
    assert aps == {'fasterrcnn_hrnetv2p_w18': 36.1, 'fasterrcnn_hrnetv2p_w32': 39.5, 'fasterrcnn_hrnetv2p_w40': 40.4,
                   'maskrcnn_hrnetv2p_w32': None, 'retinanet_hrnetv2p_w32': None, 'fcos_hrnetv2p_w32': None,
                   'maskrcnn_hrnetv2p_w18': None, 'maskrcnn_hrnetv2p_w40': None, 'fcos_hrnetv2p_w18': None,
                   'fcos_hrnetv2p_w40': None}  # mmdetection's figures are the records' (its heads, not these)
    assert 'mmdetection heads' in specs['fasterrcnn_hrnetv2p_w32'].metrics['source']
    assert specs['fasterrcnn_hrnetv2p_w32'].metrics['split'] == 'val2017'


@pytest.mark.parametrize('name', ['fasterrcnn_hrnetv2p_w32', 'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32',
                                  'fcos_hrnetv2p_w32'])
def test_builders_carry_pretrained_cfg_and_arch_override(name):
    m = hrnet_zoo.create_model(name, arch='hrnet_w18_small', num_classes=4, min_size=96, max_size=160)
    cfg = m.pretrained_cfg
    assert cfg['architecture'] == name and cfg['trunk'] == 'hrnet_w18_small' and cfg['task'] == 'detection'
    assert cfg['num_classes'] == 4 and cfg['input_size'] == (3, 96, 160) and cfg['metrics'] == {}
    assert (m.variant, m.num_classes, m.input_size, m.detector_kind) == ('hrnet_w18_small', 4, (96, 160),
                                                                         name.split('_')[0])
    assert m.backbone.branch_channels == [16, 32, 64, 128] and m.transform.min_size == (96,)
    assert not {'variant', 'detector_kind', 'spec', 'num_classes'} & set(vars(m))  # nothing patched on
    default = hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w18').pretrained_cfg
    assert default['trunk'] == 'hrnet_w18' and default['metrics']['bbox_AP'] == 36.1
    assert default['input_size'] == (3, 800, 1333) and default['num_classes'] == 91


def test_spec_less_detector_has_a_default_cfg():
    m = small_detector('retinanet')
    assert m.pretrained_cfg['trunk'] == 'hrnet_w18_small' and m.pretrained_cfg['num_classes'] == 3
    assert m.pretrained_cfg['input_size'] == (3, 128, 128) and m.variant == 'hrnet_w18_small'
    assert m.backbone.strides == [8, 16, 32, 64, 128]
    with pytest.raises(ValueError, match='unknown detector'):
        det.build_detector('yolo')


def test_weights_backbone_loads_trunk_and_freezes_bn(tmp_path):
    src = hrnet_zoo.create_model('hrnet_w18_small')
    path = tmp_path / 'cls.pth'
    torch.save(src.state_dict(), path)
    m = _small('fasterrcnn', weights_backbone=str(path))
    assert torch.equal(m.backbone.stage4[0].branches[3][0].conv1.weight, src.stage4[0].branches[3][0].conv1.weight)
    m.train()
    assert m.backbone.norm_eval and not m.backbone.bn1.training


def _mmdet_neck_key(key, layout):
    """Our HRFPN key in an official layout: HRNet-Object-Detection's (ours), mmdetection v1 or v2."""
    if layout != 'hrnet' and key.startswith('neck.reduction_conv.0.'):
        return key.replace('reduction_conv.0.', 'reduction_conv.conv.')
    if layout == 'mmdet_v2':
        level, rest = key[len('neck.fpn_conv.'):].split('.', 1)
        return f'neck.fpn_convs.{level}.conv.{rest}'
    return key


def _mmdet_checkpoint(path, trunk='hrnet_w18_small', seed=0, layout='hrnet'):
    """A random state_dict in an official HRNet-Object-Detection / mmdetection layout."""
    torch.manual_seed(seed)
    bb = HRNetV2pBackbone(get_config(trunk))
    state = {}
    for k, v in bb.state_dict().items():
        value = torch.randn(v.shape) if v.is_floating_point() else v
        state[_mmdet_neck_key(k, layout) if k.startswith('neck.') else 'backbone.' + k] = value
    state['rpn_head.rpn_conv.weight'] = torch.randn(256, 256, 3, 3)  # mmdetection heads: not ours
    state['roi_head.bbox_head.fc_cls.weight'] = torch.randn(81, 1024)
    torch.save({'meta': {'epoch': 12, 'mmdet_version': '1.0'}, 'state_dict': state}, path)
    return state


def test_weights_backbone_from_official_mmdet_checkpoint_sets_trunk_and_neck(tmp_path):
    path = tmp_path / 'faster_rcnn_hrnetv2p_w18_small_1x.pth'
    state = _mmdet_checkpoint(path)
    m = small_detector('fasterrcnn', weights_backbone=str(path))
    own = m.state_dict()
    assert torch.equal(own['backbone.stage4.0.branches.3.0.conv1.weight'],
                       state['backbone.stage4.0.branches.3.0.conv1.weight'])
    assert torch.equal(own['backbone.neck.fpn_conv.4.weight'], state['neck.fpn_conv.4.weight'])
    assert torch.equal(own['backbone.neck.reduction_conv.0.bias'], state['neck.reduction_conv.0.bias'])
    assert m.backbone.norm_eval
    fresh = small_detector('fasterrcnn')
    loaded = det.load_backbone_weights(fresh, state)  # a state_dict works too
    assert 'backbone.neck.fpn_conv.0.weight' in loaded and 'backbone.conv1.weight' in loaded
    assert all(k.startswith('backbone.') for k in loaded)  # the mmdetection heads are not taken
    assert det.MMDET_KEY_MAP.apply({'module.neck.fpn_conv.0.bias': 1, 'rpn_head.x': 2}) == {
        'backbone.neck.fpn_conv.0.bias': 1}


@pytest.mark.parametrize('layout', ['mmdet_v1', 'mmdet_v2'])
def test_weights_backbone_from_mmdetection_model_zoo_layouts(tmp_path, layout):
    state = _mmdet_checkpoint(tmp_path / 'zoo.pth', layout=layout)
    assert ('neck.fpn_convs.4.conv.weight' in state) == (layout == 'mmdet_v2') and 'neck.reduction_conv.conv.bias' in state
    m = small_detector('fasterrcnn', weights_backbone=str(tmp_path / 'zoo.pth'))
    fpn4 = state['neck.fpn_convs.4.conv.weight' if layout == 'mmdet_v2' else 'neck.fpn_conv.4.weight']
    assert torch.equal(m.backbone.neck.fpn_conv[4].weight, fpn4)
    assert torch.equal(m.backbone.neck.reduction_conv[0].bias, state['neck.reduction_conv.conv.bias'])
    assert torch.equal(m.backbone.conv1.weight, state['backbone.conv1.weight'])


def test_weights_backbone_wrong_variant_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / 'w18_v2.pth'
    _mmdet_checkpoint(path, trunk='hrnet_w18_small_v2')
    with pytest.raises(WeightsError, match=r'w18_v2\.pth.*(do not fit|shape)'):
        small_detector('fasterrcnn', weights_backbone=str(path))
    state = _mmdet_checkpoint(tmp_path / 'ok.pth')
    del state['neck.fpn_conv.2.weight']
    with pytest.raises(KeysMismatch, match=r'(?s)neck.*missing keys.*fpn_conv\.2\.weight'):
        det.load_backbone_weights(small_detector('fasterrcnn'), state)


def test_checkpoint_path_and_load_official_checkpoint(tmp_path):
    src = small_detector('fasterrcnn')
    engine = tmp_path / 'best.pth'
    torch.save({'model': src.state_dict(), 'epoch': 3}, engine)
    m = hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w32', arch='hrnet_w18_small', num_classes=3,
                               checkpoint_path=str(engine), **SMALL)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in src.state_dict().items())
    other = small_detector('fasterrcnn')
    load_official_checkpoint(other, src.state_dict())
    assert torch.equal(other.backbone.conv1.weight, src.backbone.conv1.weight)
    wider = det.build_detector('fasterrcnn', 'hrnet_w18_small', num_classes=5, **SMALL)
    with pytest.raises(WeightsError, match='predicts 3 classes'):
        load_official_checkpoint(wider, str(engine))
    _mmdet_checkpoint(tmp_path / 'mmdet.pth')
    with pytest.raises(WeightsError, match='mmdetection checkpoint.*weights_backbone'):
        load_official_checkpoint(other, str(tmp_path / 'mmdet.pth'))


@pytest.mark.parametrize('kind', ['maskrcnn', 'retinanet', 'fcos'])
def test_other_detectors_forward_and_backward(kind):
    ds = SyntheticBoxes(2, 128, num_classes=3, seed=1, masks=kind == 'maskrcnn')
    images, targets = collate([ds[0], ds[1]])
    model = _small(kind)
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images[:1])
    assert {'boxes', 'scores', 'labels'} <= set(out[0]) and (kind != 'maskrcnn' or 'masks' in out[0])


def test_deprecated_top_level_alias_warns():
    with pytest.warns(DeprecationWarning, match='hrnet_zoo.tasks.detection'):
        builder = hrnet_zoo.detection.fasterrcnn_hrnetv2p_w32
    assert builder is det.fasterrcnn_hrnetv2p_w32
    with pytest.raises(AttributeError):
        hrnet_zoo.detection.no_such_name
