"""hrnet_zoo.hub.layouts / loading: the source layouts as data (key maps pinned), their detection from a
file's keys, the trunk a file holds, and the errors for a file of another layout or another model.
Models are built on the meta device where only shapes matter (nothing is computed or downloaded)."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.checkpoint import WeightsError
from hrnet_zoo.hub import LAYOUT_NAMES, LAYOUTS, detect_layout, get_layout, models_that_fit, read_source, trunk_variants
from hrnet_zoo.hub.layouts import MMDET_KEY_MAP, MMPOSE_KEY_MAP
from hrnet_zoo.hub.loading import describe_fit
from hrnet_zoo.tasks.detection import MMDET_KEY_MAP as DETECTION_KEY_MAP
from conftest import shapes_only

ONE = torch.zeros(1)


def _state(name: str, prefix: str = '', **kwargs):
    with shapes_only():
        return {prefix + k: v for k, v in hrnet_zoo.create_model(name, **kwargs).state_dict().items()}


# ---------------------------------------------------------------- key maps, pinned
def test_mmpose_key_map_both_generations():
    keys = {'backbone.conv1.weight': 'conv1.weight',
            'backbone.stage4.0.fuse_layers.0.3.0.0.weight': 'stage4.0.fuse_layers.0.3.0.0.weight',
            'backbone.transition1.1.0.0.weight': 'transition1.1.0.0.weight',
            'keypoint_head.final_layer.weight': 'final_layer.weight',  # 0.x TopdownHeatmapSimpleHead
            'head.final_layer.bias': 'final_layer.bias',  # 1.x HeatmapHead
            'module.backbone.bn1.running_var': 'bn1.running_var'}
    mapped = MMPOSE_KEY_MAP.apply({k: ONE for k in [*keys, 'data_preprocessor.mean', 'data_preprocessor.std']})
    assert list(mapped) == list(keys.values())  # mmpose's own load hook drops data_preprocessor.* too


def test_mmdet_key_map_is_the_detection_packages():
    assert DETECTION_KEY_MAP is MMDET_KEY_MAP is get_layout('mmdet').key_map
    keys = {'backbone.layer1.0.conv1.weight': 'backbone.layer1.0.conv1.weight',
            'neck.reduction_conv.conv.weight': 'backbone.neck.reduction_conv.0.weight',  # mmdet 2.x/3.x ConvModule
            'neck.fpn_convs.4.conv.bias': 'backbone.neck.fpn_conv.4.bias',
            'neck.fpn_conv.2.weight': 'backbone.neck.fpn_conv.2.weight',  # mmdet 1.x
            'neck.reduction_conv.0.bias': 'backbone.neck.reduction_conv.0.bias'}  # HRNet-Object-Detection: ours
    mapped = MMDET_KEY_MAP.apply({k: ONE for k in [*keys, 'rpn_head.rpn_conv.weight', 'roi_head.bbox_head.fc_cls.bias']})
    assert list(mapped) == list(keys.values())  # mmdetection's heads are not ours: dropped
    assert get_layout('mmdet').part == 'backbone.'


def test_timm_and_official_layouts():
    assert get_layout('timm').key_map.apply({'module.classifier.weight': ONE}) == {'classifier.weight': ONE}
    assert get_layout('official').key_map is None  # each model's own official key map
    assert get_layout('mmpose').generation == '1.x' and get_layout('mmpose', '0.x').generation == '0.x'
    assert LAYOUT_NAMES == ('timm', 'official', 'mmpose', 'mmdet', 'mmseg', 'mmpretrain')
    assert get_layout('mmseg').tasks == ('segmentation',) and get_layout('mmpretrain').tasks == ('classification',)
    assert get_layout('mmpretrain').zero_fill and not get_layout('mmseg').zero_fill  # test_hub_openmmlab.py
    with pytest.raises(KeyError, match='unknown layout'):
        get_layout('paddle')


# ---------------------------------------------------------------- detection from keys
@pytest.mark.parametrize('keys, label', [
    (['conv1.weight', 'incre_modules.0.0.conv1.weight', 'classifier.weight'], 'timm'),
    (['module.conv1.weight', 'stage4.0.fuse_layers.0.1.0.weight', 'final_layer.weight'], 'official'),  # pose
    (['module.conv1.weight', 'module.head.3.weight'], 'official'),  # landmarks
    (['model.conv1.weight', 'model.last_layer.3.weight', 'loss.criterion.weight'], 'official'),  # segmentation
    (['backbone.conv1.weight', 'backbone.neck.fpn_conv.0.weight', 'head.classification_head.conv.0.weight'],
     'official'),  # our own FCOS: a head. at the top, but its neck is under backbone.
    (['backbone.conv1.weight', 'keypoint_head.final_layer.weight'], 'mmpose 0.x'),
    (['backbone.conv1.weight', 'head.final_layer.weight', 'data_preprocessor.mean'], 'mmpose 1.x'),
    (['backbone.conv1.weight', 'neck.reduction_conv.conv.weight', 'rpn_head.rpn_conv.weight'], 'mmdet'),
    (['backbone.conv1.weight', 'decode_head.conv_seg.weight'], 'mmseg'),
    (['backbone.conv1.weight', 'decode_head.1.bottleneck.conv.weight', 'decode_head.0.conv_seg.bias'], 'mmseg'),
    (['backbone.conv1.weight', 'neck.increase_layers.0.0.conv1.weight', 'head.fc.weight'], 'mmpretrain'),
])
def test_detect_layout_from_keys(keys, label):
    assert detect_layout(keys).label == label


def test_unknown_layout_names_the_file_and_its_keys():
    with pytest.raises(WeightsError, match=r"x.pth: not an HRNet checkpoint of a known layout \(its keys start with "
                                           r"fc, layer4\); known layouts: timm, official, mmpose"):
        detect_layout(['layer4.0.conv1.weight', 'fc.weight'], 'x.pth')


# ---------------------------------------------------------------- the trunk a file holds
def test_trunk_variants_from_keys_and_widths():
    for name in ('hrnet_w18_small', 'hrnet_w18_small_v2', 'hrnet_w32', 'hrnet_w18', 'hrnet_w18_ssld'):
        assert trunk_variants(_state(name)) == [name], name  # the head conv bias tells W18 from W18-SSLD
    pose = _state('hrnet_pose', arch='hrnet_w18')  # no classifier head: both W18 configs fit the trunk
    assert trunk_variants(pose) == ['hrnet_w18', 'hrnet_w18_ssld']
    assert trunk_variants({'conv1.weight': ONE}) == []


def test_models_that_fit_by_trunk_and_head():
    mmpose = read_source({('head.' + k if k.startswith('final_layer') else 'backbone.' + k): v
                          for k, v in _state('hrnet_pose').items()})
    assert mmpose.layout.label == 'mmpose 1.x'
    fits = models_that_fit(mmpose)  # the official + generic specs first, then mmpose's 17-keypoint W32 specs
    assert fits[:3] == ['hrnet_w32_pose_coco_256x192', 'hrnet_w32_pose_coco_384x288', 'hrnet_pose']
    assert 'hrnet_w32_animal_ap10k_256x256' in fits and 'hrnet_w48_pose_coco_256x192_dark' not in fits
    assert 'hrnet_w32_pose_coco_256x192_udp_regress' not in fits  # 51 maps (3 per keypoint), not 17
    face = read_source({'module.' + k: v for k, v in _state('hrnet_w18_face_aflw').items()})
    assert 'hrnet_w18_face_aflw' in models_that_fit(face) and 'hrnet_w18_face_wflw' not in models_that_fit(face)
    small = read_source({'backbone.' + k if not k.startswith('final_layer') else 'keypoint_head.' + k: v
                         for k, v in _state('hrnet_pose', arch='hrnet_w18_small').items()})
    assert describe_fit(small) == ('No registered model fits it (its trunk: hrnet_w18_small; 17 outputs at '
                                   'final_layer.weight).')


def test_a_file_of_another_layout_or_model_is_a_clear_error():
    mmpose = {('head.' + k if k.startswith('final_layer') else 'backbone.' + k): v
              for k, v in _state('hrnet_pose').items()}
    with pytest.raises(WeightsError) as err:  # a pose file for a classifier
        hrnet_zoo.create_model('hrnet_w18_small', checkpoint_path=mmpose)
    assert str(err.value).startswith('<state_dict> is an mmpose 1.x checkpoint (backbone.* + head.*: an mmpose 1.x '
                                     'top-down heatmap model); hrnet_w18_small is a classification model, which '
                                     'takes timm, official, mmpretrain. It fits: hrnet_w32_pose_coco_256x192')
    with pytest.raises(WeightsError, match='(?s)predicts 17 landmarks.*num_landmarks=17.*It fits: hrnet_w32_pose_coco'):
        hrnet_zoo.create_model('hrnet_w18_face_aflw', arch='hrnet_w32', checkpoint_path=mmpose)
    mmseg = {'backbone.conv1.weight': ONE, 'decode_head.conv_seg.weight': ONE}
    with pytest.raises(WeightsError, match=r'is an mmseg checkpoint .*hrnet_w18_small is a classification model, '
                                           r'which takes timm, official, mmpretrain\.'):
        hrnet_zoo.create_model('hrnet_w18_small', checkpoint_path=mmseg)


def test_layouts_is_a_leaf():
    """Task packages read key maps from hub.layouts: it imports nothing of the table or the hub."""
    import ast
    from pathlib import Path
    import hrnet_zoo.hub.layouts as layouts
    tree = ast.parse(Path(layouts.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {'__future__', 'dataclasses', 'typing', 'checkpoint', 'configs'}, imported
