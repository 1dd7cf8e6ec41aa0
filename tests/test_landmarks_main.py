"""``python -m hrnet_zoo.tasks.landmarks``: train / eval / predict end to end on a synthetic CSV set,
the recipe of the model's dataset."""
from __future__ import annotations

import pytest
from PIL import Image

from hrnet_zoo.tasks.landmarks.__main__ import main
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_faces


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


def test_missing_csv_is_a_clear_exit():
    """COFW's recipe has no CSV (the official files are .mat): the command says what to pass."""
    with pytest.raises(SystemExit, match='--train-csv'):
        main(['train', '--model', 'hrnet_w18_face_cofw', '--arch', 'hrnet_w18_small', '--device', 'cpu'])


def test_train_flags_backbone_weights_and_the_old_milestones_flag(tmp_path):
    import timm
    import torch
    csv_file, images = write_synthetic_faces(str(tmp_path / 'data'), num_images=2, num_landmarks=19)
    torch.save(timm.create_model('hrnet_w18_small').state_dict(), tmp_path / 'classifier.pth')
    summary = main(['train', '--model', 'hrnet_w18_face_aflw', '--arch', 'hrnet_w18_small', '--input-size', '64', '64',
                    '--images', images, '--train-csv', csv_file, '--batch-size', '2', '--workers', '0',
                    '--device', 'cpu', '--epochs', '1', '--out-dir', str(tmp_path / 'run'), '--no-progress',
                    '--weights-backbone', str(tmp_path / 'classifier.pth'), '--milestones', '7', '9'])
    saved = torch.load(summary['last_checkpoint'], weights_only=True)
    assert summary['steps'] == 1 and saved['config']['milestones'] == (7, 9) and saved['config']['optimizer'] == 'adam'
