"""Official-format landmark CSV dataset, decoding of its targets, and the entry point."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_zoo.tasks.landmarks.__main__ import main
from hrnet_zoo.tasks.landmarks.dataset import FaceLandmarks
from hrnet_zoo.tasks.landmarks.decode import decode_landmarks
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


def test_entry_point_train_eval_predict(tmp_path):
    csv_file, images = write_synthetic_faces(str(tmp_path / 'data'), num_images=4, num_landmarks=19)
    common = ['--model', 'hrnet_w18_face_aflw', '--arch', 'hrnet_w18_small', '--input-size', '64', '64',
              '--images', images, '--batch-size', '2', '--workers', '0', '--device', 'cpu']
    out = tmp_path / 'run'
    summary = main(['train', *common, '--train-csv', csv_file, '--val-csv', csv_file, '--epochs', '1',
                    '--out', str(out), '--no-progress', '--lr', '1e-3'])
    assert summary['steps'] == 2 and {'nme', 'fr', 'auc'} <= set(summary['metrics'])
    metrics = main(['eval', *common, '--checkpoint', str(out / 'best.pth'), '--val-csv', csv_file])
    assert metrics['nme'] == pytest.approx(summary['metrics']['nme'])
    png = tmp_path / 'face.png'
    main(['predict', *common, '--checkpoint', str(out / 'last.pth'), '--image', f'{images}/000000.png',
          '--box', '20', '20', '56', '56', '--out', str(png)])
    assert Image.open(png).size == (96, 96)
