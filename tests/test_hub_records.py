"""hrnet_zoo.hub.records: what records gained for other sources (``source.layout``, ``codec``), the
record of a source file (``hrnet-zoo convert FILE`` without ``--arch``) and ``hrnet-zoo list --source``."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import hrnet_zoo
from hrnet_zoo import hub
from hrnet_zoo.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _manifest(tmp_path, monkeypatch, *records):
    path = tmp_path / 'manifest.json'
    path.write_text(json.dumps({'weights': list(records)}))
    monkeypatch.setenv(hub.MANIFEST_ENV, str(path))
    return path


def test_every_record_names_its_source_layout_and_license():
    for r in hub.list_records():
        assert r.layout in hub.LAYOUT_NAMES and r.source['layout'] == r.layout, r.name
        assert r.license == ('mit' if r.layout in ('official', 'timm') else 'apache-2.0'), r.name  # OpenMMLab's
        assert (r.codec is not None) == (r.task in ('pose', 'landmarks')), r.name
    assert len(hub.list_records('pose', 'official')) == 4
    # mmpose: every catalogued top-down checkpoint (95 pose, 10 face; bottom-up aside), tests/test_hub_mmpose.py
    assert len(hub.list_records('pose', 'mmpose')) == 95 and len(hub.list_records('landmarks', 'mmpose')) == 10


def test_source_layout_and_codec_are_validated(tmp_path):
    good = hub.record_as_json(hub.get_weight('hrnet_w32_pose_coco_256x192'))
    cases = [({'source': dict(good['source'], layout='paddle')}, 'source.layout must be one of'),
             ({'source': {'repo': 'x'}}, 'source must give the repo and the checkpoint'),
             ({'codec': 3}, 'a pose record needs codec'), ({'codec': None}, 'a pose record needs codec'),
             ({'license': ''}, 'license must be')]
    for change, message in cases:
        path = tmp_path / 'm.json'
        path.write_text(json.dumps({'weights': [dict(good, **change)]}))
        with pytest.raises(hub.WeightsError, match=message):
            hub.load_manifest(path)
    path.write_text(json.dumps({'weights': [dict(good, codec='udp', source=dict(good['source'], layout='mmpose'))]}))
    record = hub.load_manifest(path)['hrnet_w32_pose_coco_256x192']
    assert (record.codec, record.layout) == ('udp', 'mmpose')
    seg = hub.record_as_json(hub.get_weight('hrnet_w48_seg_cityscapes'))
    path.write_text(json.dumps({'weights': [dict(seg, codec=3)]}))
    with pytest.raises(hub.WeightsError, match='codec must be a codec name or null'):
        hub.load_manifest(path)
    no_layout = dict(good, source={k: v for k, v in good['source'].items() if k != 'layout'})
    path.write_text(json.dumps({'weights': [no_layout]}))
    assert hub.load_manifest(path)['hrnet_w32_pose_coco_256x192'].layout == 'official'  # the default


def test_record_for_file_and_convert_without_arch(tmp_path, monkeypatch, capsys):
    assert hub.record_for_file('some/dir/HR18-WFLW.pth').name == 'hrnet_w18_face_wflw'
    assert hub.record_for_file('hrnetv2_w32_imagenet_pretrained.pth').name == 'hrnet_w32.ms_in1k'
    base = dataclasses.asdict(hub.get_weight('hrnet_w18_small.ms_in1k'))
    _manifest(tmp_path, monkeypatch, dict(base, name='hrnet_w18_small.zoo_test', hf_hub_id='zoo/hrnet_w18_small',
                                          source={'repo': 'ours', 'checkpoint': 'w18s_zoo.pth', 'layout': 'timm'}))
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / 'w18s_zoo.pth')
    code, text, err = run(capsys, 'convert', tmp_path / 'w18s_zoo.pth', '--out', tmp_path / 'out')
    assert code == 0, err
    config = json.loads((tmp_path / 'out' / 'config.json').read_text())
    assert (config['architecture'], config['pretrained_cfg']['tag'], config['num_classes']) == \
        ('hrnet_w18_small', 'zoo_test', 3)
    torch.save(model.state_dict(), tmp_path / 'unknown.pth')
    code, text, err = run(capsys, 'convert', tmp_path / 'unknown.pth', '--out', tmp_path / 'out2')
    assert code == 2 and 'unknown.pth: no record of the manifest has this source checkpoint' in err and '--arch' in err


def test_list_by_source_layout(capsys):
    code, text, err = run(capsys, 'list', '--source', 'official', '--task', 'pose', '--json')
    assert code == 0 and {r['name'] for r in json.loads(text)} == {r.name for r in hub.list_records('pose', 'official')}
    code, text, err = run(capsys, 'list', '--source', 'official')
    assert code == 0 and 'hrnet_w32.ms_in1k' in text and 'pose:' in text
    code, text, err = run(capsys, 'list', '--source', 'mmpose', '--task', 'landmarks', '--json')
    assert code == 0 and {r['name'] for r in json.loads(text)} == {r.name for r in hub.list_records('landmarks', 'mmpose')}
    assert len(json.loads(text)) == 10 and 'hrnet_w18_face_wflw_msra.mmpose' in text
    with pytest.raises(SystemExit):
        main(['list', '--source', 'paddle'])
