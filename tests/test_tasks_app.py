"""The task apps (:mod:`hrnet_zoo.tasks.app`, the shared flags of :mod:`hrnet_zoo.tasks.cli`):
``predict`` of every task on a clip written here with PyAV (6 frames of 64x48, tiny models with
random weights: this is about I/O), pose across frames (``--det-every``, ``--track``), the
``--backend`` / ``--dtype`` flags reaching :func:`hrnet_zoo.deploy` for predict and eval, the
no-weights warning, one-line errors, and the int8 eval report next to float32 on a trained tiny
pose model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import needs
from test_tasks_video import make_video

import hrnet_zoo
from hrnet_zoo.tasks.video import open_source

FRAMES = 6
POSE = ['--model', 'hrnet_pose', '--arch', 'hrnet_w18_small', '--num-keypoints', '5', '--input-size', '64', '48',
        '--device', 'cpu', '--no-flip-test']
LANDMARKS = ['--model', 'hrnet_w18_face_aflw', '--arch', 'hrnet_w18_small', '--input-size', '64', '64',
             '--device', 'cpu']
SEGMENTATION = ['--model', 'hrnet_w18_small_seg_cityscapes', '--num-classes', '4', '--device', 'cpu',
                '--set', 'eval.base_size=64']  # the Cityscapes protocol would resize 64x48 frames to 2048x1536
DETECTION = ['--model', 'fasterrcnn_hrnetv2p_w32', '--arch', 'hrnet_w18_small', '--num-classes', '3',
             '--min-size', '64', '--max-size', '64', '--device', 'cpu', '--score-thresh', '0']
TASKS = {'pose': (POSE, 'people'), 'landmarks': (LANDMARKS, 'landmarks'),
         'segmentation': (SEGMENTATION, 'classes'), 'detection': (DETECTION, 'detections')}


def task_main(task: str):
    import importlib
    return importlib.import_module(f'hrnet_zoo.tasks.{task}.__main__').main


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp('clip') / 'clip.mp4', n=FRAMES, fps=5)


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def count_frames(path) -> int:
    with open_source(str(path)) as s:
        return sum(1 for _ in s)


# ---------------------------------------------------------------------------------------------
# video in, video and JSON lines out, for every task

@needs('av')
@pytest.mark.parametrize('task', sorted(TASKS))
def test_predict_on_a_clip_writes_one_line_and_one_frame_per_frame(task, clip, tmp_path, capsys):
    flags, key = TASKS[task]
    out, lines = tmp_path / 'out.mp4', tmp_path / 'out.jsonl'
    summary = task_main(task)(['predict', *flags, '--image', clip, '--out', str(out), '--json', str(lines),
                               '--no-progress'])
    assert summary['frames'] == FRAMES and summary['skipped'] == 0
    records = read_lines(lines)
    assert [r['frame'] for r in records] == list(range(FRAMES))
    assert [r['time'] for r in records] == pytest.approx([i / 5 for i in range(FRAMES)])  # 5 frames/s
    assert all(key in r for r in records)
    assert count_frames(out) == FRAMES
    with open_source(str(out)) as s:
        assert (s.width, s.height) == (64, 48) and s.fps == pytest.approx(5)
    err = capsys.readouterr().err
    assert 'no weights loaded' in err and '--checkpoint FILE' in err and f'hrnet-zoo list --task {task}' in err
    assert f'{FRAMES} frames' in err  # the summary line


@needs('av')
def test_pose_det_every_2_with_oks_tracks(clip, tmp_path, monkeypatch):
    """The detector runs on frames 0, 2, 4 (in between the boxes come from the keypoints) and
    again on a frame whose keypoints gave no box (DetectEvery's ``redetect_when_empty``: random
    weights score few keypoints), never on all 6; every person carries a track id (random weights:
    -1, an untracked person, is allowed)."""
    import torchvision
    from hrnet_zoo.tasks.pose import __main__ as pose_main
    weights = tmp_path / 'det.pth'
    torch.save(torchvision.models.get_model('fasterrcnn_mobilenet_v3_large_320_fpn', weights=None,
                                            weights_backbone=None).state_dict(), weights)
    seen = []

    def detect_people(detector, image, thresh):
        seen.append((image.dtype, thresh))
        return np.array([[8.0, 4.0, 40.0, 40.0, 0.9]])
    monkeypatch.setattr(pose_main, 'detect_people', detect_people)
    lines = tmp_path / 'pose.jsonl'
    pose_main.main(['predict', *POSE, '--image', clip, '--detector', 'fasterrcnn_mobilenet_v3_large_320_fpn',
                    '--detector-checkpoint', str(weights), '--det-every', '2', '--track', 'oks', '--smooth',
                    '--json', str(lines), '--out', str(tmp_path / 'pose.mp4'), '--no-progress'])
    assert 3 <= len(seen) < FRAMES  # frames 0, 2, 4 of 6, and the frames without a tracked box
    assert {t for _, t in seen} == {0.3}  # predict's default person threshold (mmpose's demos)
    records = read_lines(lines)
    assert len(records) == FRAMES
    assert records[0]['people'][0]['bbox'] == [8.0, 4.0, 40.0, 40.0]
    assert all('track_id' in p for r in records for p in r['people'])


def test_pose_images_keep_pngs_and_the_json_lines(tmp_path, capsys):
    from PIL import Image
    for i in range(2):
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(tmp_path / f'{i}.png')
    lines = task_main('pose')(['predict', *POSE, '--image', str(tmp_path / '0.png'), str(tmp_path / '1.png'),
                               '--out', str(tmp_path / 'drawn'), '--no-progress'])
    assert [r['frame'] for r in lines] == [0, 1] and all('track_id' not in p for r in lines for p in r['people'])
    assert all(Image.open(r['out']).size == (64, 48) for r in lines)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{')]
    assert len(printed) == 2  # without --json the lines go to stdout


# ---------------------------------------------------------------------------------------------
# --backend / --dtype reach deploy

class DeploySpy:
    """Stands in for hrnet_zoo.deploy: records (backend, dtype, calibration images) and returns
    the model itself, with the attributes deploy's result has."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, backend='eager', dtype=None, example_input=None, calibration=None, **kwargs):
        n = sum(int(t.shape[0]) for t in calibration) if isinstance(calibration, list) else calibration
        self.calls.append((backend, dtype, n, type(model).__name__))

        class Deployed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = model
                self.backend, self.reason = backend, ''
                self.precision = torch.int8 if dtype == 'int8' else (dtype or torch.float32)

            def forward(self, x):
                return self.net(x)
        return Deployed()


@pytest.fixture
def spy(monkeypatch):
    s = DeploySpy()
    monkeypatch.setattr(hrnet_zoo, 'deploy', s)
    monkeypatch.setattr('hrnet_zoo.tasks.app._available', lambda backend, dtype: True)
    return s


def test_predict_flags_reach_deploy_for_the_pose_network_and_the_detector(tmp_path, spy, monkeypatch):
    import torchvision
    from PIL import Image
    from hrnet_zoo.tasks.pose import __main__ as pose_main
    image = tmp_path / 'in.png'
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(image)
    detector = torchvision.models.get_model('fasterrcnn_mobilenet_v3_large_320_fpn', weights=None,
                                            weights_backbone=None)
    monkeypatch.setattr(pose_main, 'build_detector', lambda *a, **k: detector)

    def detect_people(det, image, thresh):  # the real (wrapped) detector runs; random weights: a fixed person
        det([image])
        return np.array([[8.0, 4.0, 40.0, 40.0, 0.9]])
    monkeypatch.setattr(pose_main, 'detect_people', detect_people)
    pose_main.main(['predict', *POSE, '--image', str(image), '--detector', 'fasterrcnn_mobilenet_v3_large_320_fpn',
                    '--det-score-thresh', '0', '--backend', 'onnxruntime', '--dtype', 'float32',
                    '--out', str(tmp_path / 'o.png'), '--no-progress'])
    # the detector is deployed through its backbone (the RPN / RoI heads stay eager), then the pose network
    names = {c[3]: c[:2] for c in spy.calls}
    assert names.pop('BackboneWithFPN') == ('onnxruntime', 'float32')
    assert list(names.values()) == [('onnxruntime', 'float32')]  # the pose network


def test_int8_predict_calibrates_on_the_first_frames_crops(tmp_path, spy, monkeypatch):
    import importlib
    from PIL import Image
    for i in range(20):
        Image.fromarray(np.full((48, 64, 3), 10 * i, np.uint8)).save(tmp_path / f'{i:02d}.png')
    run = task_main('pose')
    pose_main = importlib.import_module('hrnet_zoo.tasks.pose.__main__')
    drawn = []
    monkeypatch.setattr(pose_main, 'draw_people', lambda image, *a, **k: drawn.append(1) or image)
    run(['predict', *POSE, '--image', str(tmp_path), '--backend', 'openvino', '--dtype', 'int8',
         '--out', str(tmp_path / 'drawn'), '--no-progress'])
    (backend, dtype, n, _), = spy.calls
    assert (backend, dtype) == ('openvino', 'int8') and 16 <= n <= 32  # one crop per frame, 16..32 of them
    assert len(drawn) == 20  # the predicted frames only: the calibration pass draws nothing


def test_eval_flags_reach_deploy_and_float32_is_reported_beside(tmp_path, spy, monkeypatch):
    import sys
    monkeypatch.setattr(sys.modules['hrnet_zoo.deploy'], 'native_bfloat16', lambda device=None: True)  # any CPU
    from hrnet_zoo.tasks.pose.synthetic import write_synthetic_coco
    ann, images = write_synthetic_coco(str(tmp_path / 'data'), 4, seed=5)
    common = [*POSE, '--val-ann', ann, '--val-images', images, '--workers', '0', '--sigmas', *['0.089'] * 5]
    plain = task_main('pose')(['eval', *common])
    assert spy.calls == [] and 'float32' not in plain  # eval's default: the plain float32 model
    result = task_main('pose')(['eval', *common, '--backend', 'eager', '--dtype', 'bfloat16'])
    assert [c[:2] for c in spy.calls] == [('eager', 'bfloat16')]
    assert result['float32']['AP'] == pytest.approx(plain['AP']) and result['runtime']['pose']['backend'] == 'eager'


@needs('openvino')
def test_predict_runs_openvino_for_real(tmp_path):
    from PIL import Image
    image = tmp_path / 'in.png'
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(image)
    run_fp32 = task_main('pose')(['predict', *POSE, '--image', str(image), '--out', str(tmp_path / 'a.png'),
                                  '--no-progress', '--checkpoint', str(_pose_weights(tmp_path))])
    run_ov = task_main('pose')(['predict', *POSE, '--image', str(image), '--out', str(tmp_path / 'b.png'),
                                '--no-progress', '--checkpoint', str(_pose_weights(tmp_path)),
                                '--backend', 'openvino', '--dtype', 'float32'])
    a, b = (np.asarray(r[0]['people'][0]['keypoints']) for r in (run_fp32, run_ov))
    assert np.abs(a - b).max() <= 1.0  # the same argmax cells: one pixel of a 64x48 image at most


def _pose_weights(tmp_path):
    path = tmp_path / 'pose.pth'
    if not path.exists():
        torch.manual_seed(0)
        model = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5, input_size=(64, 48))
        torch.save(model.state_dict(), path)
    return path


def test_bfloat16_only_where_native(tmp_path, monkeypatch, capsys):
    import sys
    from PIL import Image
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / 'in.png')
    monkeypatch.setattr(sys.modules['hrnet_zoo.deploy'], 'native_bfloat16', lambda device=None: False)
    with pytest.raises(SystemExit) as e:
        task_main('pose')(['predict', *POSE, '--image', str(tmp_path / 'in.png'), '--backend', 'eager',
                           '--dtype', 'bfloat16'])
    assert str(e.value).startswith('error: --dtype bfloat16: cpu has no native bfloat16')


# ---------------------------------------------------------------------------------------------
# one-line errors

@pytest.mark.parametrize('extra, message', [
    (['--checkpoint', 'missing.pth'], 'error: --checkpoint missing.pth: no such file'),
    (['--backend', 'eager', '--dtype', 'int8'], 'error: --dtype int8 runs on --backend openvino or onnxruntime'),
    (['--dtype', 'float32', '--calibration', 'x'], 'error: --calibration x: calibration images are for --dtype int8'),
    (['--det-every', '0'], 'error: --det-every 0: give N >= 1'),
])
def test_bad_input_is_one_line(tmp_path, extra, message):
    from PIL import Image
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / 'in.png')
    with pytest.raises(SystemExit) as e:
        task_main('pose')(['predict', *POSE, '--image', str(tmp_path / 'in.png'), *extra])
    assert str(e.value).startswith(message) and '\n' not in str(e.value)


def test_missing_source_and_unknown_backend(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        task_main('landmarks')(['predict', *LANDMARKS, '--image', str(tmp_path / 'nope.mp4')])
    assert str(e.value).startswith('error: ') and 'nope.mp4' in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(SystemExit) as e:
        task_main('segmentation')(['predict', *SEGMENTATION, '--image', 'x.png', '--backend', 'tensorrt'])
    assert e.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# eval in int8 next to float32, on a trained tiny model

@needs('openvino', 'nncf')
def test_int8_eval_reports_float32_beside_and_stays_within_half_a_point(tmp_path):
    """W18-small pose (64x48, 5 keypoints) trained for 150 Adam steps on the synthetic COCO set, then
    ``eval --dtype int8`` (OpenVINO + NNCF, calibrated on the float32 pass's first 32 crops) on 48
    held-out images. Measured alone: AP 0.9354 float32, 0.9368 int8 (+0.14 points). With 60 steps and
    16 images (float32 AP 0.58, a half-trained model on a few people) the int8 change was -0.35 alone
    and 1.4 points inside the full suite: too coarse for a 0.5-point bound."""
    from hrnet_zoo.tasks.pose.data import COCOKeypoints
    from hrnet_zoo.tasks.pose.synthetic import write_synthetic_coco
    from hrnet_zoo.tasks.pose.training import fit_pose
    from hrnet_zoo.train.engine import TrainConfig
    train_set = COCOKeypoints(*write_synthetic_coco(str(tmp_path / 'train'), 64, seed=1), input_size=(64, 48),
                              train=True, rotation_factor=30, scale_factor=0.25)
    torch.manual_seed(0)
    model = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5, input_size=(64, 48))
    cfg = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=100, max_steps=150, batch_size=8, optimizer='adam',
                      lr=2e-3, weight_decay=0.0, sched='constant', progress=False, device='cpu',
                      handle_signals=False, log_every=1000)
    fit_pose(model, train_set, cfg, None, flip_test=False, sigmas=[0.089] * 5)
    ann, images = write_synthetic_coco(str(tmp_path / 'val'), 48, seed=2)
    result = task_main('pose')(['eval', *POSE, '--checkpoint', str(tmp_path / 'run' / 'last.pth'), '--val-ann', ann,
                                '--val-images', images, '--workers', '0', '--sigmas', *['0.089'] * 5,
                                '--dtype', 'int8', '--no-progress'])
    assert result['runtime']['pose']['precision'] == 'int8'
    assert result['float32']['AP'] > 0.8  # a model that learnt something: the bound means something
    assert abs(result['AP'] - result['float32']['AP']) <= 0.005
