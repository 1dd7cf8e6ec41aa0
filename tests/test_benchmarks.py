"""Smoke tests: benchmarks/speed.py, benchmarks/memory.py and benchmarks/pipeline.py keep working (tiny settings)."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import platform
import sys

import pytest

from conftest import needs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f'bench_{name}', os.path.join(ROOT, 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def speed():
    return _load('speed')


def test_speed_tiny_run_writes_json_csv_and_plot(speed, tmp_path, capsys):
    out = speed.main(['--models', 'hrnet_w18_small', '--batch-sizes', '1', '--img-sizes', '64',
                      '--repeats', '1', '--warmup', '0', '--modes', 'eager', 'deploy', 'onnx',
                      '--train-modes', 'eager', '--no-progress', '--threads', '1',
                      '--json', str(tmp_path / 'r.json'), '--csv', str(tmp_path / 'r.csv'),
                      '--plot', str(tmp_path / 'r.png')])
    printed = capsys.readouterr().out
    assert 'ours/timm' in printed and 'matmul peak' in printed
    data = json.loads((tmp_path / 'r.json').read_text())
    assert data == json.loads(json.dumps(out))
    assert data['machine']['matmul_peak_fp32_gflops'] > 0
    rows = data['rows']
    assert [r['mode'] for r in rows] == ['eager', 'deploy', 'onnx']
    for r in rows:
        assert r['ours_ips'] > 0 and r['timm_ips'] > 0
        assert math.isclose(r['ratio'], r['ours_ips'] / r['timm_ips'], rel_tol=1e-6)
        assert 0 < r['frac_peak'] < 5
        assert r['params_m'] == pytest.approx(13.19, abs=0.01)
        # FlopCounterMode at 64 px: about (64/224)^2 of the 224-px count (~1.8 GMACs)
        assert 0.1 < r['gmacs'] < 0.2
    assert rows[0]['train_ours_ips'] > 0 and math.isnan(rows[1]['train_ours_ips'])
    with open(tmp_path / 'r.csv') as f:
        assert [r['mode'] for r in csv.DictReader(f)] == ['eager', 'deploy', 'onnx']
    assert (tmp_path / 'r.png').read_bytes()[:4] == b'\x89PNG'


def test_speed_skips_emulated_bfloat16_unless_forced(speed, monkeypatch):
    monkeypatch.setattr(speed, 'native_low_precision', lambda device: False)
    args = speed.parse_args(['--modes', 'eager', 'autocast', 'deploy_lp', '--train-modes', 'eager', 'autocast'])
    modes, notes = speed.select_modes(args)
    assert modes == ['eager'] and args.train_modes == ['eager']
    assert 'no native bfloat16' in notes[0]
    args = speed.parse_args(['--modes', 'all', '--force-low-precision'])
    assert speed.select_modes(args)[0] == list(speed.MODES)


def test_speed_rejects_bad_arguments(speed):
    with pytest.raises(SystemExit):
        speed.parse_args(['--models', 'resnet50'])
    with pytest.raises(SystemExit):
        speed.parse_args(['--img-sizes', '100'])


def test_memory_tiny_run_with_and_without_checkpointing(tmp_path, capsys):
    memory = _load('memory')
    out = memory.main(['--models', 'hrnet_w18_small', '--batch-sizes', '1', '--img-size', '64',
                       '--steps', '1', '--no-timm', '--phases', 'train', '--threads', '1', '--no-progress',
                       '--json', str(tmp_path / 'm.json')])
    printed = capsys.readouterr().out
    assert 'checkpointing: step peak' in printed
    results = json.loads((tmp_path / 'm.json').read_text())['results']
    assert [(r['phase'], r['checkpointing']) for r in results] == [('train', False), ('train', True)]
    for r in results:
        assert r['step_s'] > 0 and r['total_peak_mib'] > 100  # torch alone needs more than 100 MiB
        assert r['peak_mib'] >= 0
    summary = out['summary'][0]
    assert summary['ckpt_time_ratio'] > 0 and summary['ckpt_memory_ratio'] > 0


@needs('openvino', 'nncf', 'onnxruntime')
def test_speed_task_model_with_openvino_and_int8_names_the_fastest(speed, monkeypatch, capsys):
    """--task segmentation (shrunk to a tiny model and size here): the OpenVINO rows share one raw
    OpenVINO peer, and the run closes with 'fastest on this machine: ...'."""
    monkeypatch.setitem(speed.TASKS, 'segmentation', ('hrnet_w18_small_seg_cityscapes', (64, 96), 1))
    out = speed.main(['--task', 'segmentation', '--modes', 'deploy', 'openvino', 'int8', '--repeats', '2',
                      '--warmup', '1', '--min-sample-s', '0', '--no-progress', '--threads', '1'])
    printed = capsys.readouterr().out
    rows = out['rows']
    assert [(r['model'], r['mode'], r['size']) for r in rows] == [
        ('hrnet_w18_small_seg_cityscapes', m, '64x96') for m in ('deploy', 'openvino', 'int8')]
    assert rows[0]['peer'] == 'PyTorch channels_last fp32' and math.isnan(rows[0]['timm_ips'])
    assert rows[1]['peer'] == rows[2]['peer'] == 'OpenVINO default on our ONNX'
    assert rows[1]['peer_ips'] == rows[2]['peer_ips'] > 0  # one peer, timed once
    assert rows[2]['dtype'] == 'int8' and rows[2]['ours_ips'] > 0
    if platform.machine() in ('x86_64', 'AMD64'):  # the openvino mode is the natural call: OpenVINO's own default
        from hrnet_zoo.deploy import native_bfloat16
        assert rows[1]['dtype'] == ('bfloat16' if native_bfloat16() else 'float32')
    last = printed.strip().splitlines()[-1]
    assert last.startswith('fastest on this machine: ') and 'hrnet_w18_small_seg_cityscapes b1 64x96' in last
    assert out['verdict'][-1] == last


def test_timing_warms_up_until_settled_and_reports_spread(speed):
    calls = {'n': 0}

    def slow_first(x):  # like oneDNN: the first calls of a shape are slow
        calls['n'] += 1
        speed.time.sleep({1: 0.1, 2: 0.05}.get(calls['n'], 0.002))

    res = speed.time_interleaved({'f': slow_first, 'g': lambda x: speed.time.sleep(0.004)}, None, 'cpu',
                                 repeats=3, warmup=1, min_sample_s=0.02)
    assert res['f']['s'] < 0.03 and res['f']['calls'] >= 2  # warm-up went past the slow calls
    assert 0.004 <= res['g']['s'] < 0.03 and res['g']['spread'] >= 0


def test_speed_verdict_compares_the_natural_openvino_call_with_raw_openvino(speed):
    """The openvino mode is deploy(backend='openvino') with no dtype; its ratio to raw OpenVINO's
    default is the issue-20 goal (>= 0.97); the openvino_bf16 mode's ratio is printed beside it."""
    ips = {'ours:openvino': 90.0, 'ours:openvino_bf16': 108.0, 'ours:int8': 144.0, 'raw:openvino': 90.0}
    result = speed.ConfigResult('hrnet_w32', 8, '224', ips, {k: speed.label(k, 'timm', 'bf16') for k in ips})
    goals, fastest = speed.verdict(result)
    # 90 / 90 = 1.00; 108 / 90 = 1.20; 144 / 90 = 1.60
    assert "deploy(backend='openvino') (no dtype) / raw OpenVINO default 1.00 (goal >= 0.97)" in goals
    assert "deploy(backend='openvino', dtype=bf16) / raw OpenVINO default 1.20" in goals
    assert 'int8 / OpenVINO default 1.60' in goals
    assert fastest.startswith("fastest on this machine: deploy(backend='openvino') int8")
    assert speed.PAIRS['openvino_bf16'] == ('ours:openvino_bf16', 'raw:openvino')
    assert 'openvino_bf16' in speed.LOW_PRECISION_MODES and 'openvino_bf16' not in speed.DEFAULT_MODES


@needs('av')
def test_pipeline_tiny_run_times_every_stage_against_plain(tmp_path, monkeypatch, capsys):
    """benchmarks/pipeline.py on a 4-frame clip written here, shrunk to a W18-small pose model at
    64x48 (the detector is the default one, random weights): a row per mode and --det-every, the
    plain float32 row as the baseline (x plain 1.0), stage shares that add up to the whole loop,
    the CPU flags line and the closing goal line."""
    import hrnet_zoo
    from test_tasks_video import make_video
    pipeline = _load('pipeline')
    clip = make_video(tmp_path / 'clip.mp4', n=4, fps=10)
    build = pipeline.build_networks

    def tiny(args):
        _, detector = build(args)
        pose = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=17, input_size=(64, 48))
        return pose.eval(), detector
    monkeypatch.setattr(pipeline, 'build_networks', tiny)
    out = pipeline.main(['--clips', clip, '--modes', 'eager', '--det-every', '1', '2', '--passes', '1',
                         '--people', '1', '--no-flip-test', '--threads', '1', '--json', str(tmp_path / 'p.json')])
    printed = capsys.readouterr().out
    rows = out['rows']
    assert [(r['mode'], r['det_every']) for r in rows] == [('plain', 1), ('plain', 2), ('eager', 1), ('eager', 2)]
    assert all(r['error'] is None and r['frames'] == 4 and r['fps'] > 0 for r in rows)
    assert rows[0]['x_plain'] == pytest.approx(1.0) and rows[0]['precision'] == 'float32'
    for r in rows:
        assert sum(r['shares'].values()) == pytest.approx(1.0, abs=0.02)
        assert r['shares']['decode'] > 0 and r['shares']['encode'] > 0 and r['shares']['pose net'] > 0
    assert 'flags:' in printed.splitlines()[0] and 'x plain' in printed
    assert out['goal'].startswith('goal (30 frames/s with --det-every and int8): no such row was run')
    assert json.loads((tmp_path / 'p.json').read_text())['rows'] == json.loads(json.dumps(rows))
