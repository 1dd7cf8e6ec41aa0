"""The pose model table: names, trunks, official files and figures as data, generated builders
reachable from the package, pretrained_cfg, the official-checkpoint loader, deprecated names and
the pose recipe."""
from __future__ import annotations

import warnings

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.tasks import pose
from hrnet_zoo.tasks.pose.specs import COCO_FLIP_PAIRS, MMPOSE_SPECS, SPECS
from hrnet_zoo.train.recipes import load_recipe

OFFICIAL_AP = {'hrnet_w32_pose_coco_256x192': 74.4, 'hrnet_w32_pose_coco_384x288': 75.8,
               'hrnet_w48_pose_coco_256x192': 75.1, 'hrnet_w48_pose_coco_384x288': 76.3}


def test_spec_table():
    by_name = {s.name: s for s in SPECS}
    mmpose = {s.name for s in MMPOSE_SPECS}  # mmpose's models: tests/test_pose_mmpose.py
    assert set(by_name) == set(OFFICIAL_AP) | {'hrnet_pose'} | mmpose == set(hrnet_zoo.list_models(task='pose'))
    for name, ap in OFFICIAL_AP.items():
        s = by_name[name]
        trunk, size = name.split('_pose_coco_')
        assert s.trunk == trunk and s.input_size == tuple(map(int, size.split('x'))) and s.num_outputs == 17
        assert s.official.filename == f'pose_hrnet_w{trunk[7:]}_{size}.pth'
        assert 'deep-high-resolution-net.pytorch' in s.official.repo and s.official.key_map.strip == ('module.',)
        assert s.metrics['AP'] == ap and s.metrics['dataset'] == 'coco' and 'README' in s.metrics['source']
        assert s.flip_pairs == COCO_FLIP_PAIRS and s.head == 'v1'
    assert by_name['hrnet_pose'].official is None and not by_name['hrnet_pose'].metrics


def test_builders_are_package_attributes_with_pretrained_cfg():
    m = pose.hrnet_w32_pose_coco_384x288()
    cfg = m.pretrained_cfg
    assert cfg['architecture'] == m.variant == 'hrnet_w32_pose_coco_384x288' and cfg['trunk'] == 'hrnet_w32'
    assert cfg['input_size'] == (3, 384, 288) and m.input_size == (384, 288) and m.num_keypoints == 17
    assert cfg['official_checkpoint'] == 'pose_hrnet_w32_384x288.pth' and m.flip_pairs == COCO_FLIP_PAIRS
    g = pose.hrnet_pose(arch='hrnet_w18_small', num_keypoints=5, input_size=(64, 48))
    assert g.pretrained_cfg['trunk'] == 'hrnet_w18_small' and g.pretrained_cfg['num_keypoints'] == 5
    assert g.flip_pairs == () and g.pretrained_cfg['input_size'] == (3, 64, 48)
    assert pose.hrnet_pose(width=18).pretrained_cfg['trunk'] == 'hrnet_w18'
    with pytest.raises(TypeError, match='hrnet_pose'):
        pose.hrnet_w32_pose_coco_256x192(arch='hrnet_w18')
    with pytest.raises(AttributeError):
        pose.hrnet_w99_pose
    bare = pose.PoseHRNet('hrnet_w18_small', num_keypoints=3)
    assert bare.pretrained_cfg['trunk'] == 'hrnet_w18_small' and bare.pretrained_cfg['num_keypoints'] == 3


def test_load_official_checkpoint_and_deprecated_names(tmp_path):
    m = pose.hrnet_pose(arch='hrnet_w18_small', num_keypoints=17)
    sd = {f'module.{k}': v + 1 if v.is_floating_point() else v for k, v in m.state_dict().items()}
    torch.save(sd, tmp_path / 'official.pth')
    pose.load_official_checkpoint(m, str(tmp_path / 'official.pth'))
    assert torch.equal(m.final_layer.weight, sd['module.final_layer.weight'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert pose.load_official_pose_checkpoint is pose.load_official_checkpoint
        variants = pose.POSE_VARIANTS
        assert variants['hrnet_w48_pose_coco_256x192'] == ('hrnet_w48', (256, 192), 'pose_hrnet_w48_256x192.pth')
        old = pose.build_pose_model(arch='hrnet_w18_small', num_keypoints=4)
        from hrnet_zoo.tasks.heatmap import get_max_preds
        assert pose.get_max_preds is get_max_preds
    assert old.num_keypoints == 4 and len(caught) == 4
    assert all(issubclass(w.category, DeprecationWarning) for w in caught)


def test_pose_recipe_is_the_official_config():
    r = load_recipe('pose_coco')
    assert r.task == 'pose' and r.reproduces['AP'] == 74.4
    assert r.train['optimizer'] == 'adam' and r.train['lr'] == 1e-3 and r.train['milestones'] == [170, 200]
    assert r.train['epochs'] == 210 and r.global_batch == 128
    assert (r.data['half_body_prob'], r.data['half_body_min_joints'], r.data['scale_factor'],
            r.data['rotation_factor'], r.data['rotation_prob']) == (0.3, 8, 0.35, 45.0, 0.6)
    assert r.eval['oks_thresh'] == 0.9 and r.eval['vis_thresh'] == 0.2 and r.eval['det_score_thresh'] == 0.0
    from hrnet_zoo.tasks.pose.training import dataset_options
    assert dataset_options(r.with_overrides(['data.sigma=3']).data)['sigma'] == 3


def test_usage_snippet_runs(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from hrnet_zoo.tasks.pose.specs import USAGE
    monkeypatch.chdir(tmp_path)
    Image.new('RGB', (100, 70), (90, 60, 30)).save('people.jpg')
    model = pose.hrnet_pose(arch='hrnet_w18_small', input_size=(64, 48)).eval()
    code = USAGE.split('```python\n')[1].split('```')[0]
    namespace = {'model': model}
    exec(code, namespace)
    assert 1 <= len(namespace['people']) <= 2 and capsys.readouterr().out
    assert namespace['people'][0]['keypoints'].shape == (17, 2)


def test_the_codec_decides_the_maps_per_keypoint():
    # mmpose's combined targets have 3 maps per keypoint (disc, x and y offset): a codec override
    # rebuilds the head for it (17 x 3 = 51 maps), and back (17); an explicit maps_per_keypoint wins
    assert hrnet_zoo.create_model('hrnet_w32_pose_coco_256x192_udp_regress').final_layer.out_channels == 51
    m = hrnet_zoo.create_model('hrnet_w32_pose_coco_256x192_udp_regress', codec='mmpose_udp')
    assert m.final_layer.out_channels == 17 and m.pretrained_cfg['codec'] == 'mmpose_udp'
    m = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5, codec='mmpose_udp_combined')
    assert m.final_layer.out_channels == 15
    m = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5, codec='mmpose_udp_combined',
                               maps_per_keypoint=1)
    assert m.final_layer.out_channels == 5
