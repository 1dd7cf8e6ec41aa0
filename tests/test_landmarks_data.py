"""Official-format landmark CSV dataset: crops, targets that decode back to the landmarks, augmentation, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrnet_zoo.tasks.landmarks.data import FaceLandmarks
from hrnet_zoo.tasks.landmarks.evaluate import decode_landmarks
from hrnet_zoo.tasks.landmarks.metrics import landmark_metrics
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_faces


@pytest.mark.parametrize('name,n', [('aflw', 19), ('300w', 68)])
def test_target_heatmaps_decode_back_to_the_landmarks(tmp_path, name, n):
    csv_file, images = write_synthetic_faces(str(tmp_path), num_images=4, num_landmarks=n)
    ds = FaceLandmarks(csv_file, images, dataset=name, input_size=(128, 128))
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch['image'].shape == (4, 3, 128, 128) and batch['target'].shape == (4, n, 32, 32)
    assert (batch['box_size'] > 0).all() == (name == 'aflw')
    for method in ('quarter', 'dark'):
        pts, _ = decode_landmarks(batch['target'], batch['center'].numpy(), batch['scale'].numpy(), method)
        gt = batch['landmarks'].numpy()
        px_per_input = batch['scale'].numpy()[:, None, None] * 200 / 128
        assert (np.abs(pts - gt) / px_per_input).max() <= (1.0 if method == 'quarter' else 0.5) + 1e-4
        box = batch['box_size'].numpy() if name == 'aflw' else None
        assert landmark_metrics(pts, gt, ds.spec, box)['nme'] < 0.02


def test_augmented_sample_keeps_landmarks_on_their_disks(tmp_path):
    csv_file, images = write_synthetic_faces(str(tmp_path), num_images=2, num_landmarks=19)
    torch.manual_seed(0)
    ds = FaceLandmarks(csv_file, images, dataset='aflw', input_size=(128, 128), train=True, flip_prob=1.0,
                       rotation_prob=1.0)
    item = ds[0]
    crop = item['image'].mean(0)  # landmark disks are bright on a dark background
    bright = []
    for hm in item['target']:
        v, u = divmod(int(hm.flatten().argmax()), hm.shape[1])
        x, y = round((u + 0.5) * 4 - 0.5), round((v + 0.5) * 4 - 0.5)  # heatmap px -> crop px
        bright.append(bool(crop[y, x] > crop.mean()))
    assert np.mean(bright) > 0.8


def test_bad_csv_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        FaceLandmarks(str(tmp_path / 'none.csv'), str(tmp_path))
    (tmp_path / 'empty.csv').write_text('image_name,scale,center_w,center_h\n')
    with pytest.raises(ValueError, match='no faces'):
        FaceLandmarks(str(tmp_path / 'empty.csv'), str(tmp_path))
    csv_file, images = write_synthetic_faces(str(tmp_path), num_images=2, num_landmarks=68)
    with pytest.raises(ValueError, match=r'row 2 has 140 columns; 98 landmarks need 200'):
        FaceLandmarks(csv_file, images, dataset='wflw')
    with pytest.raises(ValueError, match='unknown face dataset'):
        FaceLandmarks(csv_file, images, dataset='helen')


def test_crop_face_flip_is_the_mirrored_crop_with_left_right_swapped():
    from hrnet_zoo.tasks.landmarks.data import crop_face
    from hrnet_zoo.tasks.topdown import flip_keypoints
    rng = np.random.default_rng(0)
    image, pts, pairs = torch.rand(3, 50, 60), rng.uniform(10, 40, size=(5, 2)), ((0, 1), (2, 4))
    a, pa = crop_face(image, pts, (30, 25), 0.2, 10.0, False, (32, 32), pairs)
    b, pb = crop_face(image, pts, (30, 25), 0.2, 10.0, True, (32, 32), pairs)
    assert type(a) is torch.Tensor and a.shape == (3, 32, 32) and torch.equal(b, a.flip(-1))
    assert np.allclose(pb, flip_keypoints(pa, 32, pairs))


@pytest.mark.parametrize('codec', ['face', 'face_continuous'])
def test_face_codec_targets_decode_back(tmp_path, codec):
    # the official targets sit on int(T(x)) (T: image -> 32-px heatmap); decode_preds adds 0.5 and
    # casts (face: within half a heatmap px, 200 * scale * 1.25 / 32 image px, plus the cast's 0..1 px);
    # face_continuous returns the bin centre, within half a heatmap px
    from hrnet_zoo.tasks.codecs import face
    csv_file, images = write_synthetic_faces(str(tmp_path), num_images=3, num_landmarks=19)
    ds = FaceLandmarks(csv_file, images, dataset='aflw', input_size=(128, 128), codec=codec)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    pts, _ = decode_landmarks(batch['target'], batch['center'].numpy(), batch['scale'].numpy(), codec=codec)
    px_per_heatmap = batch['scale'].numpy()[:, None, None] * 200 / 32
    cast = 1.0 if codec == 'face' else 0.0
    # landmarks whose target window starts inside the map (int(T(x)) >= 3 sigma = 4.5): nearer the
    # border the official window arithmetic moves the Gaussian one pixel (tests/test_tasks_codecs.py)
    hm = np.stack([face.heatmap_coordinates(batch['landmarks'][i].numpy(), batch['center'][i].numpy(),
                                            float(batch['scale'][i]), (32, 32)) for i in range(len(ds))])
    inside = (hm >= 4.5).all(-1)
    assert inside.sum() > 30
    err = np.abs(pts - batch['landmarks'].numpy()) - cast
    assert (err[inside] <= (0.5 * px_per_heatmap + 1e-4).repeat(19, 1)[inside]).all()


def test_mmpose_face_json_center_scale_and_wholebody_faces(tmp_path):
    from hrnet_zoo.tasks.landmarks.data import read_landmark_json
    pts = [[10.0, 20.0, 2], [30.0, 40.0, 0], [50.0, 60.0, 1]]
    data = {'images': [{'id': 7, 'file_name': 'a.jpg'}],
            'annotations': [  # WFLW / 300W style (AFLW adds box_size), then COCO-WholeBody's face fields
                {'id': 1, 'image_id': 7, 'center': [40.0, 50.0], 'scale': 0.4, 'box_size': 80.0,
                 'keypoints': [v for p in pts for v in p]},
                {'id': 2, 'image_id': 7, 'face_box': [10.0, 20.0, 60.0, 40.0], 'face_valid': True,
                 'face_kpts': [v for p in pts for v in p]},
                {'id': 3, 'image_id': 7, 'face_box': [0, 0, 1, 1], 'face_valid': False, 'face_kpts': [0.0] * 9}]}
    path = tmp_path / 'faces.json'
    path.write_text(json.dumps(data))
    rows = read_landmark_json(str(path), 3)
    assert len(rows) == 2 and rows[0]['name'] == 'a.jpg' and rows[0]['box_size'] == 80.0
    assert rows[0]['scale'] == 0.4 and rows[0]['center'].tolist() == [40.0, 50.0]
    assert rows[0]['visible'].tolist() == [True, False, True]   # flag 0: left out of NME
    # the face box's centre (10 + 30, 20 + 20) and its longer side 60 / 200 as the scale
    assert rows[1]['center'].tolist() == [40.0, 40.0] and rows[1]['scale'] == pytest.approx(0.3)
    with pytest.raises(ValueError, match='has 3 landmarks, the model 5'):
        read_landmark_json(str(path), 5)
