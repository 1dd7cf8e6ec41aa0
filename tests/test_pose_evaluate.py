"""The official protocol on a synthetic multi-person COCO set: a small model trained briefly, then
evaluated on ground-truth boxes and on detection boxes (the ground-truth boxes, jittered copies,
exact duplicates and false positives) with rescoring and OKS-NMS; the results file, the CLI's AP
table, sharded evaluation, and multi-person predict (Python call and CLI)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import hrnet_zoo
from hrnet_zoo.tasks.pose import COCOKeypoints, evaluate_coco, predict
from hrnet_zoo.tasks.pose.__main__ import main
from hrnet_zoo.tasks.pose.evaluate import build_detector, detection_results, predict_dataset
from hrnet_zoo.tasks.pose.metrics import load_coco
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_coco
from hrnet_zoo.tasks.pose.training import fit_pose
from hrnet_zoo.train.engine import TrainConfig

SIZE = (64, 48)
SIGMAS = [0.089] * 5
PEOPLE = 3
IMAGE = (96, 144)  # (h, w): three people side by side
AP_MARGIN = 0.1  # detection-box AP within this of the ground-truth-box AP


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """W18-small trunk, 64x48 crops, 5 colour-coded keypoints, 3 people per image; 120 Adam steps."""
    root = tmp_path_factory.mktemp('pose_protocol')
    kw = dict(num_keypoints=5, image_size=IMAGE, box_range=(36, 80), people_per_image=PEOPLE)
    train_set = COCOKeypoints(*write_synthetic_coco(str(root / 'train'), 48, seed=1, **kw), input_size=SIZE,
                              train=True, rotation_factor=30, scale_factor=0.25)
    ann, images = write_synthetic_coco(str(root / 'val'), 8, seed=2, **kw)
    torch.manual_seed(0)
    model = hrnet_zoo.create_model('hrnet_pose', arch='hrnet_w18_small', num_keypoints=5, input_size=SIZE)
    cfg = TrainConfig(out_dir=str(root / 'run'), epochs=100, max_steps=120, batch_size=8, optimizer='adam', lr=2e-3,
                      weight_decay=0.0, sched='constant', progress=False, device='cpu', handle_signals=False,
                      best_metric='AP', log_every=50)
    fit_pose(model, train_set, cfg)
    torch.save({'model': model.state_dict()}, root / 'model.pth')
    return model.eval(), ann, images, root


def detections(ann_file, seed=0):
    """Ground-truth boxes (score 0.95), a jittered copy of each (0.8), an exact duplicate (0.7) and
    one false positive per image on the background strip edge (0.3)."""
    rng = np.random.default_rng(seed)
    data = json.load(open(ann_file))
    dets = []
    for a in data['annotations']:
        x, y, w, h = a['bbox']
        jitter = [x + rng.uniform(-0.05, 0.05) * w, y + rng.uniform(-0.05, 0.05) * h, w * rng.uniform(0.95, 1.05),
                  h * rng.uniform(0.95, 1.05)]
        dets += [{'image_id': a['image_id'], 'category_id': 1, 'bbox': a['bbox'], 'score': 0.95},
                 {'image_id': a['image_id'], 'category_id': 1, 'bbox': jitter, 'score': 0.8},
                 {'image_id': a['image_id'], 'category_id': 1, 'bbox': a['bbox'], 'score': 0.7}]
    for im in data['images']:
        dets += [{'image_id': im['id'], 'category_id': 1, 'bbox': [2.0, 2.0, 12.0, 20.0], 'score': 0.3},
                 {'image_id': im['id'], 'category_id': 2, 'bbox': [10.0, 10.0, 40.0, 40.0], 'score': 0.9},  # no person
                 {'image_id': im['id'], 'category_id': 1, 'bbox': [30.0, 30.0, 40.0, 40.0], 'score': 0.01}]
    return dets, len(data['annotations']), len(data['images'])


@pytest.fixture(scope='module')
def dets_file(trained):
    dets, _, _ = detections(trained[1])
    path = trained[3] / 'dets.json'
    path.write_text(json.dumps(dets))
    return str(path)


def test_detection_boxes_ap_matches_ground_truth_boxes_and_duplicates_go(trained, dets_file):
    model, ann, images, root = trained
    gt_set = COCOKeypoints(ann, images, input_size=SIZE)
    gt = evaluate_coco(model, gt_set, batch_size=16, flip_test=False, sigmas=SIGMAS)
    det_set = COCOKeypoints(ann, images, input_size=SIZE, boxes=dets_file, det_score_thresh=0.05)
    _, n_people, n_images = detections(ann)
    assert len(det_set) == 3 * n_people + n_images  # category 2 and the score-0.01 box are dropped
    out = root / 'results.json'
    det = evaluate_coco(model, det_set, batch_size=16, flip_test=False, sigmas=SIGMAS, results_json=str(out))
    results = json.load(open(out))
    coco = load_coco(ann)
    assert len(coco.loadRes(results).getAnnIds()) == len(results)  # the results file loads in pycocotools
    # OKS-NMS: the exact duplicates go, a jittered copy goes when its pose has OKS > 0.9 with the
    # better one (measured: 23 of 24), the false positives stay
    assert n_people + n_images <= len(results) <= n_people + n_images + n_people // 4
    assert len({tuple(r['keypoints']) for r in results}) == len(results)
    without_nms = evaluate_coco(model, det_set, batch_size=16, flip_test=False, sigmas=SIGMAS, oks_thresh=1.0)
    print(f'synthetic 3-person COCO AP: GT boxes {gt["AP"]:.3f}, detection boxes {det["AP"]:.3f} '
          f'(without OKS-NMS {without_nms["AP"]:.3f}); {len(det_set)} boxes -> {len(results)} people')
    assert gt['AP'] > 0.5
    assert abs(det['AP'] - gt['AP']) < AP_MARGIN
    assert without_nms['AP'] < det['AP']


def test_sharded_prediction_equals_one_process(trained, dets_file):
    model, ann, images, _ = trained
    det_set = COCOKeypoints(ann, images, input_size=SIZE, boxes=dets_file)
    one = predict_dataset(model, det_set, batch_size=7, flip_test=True)
    parts = [predict_dataset(model, det_set, batch_size=5, flip_test=True, shard=(r, 2)) for r in range(2)]
    assert sum(len(p['image_ids']) for p in parts) == len(one['image_ids'])
    merged_rows = np.concatenate([np.arange(len(det_set))[r::2] for r in range(2)])
    merged = {k: np.concatenate([p[k] for p in parts])[np.argsort(merged_rows)] for k in one}
    for k in one:
        np.testing.assert_allclose(merged[k], one[k], atol=1e-5)
    assert detection_results(merged, sigmas=SIGMAS) == detection_results(one, sigmas=SIGMAS)


def test_eval_command_on_detection_boxes_prints_the_ap_table(trained, dets_file, capsys):
    _, ann, images, root = trained
    stats = main(['eval', '--model', 'hrnet_pose', '--arch', 'hrnet_w18_small', '--num-keypoints', '5',
                  '--input-size', '64', '48', '--checkpoint', str(root / 'model.pth'), '--device', 'cpu',
                  '--workers', '0', '--val-ann', ann, '--val-images', images, '--det-boxes', dets_file,
                  '--det-score-thresh', '0.05', '--results-json', str(root / 'cli_results.json'),
                  '--sigmas', *map(str, SIGMAS), '--no-progress'])
    printed = json.loads(capsys.readouterr().out)
    assert {'AP', 'AP50', 'AP75', 'AP_M', 'AP_L', 'AR'} <= set(printed) and printed == pytest.approx(stats)
    print('eval --det-boxes:', json.dumps({k: round(v, 3) for k, v in stats.items()}))
    _, n_people, n_images = detections(ann)
    assert n_people + n_images <= len(json.load(open(root / 'cli_results.json'))) <= n_people * 5 // 4 + n_images
    soft = main(['eval', '--model', 'hrnet_pose', '--arch', 'hrnet_w18_small', '--num-keypoints', '5',
                 '--input-size', '64', '48', '--checkpoint', str(root / 'model.pth'), '--device', 'cpu',
                 '--workers', '0', '--val-ann', ann, '--val-images', images, '--det-boxes', dets_file,
                 '--soft-nms', '--sigmas', *map(str, SIGMAS), '--no-progress'])
    assert 0 <= soft['AP'] <= 1


def test_predict_finds_every_person_of_an_image(trained):
    model, ann, images, _ = trained
    data = json.load(open(ann))
    anns = [a for a in data['annotations'] if a['image_id'] == 1]
    boxes = [a['bbox'] for a in anns]
    people = predict(model, f'{images}/000000.png', boxes=boxes + boxes, flip_test=True, sigmas=SIGMAS)
    assert len(people) == PEOPLE  # the duplicates are removed by OKS-NMS
    for a in anns:
        gt = np.asarray(a['keypoints'], dtype=float).reshape(-1, 3)
        best = min(people, key=lambda p: np.abs(np.asarray(p['bbox']) - a['bbox']).sum())
        assert np.median(np.linalg.norm(best['keypoints'] - gt[:, :2], axis=1)) < 4.0
        assert best['keypoints'].shape == (5, 2) and best['keypoint_scores'].shape == (5,)
    scores = [p['score'] for p in people]
    assert scores == sorted(scores, reverse=True)
    # without boxes the whole image is one person box
    assert len(predict(model, Image.open(f'{images}/000000.png'), sigmas=SIGMAS)) == 1


def test_predict_command_writes_json_lines_and_the_drawing(trained, tmp_path):
    _, ann, images, root = trained
    common = ['--model', 'hrnet_pose', '--arch', 'hrnet_w18_small', '--num-keypoints', '5', '--input-size', '64', '48',
              '--checkpoint', str(root / 'model.pth'), '--device', 'cpu', '--sigmas', *map(str, SIGMAS)]
    data = json.load(open(ann))
    dets = tmp_path / 'dets.json'  # detections with the image list that names their files
    dets.write_text(json.dumps({'images': data['images'], 'detections': detections(ann)[0]}))
    out, js = tmp_path / 'people.png', tmp_path / 'people.json'
    lines = main(['predict', *common, '--image', f'{images}/000001.png', '--det-boxes', str(dets),
                  '--det-score-thresh', '0.5', '--json', str(js), '--out', str(out)])
    entry = json.loads(js.read_text().splitlines()[0])
    assert len(entry['people']) == PEOPLE and entry['out'] == str(out)
    assert len(entry['people'][0]['keypoints']) == 5 and len(entry['people'][0]['keypoint_scores']) == 5
    assert Image.open(out).size == (IMAGE[1], IMAGE[0]) and lines[0]['people'] == entry['people']
    print('predict JSON excerpt:', json.dumps(entry['people'][0]), '; drawing', out)
    # a folder of images: one JSON line per image, each with its own detections
    folder = tmp_path / 'drawings'
    lines = main(['predict', *common, '--image', images, '--det-boxes', str(dets), '--det-score-thresh', '0.5',
                  '--json', str(js), '--out', str(folder)])
    assert len(js.read_text().splitlines()) == 8 == len(lines)
    counts = [len(line['people']) for line in lines]  # a jittered copy may survive OKS-NMS (OKS <= 0.9)
    assert set(counts) <= {PEOPLE, PEOPLE + 1} and sum(counts) <= 8 * PEOPLE + 2
    assert all(Image.open(line['out']).size == (IMAGE[1], IMAGE[0]) for line in lines)
    # an animated GIF (torchvision.io.decode_gif): one JSON line per frame, the same boxes in each
    frames = [Image.open(f'{images}/{i:06d}.png') for i in range(3)]
    frames[0].save(tmp_path / 'clip.gif', save_all=True, append_images=frames[1:])
    boxes = [v for a in data['annotations'][:PEOPLE] for v in ['--box', *map(str, a['bbox'])]]
    lines = main(['predict', *common, '--image', str(tmp_path / 'clip.gif'), *boxes, '--out', str(folder)])
    assert [line['image'].rsplit('#', 1)[1] for line in lines] == ['00000', '00001', '00002']
    assert [len(line['people']) for line in lines] == [PEOPLE] * 3


def test_detector_without_downloadable_weights_is_a_clear_error(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError('Temporary failure in name resolution')
    monkeypatch.setattr(torchvision.models, 'get_model', offline)
    with pytest.raises(RuntimeError, match='fasterrcnn_resnet50_fpn_v2.*--detector-checkpoint.*--det-boxes'):
        build_detector('fasterrcnn_resnet50_fpn_v2')
    with pytest.raises(ValueError, match='unknown detector'):
        build_detector('yolo_v99')
    with pytest.raises(ValueError, match='--detector-checkpoint'):
        build_detector('fasterrcnn_hrnetv2p_w18')


def test_predict_with_a_detector_module(trained):
    """Our own V2p detector (tiny trunk, random weights, its classifier biased to 'person') as the
    person detector: every person returned sits in one of the detector's person boxes."""
    from hrnet_zoo.tasks.pose.evaluate import detect_people
    model, _, images, _ = trained
    torch.manual_seed(0)
    det = hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w18', arch='hrnet_w18_small', min_size=96, max_size=144,
                                 box_detections_per_img=10).eval()
    with torch.no_grad():
        det.roi_heads.box_predictor.cls_score.bias[1] = 20.0
    image = Image.open(f'{images}/000000.png')
    boxes = detect_people(det, torch.from_numpy(np.asarray(image) / 255.0).permute(2, 0, 1).float(), 0.5)
    assert len(boxes) > 0 and boxes.shape[1] == 5
    people = predict(model, image, detector=det, det_score_thresh=0.5, sigmas=SIGMAS)
    assert 1 <= len(people) <= len(boxes)
    for p in people:
        assert any(np.allclose(p['bbox'], b[:4], atol=1e-3) for b in boxes) and p['keypoints'].shape == (5, 2)
