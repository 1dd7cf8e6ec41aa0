"""Detection training and the command line: a few Faster R-CNN steps on synthetic boxes (loss
falls) and COCOeval on its outputs; the 1x recipe is the official one; ``train`` through the shared
engine, ``eval`` and ``predict`` (boxes drawn) with the shared task CLI."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from hrnet_zoo.tasks.detection import SyntheticBoxes, collate, evaluate_detector
from hrnet_zoo.tasks.detection.__main__ import main
from hrnet_zoo.train.recipes import load_recipe
from test_detection_models import small_detector as _small

TINY = ['--model', 'fasterrcnn_hrnetv2p_w32', '--arch', 'hrnet_w18_small', '--num-classes', '3', '--min-size', '96',
        '--max-size', '96', '--device', 'cpu']


def test_faster_rcnn_trains_and_goes_through_cocoeval():
    torch.manual_seed(0)
    ds = SyntheticBoxes(8, 128, num_classes=3, empty_ratio=0.3, seed=2)
    samples = [ds[i] for i in range(len(ds))]
    with_objects = next(s for s in samples if len(s[1]['boxes']) >= 2)
    without = next(s for s in samples if len(s[1]['boxes']) == 0)
    images, targets = collate([with_objects, without])  # an image without objects is a negative sample
    model = _small('fasterrcnn')
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = []
    for _ in range(5):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print('Faster R-CNN losses', [round(v, 3) for v in losses])
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-2:]) < losses[0]
    metrics = evaluate_detector(model, [(images, targets)])
    assert set(metrics) >= {'bbox_AP', 'bbox_AP50', 'bbox_AP75'}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_recipe_is_the_official_1x_schedule():
    recipe = load_recipe('det_coco_1x')
    assert recipe.task == 'detection' and recipe.reproduces['bbox_AP']['fasterrcnn_hrnetv2p_w32'] == 39.5
    cfg = recipe.train_config(world_size=8, batch_size=2)  # 8 GPUs x 2 images, as the official runs
    assert (cfg.epochs, cfg.milestones, cfg.gamma, cfg.lr, cfg.momentum, cfg.weight_decay) == (
        12, (8, 11), 0.1, pytest.approx(0.02), 0.9, 1e-4)
    assert cfg.optimizer == 'sgd' and not cfg.nesterov and cfg.clip_grad == 35.0 and cfg.best_metric == 'bbox_AP'
    assert round(cfg.warmup_epochs * 117266 / 16) == 500 and cfg.warmup_lr == pytest.approx(0.02 / 3, rel=1e-4)
    assert recipe.train_config(world_size=1, batch_size=2).lr == pytest.approx(0.0025)  # linear scaling


def test_cli_train_on_synthetic_boxes_with_the_engine(tmp_path, capsys):
    summary = main(['train', *TINY, '--data', 'synthetic', '--synthetic-train', '6', '--synthetic-val', '2',
                    '--batch-size', '2', '--max-steps', '3', '--workers', '0', '--no-progress', '--lr', '0.01',
                    '--set', 'train.warmup_epochs=0.5', '--set', 'train.clip_grad=10.0',
                    '--out-dir', str(tmp_path / 'run')])
    assert summary['steps'] == 3 and 0.0 <= summary['metrics']['bbox_AP'] <= 1.0
    assert all(torch.isfinite(torch.tensor(summary['first_losses'] + summary['last_losses'])))
    assert (tmp_path / 'run' / 'last.pth').is_file() and '"bbox_AP"' in capsys.readouterr().out
    metrics = main(['eval', *TINY, '--data', 'synthetic', '--synthetic-val', '2', '--workers', '0',
                    '--checkpoint', str(tmp_path / 'run' / 'last.pth')])
    assert set(metrics) >= {'bbox_AP', 'bbox_AP50'}
    with pytest.raises(SystemExit, match='--images and --ann'):
        main(['train', *TINY, '--max-steps', '1', '--out-dir', str(tmp_path / 'x')])
    with pytest.raises(SystemExit, match='no flip test'):
        main(['eval', *TINY, '--flip-test', '--data', 'synthetic'])


def test_cli_predict_draws_boxes(tmp_path):
    image, _ = SyntheticBoxes(1, 96, 3, seed=4)[0]
    Image.fromarray((image * 255).byte().permute(1, 2, 0).numpy()).save(tmp_path / 'in.png')
    written = main(['predict', '--model', 'fasterrcnn_hrnetv2p_w32', '--variant', 'hrnet_w18_small',
                    '--num-classes', '3', '--min-size', '96', '--max-size', '96', '--device', 'cpu',
                    '--image', str(tmp_path / 'in.png'), '--out', str(tmp_path / 'pred'), '--score-thresh', '0'])
    out = Image.open(written[0])
    assert out.size == (96, 96) and out.mode == 'RGB'
