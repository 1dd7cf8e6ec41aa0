"""OpenMMLab checkpoints through the hub (:mod:`hrnet_zoo.hub.layouts` ``mmseg`` / ``mmpretrain`` /
``mmdet``): random models saved in each layout -> ``convert`` -> ``verify`` -> load -> the same
outputs; the key maps pinned against the head keys mmsegmentation 1.2.2 / mmpretrain 1.2.0 save; and
every OpenMMLab record of the manifest resolves to a spec and a layout.

The network-level comparisons with OpenMMLab's own models (built from their configs) are manual
(venv-mm, docs/openmmlab.md); here our models stand in for theirs, their state_dict renamed by the
tables below (written out independently of the key maps under test)."""
from __future__ import annotations

import json

import pytest
import torch

import hrnet_zoo
from hrnet_zoo import hub
from hrnet_zoo.checkpoint import read_state_dict
from hrnet_zoo.hub.layouts import MMPRETRAIN_KEY_MAP, MMSEG_KEY_MAP, get_layout
from hrnet_zoo.tasks import get_model_spec

from conftest import randomize_bn

_OCB = 'decode_head.1.object_context_block.'
# our module prefix -> mmseg's (mmseg/models/decode_heads/fcn_head.py, ocr_head.py; ConvModule: .conv / .bn)
TO_MMSEG = {
    'last_layer.0.': 'decode_head.convs.0.conv.', 'last_layer.1.': 'decode_head.convs.0.bn.',
    'last_layer.3.': 'decode_head.conv_seg.',
    'aux_head.0.': 'decode_head.0.convs.0.conv.', 'aux_head.1.': 'decode_head.0.convs.0.bn.',
    'aux_head.3.': 'decode_head.0.conv_seg.',
    'conv3x3_ocr.0.': 'decode_head.1.bottleneck.conv.', 'conv3x3_ocr.1.': 'decode_head.1.bottleneck.bn.',
    'ocr_distri_head.object_context_block.f_pixel.0.': _OCB + 'query_project.0.conv.',
    'ocr_distri_head.object_context_block.f_pixel.1.0.': _OCB + 'query_project.0.bn.',
    'ocr_distri_head.object_context_block.f_pixel.2.': _OCB + 'query_project.1.conv.',
    'ocr_distri_head.object_context_block.f_pixel.3.0.': _OCB + 'query_project.1.bn.',
    'ocr_distri_head.object_context_block.f_object.0.': _OCB + 'key_project.0.conv.',
    'ocr_distri_head.object_context_block.f_object.1.0.': _OCB + 'key_project.0.bn.',
    'ocr_distri_head.object_context_block.f_object.2.': _OCB + 'key_project.1.conv.',
    'ocr_distri_head.object_context_block.f_object.3.0.': _OCB + 'key_project.1.bn.',
    'ocr_distri_head.object_context_block.f_down.0.': _OCB + 'value_project.conv.',
    'ocr_distri_head.object_context_block.f_down.1.0.': _OCB + 'value_project.bn.',
    'ocr_distri_head.object_context_block.f_up.0.': _OCB + 'out_project.conv.',
    'ocr_distri_head.object_context_block.f_up.1.0.': _OCB + 'out_project.bn.',
    'ocr_distri_head.conv_bn_dropout.0.': _OCB + 'bottleneck.conv.',
    'ocr_distri_head.conv_bn_dropout.1.0.': _OCB + 'bottleneck.bn.',
    'cls_head.': 'decode_head.1.conv_seg.',
}
# the module prefixes of the head keys in mmseg 1.2.2's ocrnet_hr18 state_dict (decode_head.*; each ConvModule
# holds conv.weight and bn.{weight,bias,running_mean,running_var,num_batches_tracked}, conv_seg weight + bias)
MMSEG_OCR_HEAD = {'decode_head.0.convs.0.conv', 'decode_head.0.convs.0.bn', 'decode_head.0.conv_seg',
                  'decode_head.1.bottleneck.conv', 'decode_head.1.bottleneck.bn', 'decode_head.1.conv_seg',
                  *(f'{_OCB}{p}.{part}' for p in ('query_project.0', 'query_project.1', 'key_project.0',
                                                   'key_project.1', 'value_project', 'out_project', 'bottleneck')
                    for part in ('conv', 'bn'))}


def to_mmseg(state):
    """Our segmentation state_dict in mmseg's layout (trunk under ``backbone.``)."""
    out = {}
    for k, v in state.items():
        ours = max((p for p in TO_MMSEG if k.startswith(p)), key=len, default=None)
        out[TO_MMSEG[ours] + k[len(ours):] if ours else 'backbone.' + k] = v
    return out


def to_mmpretrain(state, neck='neck.0.'):
    """A classifier's state_dict in mmpretrain's layout: ``HRFuseScales`` ConvModules have no conv bias."""
    out = {}
    for k, v in state.items():
        head, _, rest = k.partition('.')
        if head == 'incre_modules':
            k = f'{neck}increase_layers.{rest}'
        elif head in ('downsamp_modules', 'final_layer'):
            *index, layer, param = rest.split('.')
            if layer == '0' and param == 'bias':
                continue  # mmpretrain: ConvModule(bias=False)
            part = 'conv' if layer == '0' else 'bn'
            k = f'{neck}{"downsample_layers." + index[0] if index else "final_layer"}.{part}.{param}'
        elif head == 'classifier':
            k = f'head.fc.{rest}'
        else:
            k = f'backbone.{k}'
        out[k] = v
    return out


def _save(state, path, **meta):
    torch.save({'meta': {'mmengine_version': '0.10.7', **meta}, 'state_dict': state}, path)
    return path


def test_key_maps_pinned():
    assert MMSEG_KEY_MAP.apply({'backbone.conv1.weight': 1, 'decode_head.convs.0.conv.weight': 2,
                                'decode_head.conv_seg.bias': 3, _OCB + 'query_project.1.bn.running_var': 4,
                                _OCB + 'bottleneck.conv.weight': 5, 'decode_head.1.conv_seg.weight': 6,
                                'data_preprocessor.mean': 7}) == {
        'conv1.weight': 1, 'last_layer.0.weight': 2, 'last_layer.3.bias': 3,
        'ocr_distri_head.object_context_block.f_pixel.3.0.running_var': 4,
        'ocr_distri_head.conv_bn_dropout.0.weight': 5, 'cls_head.weight': 6}
    mapped = MMPRETRAIN_KEY_MAP.apply({'backbone.stage4.0.fuse_layers.0.1.0.weight': 1,
                                      'neck.0.increase_layers.3.0.conv1.weight': 2,
                                      'neck.0.downsample_layers.2.bn.running_mean': 3,
                                      'neck.final_layer.conv.weight': 4, 'head.fc.bias': 5})
    assert mapped == {'stage4.0.fuse_layers.0.1.0.weight': 1, 'incre_modules.3.0.conv1.weight': 2,
                      'downsamp_modules.2.1.running_mean': 3, 'final_layer.0.weight': 4, 'classifier.bias': 5}
    assert get_layout('mmpretrain').zero_fill == (r'downsamp_modules\.\d+\.0\.bias', r'final_layer\.0\.bias')


@pytest.mark.parametrize('name,file', [
    ('hrnet_w18_small_v2_seg_cityscapes_mmseg', 'fcn_hr18s_512x1024_160k_cityscapes_20200602_190901-4a0797ea.pth'),
    ('hrnet_w18_small_v2_ocr_seg_cityscapes_mmseg', 'ocrnet_hr18s_512x1024_160k_cityscapes_20200602_191005-f4a7af28.pth'),
])
def test_mmseg_convert_verify_load_same_outputs(name, file, tmp_path):
    record = hub.record_for_file(file)
    assert record is not None and record.name.split('.')[0] == name and record.layout == 'mmseg'
    torch.manual_seed(0)
    source = randomize_bn(hrnet_zoo.create_model(name)).eval()
    state = to_mmseg(source.state_dict())
    heads = {k.rsplit('.', 1)[0] for k in state if k.startswith('decode_head.')}
    if 'ocr' in name:
        assert heads == MMSEG_OCR_HEAD  # every head key of mmseg's OCRNet, nothing else
    else:
        assert heads == {'decode_head.convs.0.conv', 'decode_head.convs.0.bn', 'decode_head.conv_seg'}
    path = _save({**state, 'data_preprocessor.mean': torch.zeros(3, 1, 1)}, tmp_path / file, mmseg_version='1.2.2')
    assert hub.read_source(path).layout.name == 'mmseg'
    out = hub.convert(path, None, tmp_path / 'out')  # the record from the file name
    config = json.loads((out / 'config.json').read_text())
    assert (config['architecture'], config['pretrained_cfg']['tag']) == tuple(record.name.split('.'))
    assert hub.verify(out).ok and 'backbone.conv1.weight' not in read_state_dict(out / hub.WEIGHTS_FILE)
    x = torch.randn(1, 3, 70, 90)  # not a multiple of 32: mmseg's fusion (fuse_upsample='factor') matters
    with torch.no_grad():
        want = source(x)
        for model in (hrnet_zoo.create_model(name, pretrained=str(out)),
                      hrnet_zoo.create_model(name, checkpoint_path=str(path))):
            assert torch.equal(model.eval()(x), want)


def test_mmpretrain_zero_fills_the_bias_free_head_convs(tmp_path):
    torch.manual_seed(0)
    source = randomize_bn(hrnet_zoo.create_model('hrnet_w18_small', num_classes=5)).eval()
    with torch.no_grad():  # mmpretrain's HRFuseScales convs have no bias: the same function with zero biases
        for k, v in source.state_dict().items():
            if k.startswith(('downsamp_modules.', 'final_layer.0.bias')) and k.endswith('0.bias'):
                v.zero_()
    for neck in ('neck.0.', 'neck.'):  # the configs' neck list (neck.0.) and a single neck
        path = _save(to_mmpretrain(source.state_dict(), neck), tmp_path / f'w18s{len(neck)}.pth')
        src = hub.read_source(path)
        assert src.layout.name == 'mmpretrain' and 'head.fc.bias' in src.state and not any('final_layer.conv.bias' in k for k in src.state)
        out = hub.convert(path, 'hrnet_w18_small', tmp_path / f'out{len(neck)}', tag='openmmlab_test')
        assert hub.verify(out).ok
        converted = read_state_dict(out / hub.WEIGHTS_FILE)
        assert set(converted) == set(source.state_dict()) and not converted['final_layer.0.bias'].any()
        x = torch.randn(1, 3, 64, 64)
        loaded = hrnet_zoo.create_model('hrnet_w18_small', pretrained=True, num_classes=5,
                                        pretrained_cfg_overlay=dict(file=str(out / hub.WEIGHTS_FILE), num_classes=5)).eval()
        direct = hrnet_zoo.create_model('hrnet_w18_small', num_classes=5, checkpoint_path=str(path)).eval()
        with torch.no_grad():
            want = source(x)
            assert torch.equal(direct(x), want) and torch.equal(loaded(x), want)


def test_every_openmmlab_record_resolves_to_a_spec_and_its_layout():
    counts = {layout: hub.list_records(layout=layout) for layout in ('mmseg', 'mmdet', 'mmpretrain')}
    assert {k: len(v) for k, v in counts.items()} == {'mmseg': 58, 'mmdet': 28, 'mmpretrain': 9}
    tasks = {'mmseg': 'segmentation', 'mmdet': 'detection', 'mmpretrain': 'classification'}
    for layout, records in counts.items():
        for r in records:
            spec = get_model_spec(r.name.split('.')[0])
            assert get_layout(layout).takes(spec.task) and spec.task == tasks[layout], r.name
            assert r.license == 'apache-2.0' and r.sha256 is None and r.hf_hub_id == f'hrnet-zoo/{r.name}', r.name
            assert r.source['published_at'].endswith('/' + r.source['checkpoint']), r.name
            assert hub.record_for_file(r.source['checkpoint']).name == r.name, r.name
            assert 'metafile' in r.metrics['source'], r.name
    fcn = [r for r in counts['mmseg'] if '_ocr_' not in r.name]
    assert len(fcn) == 37  # OCRNet: 21
    assert hub.get_weight('hrnet_w48_seg_cityscapes_mmseg.160k').metrics['miou'] == 80.65  # configs/hrnet/metafile.yaml
    det = hub.get_weight('maskrcnn_hrnetv2p_w40.mmdet_htc_20e')
    assert (det.metrics['bbox_AP'], det.metrics['mask_AP']) == (46.4, 40.8) and 'nearest' in det.source['notes']
    assert "not what the torchvision heads here give" in det.metrics['source']
    assert {r.name for r in counts['mmpretrain']} >= {'hrnet_w18_ssld.openmmlab_in1k', 'hrnet_w64.openmmlab_in1k'}
