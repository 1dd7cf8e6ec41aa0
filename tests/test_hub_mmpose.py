"""mmpose's top-down HRNet checkpoints in the hub: the key maps of both generations pinned (body 1x1
head, HRNetV2 face / hand head), every mmpose record complete and decoding with the codec its file
was trained with, and random HRNetV2-W18 hand / face models saved in the 0.x and 1.x layouts under
OpenMMLab's file names -> convert (record found from the file name) -> verify -> load -> the same
outputs. One full build per architecture; the rest is data. Nothing downloads."""
from __future__ import annotations

import types
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_zoo
from hrnet_zoo import hub
from hrnet_zoo.hub.layouts import MMPOSE_KEY_MAP
from hrnet_zoo.hub.loading import apply_record_codec
from hrnet_zoo.hub.records import record_for_file
from hrnet_zoo.tasks.codecs import get_codec
from hrnet_zoo.tasks.registry import get_model_spec
from conftest import randomize_bn
from test_hub_convert import mmpose_meta

RECORDS = hub.list_records(layout='mmpose')


def test_key_maps_of_both_generations():
    keys = {  # mmpose key -> ours
        'backbone.stage4.2.fuse_layers.0.1.0.weight': 'stage4.2.fuse_layers.0.1.0.weight',
        'keypoint_head.final_layer.weight': 'final_layer.weight',                   # 0.x body head
        'head.final_layer.bias': 'final_layer.bias',                                # 1.x body / v2 last conv
        'keypoint_head.final_layer.0.weight': 'representation.mix.0.weight',        # 0.x HRNetV2: conv 270 -> 270
        'keypoint_head.final_layer.1.running_var': 'representation.mix.1.running_var',  # its BN
        'keypoint_head.final_layer.3.weight': 'final_layer.weight',                 # its conv 270 -> K
        'head.conv_layers.0.weight': 'representation.mix.0.weight',                 # 1.x HRNetV2
        'head.conv_layers.1.num_batches_tracked': 'representation.mix.1.num_batches_tracked',
        'module.backbone.conv1.weight': 'conv1.weight'}
    for theirs, ours in keys.items():
        assert list(MMPOSE_KEY_MAP.apply({theirs: torch.zeros(1)})) == [ours], theirs
    assert MMPOSE_KEY_MAP.apply({'data_preprocessor.mean': torch.zeros(3)}) == {}   # mmpose's load hook drops it


def test_every_record_is_complete():
    counts = Counter((r.task, r.source['generation']) for r in RECORDS)
    assert counts == {('pose', '0.x'): 63, ('pose', '1.x'): 32, ('landmarks', '0.x'): 9, ('landmarks', '1.x'): 1}
    files = [r.source['checkpoint'] for r in RECORDS]
    assert len(set(files)) == len(files) and len({r.name for r in RECORDS}) == len(RECORDS)
    for r in RECORDS:
        spec = get_model_spec(r.arch)
        codec = get_codec(r.codec)
        assert r.source['url'] == 'https://download.openmmlab.com/mmpose/' + r.source['url'].split('/mmpose/', 1)[1]
        assert r.source['url'].endswith('/' + r.source['checkpoint']) and r.license == 'apache-2.0', r.name
        assert codec.mmpose == r.source['generation'], r.name           # 0.x files decode as 0.x, 1.x as 1.x
        assert codec.maps_per_keypoint == spec.options.get('maps_per_keypoint', 1), r.name
        assert r.sha256 is None and r.size is None, r.name              # nothing was downloaded
        assert r.hf_hub_id == f'hrnet-zoo/{r.name}' and r.tag.startswith('mmpose'), r.name
        assert r.task == spec.task and tuple(r.input_size[1:]) == tuple(spec.input_size), r.name
        assert r.metrics['source'].startswith('open-mmlab/mmpose@'), r.name   # the metafile
        assert record_for_file('/any/dir/' + r.source['checkpoint']).name == r.name


@pytest.mark.parametrize('record', RECORDS, ids=[r.name for r in RECORDS])
def test_each_file_decodes_with_its_records_codec(record):
    # what create_model(arch, checkpoint_path=FILE) and create_model('arch.tag', ...) do after loading
    spec = get_model_spec(record.arch)
    for tag, where in ((None, f'/tmp/{record.source["checkpoint"]}'), (record.tag, '<state_dict>')):
        model = nn.Module()
        model.pretrained_cfg = {'codec': spec.codec}
        apply_record_codec(model, spec, types.SimpleNamespace(codec=None, where=where), tag)
        assert model.pretrained_cfg['codec'] == record.codec


def _save(model, generation, path, v2):
    """A model of ours saved as mmpose saves it (0.x: keypoint_head.*, HRNetV2 head final_layer.{0,1,3};
    1.x: head.conv_layers.{0,1} + head.final_layer, numpy arrays in meta, the preprocessor's buffers)."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith('representation.mix.'):
            i = k.split('.')[2]
            k = (f'keypoint_head.final_layer.{i}.' if generation == '0.x' else f'head.conv_layers.{i}.') \
                + k.split('.', 3)[3]
        elif k.startswith('final_layer.'):
            k = ('keypoint_head.final_layer.3.' if v2 else 'keypoint_head.final_layer.') + k[len('final_layer.'):] \
                if generation == '0.x' else 'head.' + k
        else:
            k = 'backbone.' + k
        sd[k] = v
    if generation == '1.x':
        sd['data_preprocessor.mean'] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
        torch.save({'meta': mmpose_meta(), 'state_dict': sd}, path)
    else:
        torch.save({'meta': {'mmpose_version': '0.26.0'}, 'state_dict': sd}, path, _use_new_zipfile_serialization=False)


# one per (trunk + head, generation): the HRNetV2 hand and face heads of both generations, the body
# head of 1.x (0.x body: test_hub_convert.py), the combined-target head (3 maps per keypoint)
CASES = [('hrnet_w18_hand_onehand10k_256x256', 'hrnetv2_w18_onehand10k_256x256-30bc9c6b_20210330.pth', '0.x'),
         ('hrnet_w18_face_wflw_msra', 'hrnetv2_w18_wflw_256x256-2bf032a6_20210125.pth', '0.x'),
         ('hrnet_w18_face_300wlp_msra', 'hrnetv2_w18_300wlp_256x256-fb433d21_20230922.pth', '1.x'),
         ('hrnet_w32_pose_coco_256x192_udp_regress',
          'td-hm_hrnet-w32_udp-regress-8xb64-210e_coco-256x192-9c0b77b4_20220926.pth', '1.x')]


@pytest.mark.parametrize('name,filename,generation', CASES, ids=[c[0] for c in CASES])
def test_mmpose_files_convert_verify_load_same_outputs(name, filename, generation, tmp_path):
    torch.manual_seed(0)
    ours = randomize_bn(hrnet_zoo.create_model(name)).eval()
    record = record_for_file(filename)
    assert record is not None and record.arch == name and record.source['generation'] == generation
    path = tmp_path / filename
    _save(ours, generation, path, v2=get_model_spec(name).head == 'v2' or name.startswith('hrnet_w18_face'))
    assert hub.read_source(path).layout.label == f'mmpose {generation}'
    models = [hrnet_zoo.create_model(name, checkpoint_path=str(path)).eval()]
    if name == CASES[0][0]:  # convert + verify (seconds per model): once
        out = hub.convert(path, None, tmp_path / 'out')          # the record from the file name
        report = hub.verify(out)
        assert report.ok, report.problems
        models.append(hrnet_zoo.create_model(name, pretrained=str(out)).eval())
    assert all(m.pretrained_cfg['codec'] == record.codec for m in models)  # the record's, not the spec's
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = ours(x)
        assert all(torch.equal(m(x), ref) for m in models)
    assert ref.shape[1] == get_model_spec(name).num_outputs * get_codec(record.codec).maps_per_keypoint


def test_a_file_loaded_into_another_spec_keeps_its_records_codec_with_a_warning():
    # the mmpose 0.x WFLW file (record hrnet_w18_face_wflw_msra.mmpose, codec mmpose0x_msra) loaded
    # into the official face spec (codec 'face'): its weights were trained with mmpose's convention
    spec = get_model_spec('hrnet_w18_face_wflw')
    assert spec.codec == 'face'
    model = nn.Module()
    model.pretrained_cfg = {'codec': spec.codec}
    src = types.SimpleNamespace(codec=None, where='/tmp/hrnetv2_w18_wflw_256x256-2bf032a6_20210125.pth')
    with pytest.warns(UserWarning, match="hrnet_w18_face_wflw_msra.mmpose, trained with the 'mmpose0x_msra'"):
        apply_record_codec(model, spec, src)
    assert model.pretrained_cfg['codec'] == 'mmpose0x_msra'
    # a record of another task (an mmseg file named into a face model) leaves the codec alone
    model.pretrained_cfg = {'codec': spec.codec}
    apply_record_codec(model, spec, types.SimpleNamespace(
        codec=None, where='/tmp/fcn_hr18_512x1024_160k_cityscapes_20200602_190822-221e4a4f.pth'))
    assert model.pretrained_cfg['codec'] == 'face'


def test_a_codec_the_caller_asked_for_stays():
    # create_model(name, checkpoint_path=FILE, codec=...) : the builder has set the asked codec before
    # the load; the record of the file's name does not replace it
    spec = get_model_spec('hrnet_w32_pose_coco_256x192')
    model = nn.Module()
    model.pretrained_cfg = {'codec': 'udp'}  # != the spec's 'msra': asked for
    apply_record_codec(model, spec, types.SimpleNamespace(
        codec=None, where='/tmp/td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth'))
    assert model.pretrained_cfg['codec'] == 'udp'
    model.pretrained_cfg = {'codec': spec.codec}
    apply_record_codec(model, spec, types.SimpleNamespace(
        codec=None, where='/tmp/td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth'))
    assert model.pretrained_cfg['codec'] == 'mmpose_msra'
