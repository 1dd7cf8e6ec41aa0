"""COCO-format dataset and COCO keypoint AP on a synthetic set written by the test."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrnet_zoo.tasks.pose.data import COCOKeypoints
from hrnet_zoo.tasks.heatmap import decode_heatmaps
from hrnet_zoo.tasks.pose.metrics import coco_keypoint_ap, keypoint_results
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_coco
from hrnet_zoo.tasks.topdown import affine_matrix, apply_affine

SIGMAS = [0.089] * 5


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    ann, images = write_synthetic_coco(str(root), num_images=12, num_keypoints=5, invisible_prob=0.2, seed=3)
    return ann, images


def gt_results(ann_file):
    data = json.load(open(ann_file))
    kp = np.array([a['keypoints'] for a in data['annotations']], dtype=float).reshape(len(data['annotations']), -1, 3)
    return keypoint_results([a['image_id'] for a in data['annotations']], kp[..., :2], (kp[..., 2] > 0) * 1.0)


def test_ground_truth_as_predictions_gives_ap_one(synth):
    stats = coco_keypoint_ap(synth[0], gt_results(synth[0]), sigmas=SIGMAS)
    assert stats['AP'] == pytest.approx(1.0) and stats['AR'] == pytest.approx(1.0)


def test_shifted_predictions_lower_ap(synth):
    res = gt_results(synth[0])
    for r in res:
        r['keypoints'] = [v + 6.0 if i % 3 != 2 else v for i, v in enumerate(r['keypoints'])]
    assert coco_keypoint_ap(synth[0], res, sigmas=SIGMAS)['AP'] < 0.5


def test_metric_needs_sigmas_for_non_coco_keypoint_sets_and_predictions(synth):
    with pytest.raises(ValueError, match='5 keypoints but 17 OKS sigmas'):
        coco_keypoint_ap(synth[0], gt_results(synth[0]))
    with pytest.raises(ValueError, match='empty'):
        coco_keypoint_ap(synth[0], [], sigmas=SIGMAS)


def test_dataset_items_and_ground_truth_heatmaps_decode_to_ap_one(synth):
    ds = COCOKeypoints(*synth, input_size=(64, 48))
    item = ds[0]
    assert item['image'].shape == (3, 64, 48) and item['target'].shape == (5, 16, 12)
    assert item['target_weight'].shape == (5, 1)
    # the GT keypoints land on the crop where the affine map says, and the target peaks there
    s = ds.samples[0]
    m = affine_matrix(s['center'], s['scale'], 0.0, (64, 48))
    vis = s['keypoints'][:, 2] > 0
    assert np.allclose(item['keypoints'][vis, :2].numpy(), apply_affine(s['keypoints'][vis, :2], m), atol=1e-4)
    assert torch.equal(item['target_weight'][:, 0] > 0, torch.from_numpy(vis))

    # ground-truth target heatmaps, as a perfect model would predict them
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    pts, conf = decode_heatmaps(batch['target'], batch['center'].numpy(), batch['scale'].numpy(), 'dark')
    res = keypoint_results(batch['image_id'].tolist(), pts, conf)
    assert coco_keypoint_ap(ds.ann_file, res, sigmas=SIGMAS)['AP'] > 0.95


def test_training_augmentation_keeps_targets_on_the_keypoints(synth):
    torch.manual_seed(0)
    ds = COCOKeypoints(*synth, input_size=(64, 48), train=True, flip_prob=1.0, rotation_prob=1.0)
    item = ds[1]
    crop = item['image'].mean(0)  # keypoint disks are bright on a dark background
    for (x, y, v), hm in zip(item['keypoints'].numpy(), item['target']):
        if v > 0 and 2 <= x < 46 and 2 <= y < 62:
            assert crop[int(round(y)), int(round(x))] > crop.mean()
            assert hm.max() > 0.5


def write(tmp_path, data):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(data))
    return str(path)


def test_bad_annotation_files_give_clear_errors(synth, tmp_path):
    data = json.load(open(synth[0]))
    with pytest.raises(ValueError, match='no images or no annotations'):
        COCOKeypoints(write(tmp_path, {'images': [], 'annotations': [], 'categories': data['categories']}), synth[1])
    with pytest.raises(FileNotFoundError, match='missing.json'):
        COCOKeypoints(str(tmp_path / 'missing.json'), synth[1])
    (tmp_path / 'broken.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='not valid JSON'):
        COCOKeypoints(str(tmp_path / 'broken.json'), synth[1])
    bad = json.loads(json.dumps(data))
    bad['annotations'][3]['keypoints'] = bad['annotations'][3]['keypoints'][:-3]
    with pytest.raises(ValueError, match=r'annotation 4 has 4 keypoints .* defines 5'):
        COCOKeypoints(write(tmp_path, bad), synth[1])
    with pytest.raises(ValueError, match='has 5 keypoints but 17 were expected'):
        COCOKeypoints(synth[0], synth[1], num_keypoints=17)


def test_boxes_outside_the_image_are_clipped_or_skipped(synth, tmp_path):
    data = json.loads(open(synth[0]).read())
    data['annotations'][0]['bbox'] = [-20.0, -20.0, 60.0, 60.0]      # partly outside: clipped
    data['annotations'][1]['bbox'] = [500.0, 500.0, 30.0, 30.0]      # wholly outside: skipped
    ds = COCOKeypoints(write(tmp_path, data), synth[1], input_size=(64, 48))
    assert len(ds) == len(data['annotations']) - 1 and ds.num_skipped_boxes == 1
    assert np.allclose(ds.samples[0]['center'], [20.0, 20.0])
    for a in data['annotations']:
        a['bbox'] = [500.0, 500.0, 30.0, 30.0]
    with pytest.raises(ValueError, match='no non-crowd person annotation'):
        COCOKeypoints(write(tmp_path, data), synth[1])


def half_body_person(tmp_path, num_visible=17):
    """One 17-keypoint person: upper body (head, arms) in y 20-70, lower body (hips, legs) in y 120-180."""
    rng = np.random.default_rng(0)
    upper = np.stack([rng.uniform(80, 120, 11), rng.uniform(20, 70, 11)], 1)
    lower = np.stack([rng.uniform(80, 120, 6), rng.uniform(120, 180, 6)], 1)
    vis = np.array([2] * num_visible + [0] * (17 - num_visible))
    kpts = np.concatenate([np.concatenate([upper, lower]), vis[:, None]], 1)
    from PIL import Image
    Image.fromarray(rng.integers(0, 255, (200, 200, 3)).astype(np.uint8)).save(tmp_path / 'p.png')
    from hrnet_zoo.tasks.pose.specs import COCO_KEYPOINT_NAMES
    data = {'images': [{'id': 1, 'file_name': 'p.png', 'width': 200, 'height': 200}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'bbox': [70, 10, 60, 180],
                             'area': 60 * 180, 'keypoints': kpts.reshape(-1).tolist()}],
            'categories': [{'id': 1, 'name': 'person', 'keypoints': list(COCO_KEYPOINT_NAMES)}]}
    return write(tmp_path, data), str(tmp_path)


def test_half_body_crops_contain_only_the_chosen_half(tmp_path):
    ann, root = half_body_person(tmp_path)
    ds = COCOKeypoints(ann, root, input_size=(64, 48), train=True, half_body_prob=1.0, scale_factor=0.0,
                       rotation_prob=0.0, flip_prob=0.0)
    halves = set()
    for seed in range(12):
        torch.manual_seed(seed)
        k = ds[0]['keypoints'].numpy()
        inside = (k[:, 0] >= 0) & (k[:, 0] <= 47) & (k[:, 1] >= 0) & (k[:, 1] <= 63)
        upper, lower = inside[:11], inside[11:]
        assert (upper.all() and not lower.any()) or (lower.all() and not upper.any()), inside
        halves.add('upper' if upper.all() else 'lower')
    assert halves == {'upper', 'lower'}  # both halves are chosen (official: randn() < 0.5 picks the upper)
    # 8 labelled joints or fewer: never a half-body crop (official: more than NUM_JOINTS_HALF_BODY = 8)
    ann, root = half_body_person(tmp_path, num_visible=8)
    few = COCOKeypoints(ann, root, input_size=(64, 48), train=True, half_body_prob=1.0, scale_factor=0.0,
                        rotation_prob=0.0, flip_prob=0.0)
    plain = COCOKeypoints(ann, root, input_size=(64, 48))
    torch.manual_seed(0)
    assert torch.allclose(few[0]['keypoints'], plain[0]['keypoints'], atol=1e-4)


def test_half_body_box_official_rule():
    from hrnet_zoo.tasks.pose.data import half_body_box
    k = np.zeros((17, 3))
    k[:11] = [[10.0 + i, 20.0 + 2 * i, 2] for i in range(11)]
    center, scale = half_body_box(k, range(11), 0.75, choose_upper=True)
    assert np.allclose(center, [15.0, 30.0])
    assert np.allclose(scale, np.array([20 * 0.75, 20]) / 200 * 1.5)  # grown to the aspect ratio, x1.5
    k[:, 2] = 0
    k[0, 2] = 2
    assert half_body_box(k, range(11), 0.75, choose_upper=True) is None  # fewer than 2 joints


def test_detection_boxes_file_is_read_as_the_official_loader(synth, tmp_path):
    from hrnet_zoo.tasks.pose.data import read_detections
    dets = [{'image_id': 1, 'category_id': 1, 'bbox': [1, 2, 30, 40], 'score': 0.5},
            {'image_id': 1, 'category_id': 3, 'bbox': [1, 2, 30, 40], 'score': 0.9},
            {'image_id': 2, 'category_id': 1, 'bbox': [1, 2, 0, 40], 'score': 0.9},
            {'image_id': 2, 'category_id': 1, 'bbox': [5, 5, 20, 20], 'score': 0.1}]
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps(dets))
    assert [d['score'] for d in read_detections(str(path))] == [0.5, 0.1]
    assert [d['score'] for d in read_detections(dets, score_thresh=0.2)] == [0.5]
    ds = COCOKeypoints(*synth, input_size=(64, 48), boxes=str(path))
    assert len(ds) == 2 and ds[0]['score'].item() == 0.5 and ds[0]['target_weight'].sum() == 0
    assert ds.samples[0]['area'] == pytest.approx(np.prod(ds.samples[0]['scale'] * 200))
    with pytest.raises(ValueError, match='no person detection'):
        COCOKeypoints(*synth, boxes=str(path), det_score_thresh=0.9)
    with pytest.raises(ValueError, match='for evaluation'):
        COCOKeypoints(*synth, boxes=str(path), train=True)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        read_detections(str(tmp_path / 'nope.json'))


def test_msra_dataset_sanitizes_boxes_and_its_targets_decode_back(synth, tmp_path):
    from hrnet_zoo.tasks.codecs import get_codec
    data = json.loads(open(synth[0]).read())
    data['annotations'][0]['bbox'] = [-20.0, -20.0, 60.0, 60.0]
    ann = write(tmp_path, data)
    udp, msra = COCOKeypoints(ann, synth[1], input_size=(64, 48)), COCOKeypoints(ann, synth[1], input_size=(64, 48),
                                                                                   codec='msra')
    # official sanitizing keeps x1 = 0 and sets x2 = 0 + 60 - 1 = 59: centre (29.5, 29.5); udp clips to
    # [0, 40] x [0, 40]: centre (20, 20)
    assert np.allclose(msra.samples[0]['center'], [29.5, 29.5]) and np.allclose(udp.samples[0]['center'], [20, 20])
    assert udp.codec is None and udp.with_codec('msra').samples[0]['center'].tolist() == [29.5, 29.5]
    # the crop keypoints are where the msra matrix says, and the targets (int(x / 4 + 0.5)) decode
    # through msra within the quarter step + rounding: 0.5 heatmap px = 2 crop px
    s = msra.samples[1]
    item = msra[1]
    m = get_codec('msra').crop_matrix(s['center'], s['scale'], 0.0, (64, 48))
    vis = s['keypoints'][:, 2] > 0
    assert np.allclose(item['keypoints'][vis, :2].numpy(), apply_affine(s['keypoints'][vis, :2], m), atol=1e-4)
    pts, _ = get_codec('msra').decode(item['target'][None], s['center'][None], s['scale'][None])
    err = np.abs(apply_affine(pts[0][vis], m) - item['keypoints'][vis, :2].numpy())
    assert err.max() <= 2.0 + 1e-4


def test_evaluation_items_of_a_combined_codec_need_no_targets(tmp_path):
    # combined targets (mmpose's udp_regress) are decoded, not trained here: an evaluation set under
    # that codec gives zero targets instead of refusing, a training set still refuses
    from hrnet_zoo.tasks.pose.data import COCOKeypoints
    ann, images = write_synthetic_coco(str(tmp_path), num_images=2, num_keypoints=5, seed=3)
    val = COCOKeypoints(ann, images, input_size=(64, 48), train=False, codec='mmpose_udp_combined')
    item = val[0]
    assert item['target'].shape == (5, 16, 12) and not item['target'].any() and not item['target_weight'].any()
    train = COCOKeypoints(ann, images, input_size=(64, 48), train=True, codec='mmpose_udp_combined')
    with pytest.raises(ValueError, match='decoded here but not trained'):
        train[0]
