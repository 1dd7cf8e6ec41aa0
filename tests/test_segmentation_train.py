"""Really training: a W18-small HRNetV2 segmentation model on a synthetic shapes set (written by
the test) through the shared engine reaches an mIoU far above chance."""
from __future__ import annotations

import torch

from hrnet_zoo.configs import get_config
from hrnet_zoo.tasks.segmentation import HRNetSegmentation
from hrnet_zoo.tasks.segmentation.datasets import SyntheticShapes
from hrnet_zoo.tasks.segmentation.loss import SegmentationLoss
from hrnet_zoo.tasks.segmentation.metric import ConfusionMatrix
from hrnet_zoo.tasks.segmentation.training import evaluate, fit
from hrnet_zoo.tasks.segmentation.transforms import Compose, Normalize, RandomHorizontalFlip

NUM_CLASSES = 4  # background + square, disc, triangle
STEPS, BATCH = 150, 4


def _majority_class_miou(dataset) -> float:
    """mIoU of the best constant prediction (all background): the chance level to beat."""
    cm = ConfusionMatrix(NUM_CLASSES)
    for _, mask in dataset:
        cm.update(torch.zeros_like(mask)[None], mask[None])
    return cm.compute()['miou']


def test_w18_small_learns_synthetic_shapes(tmp_path):
    torch.manual_seed(0)
    train = SyntheticShapes(STEPS * BATCH, 64, NUM_CLASSES, seed=0,
                            transform=Compose([RandomHorizontalFlip(), Normalize()]))
    val = SyntheticShapes(32, 64, NUM_CLASSES, seed=100_000, transform=Compose([Normalize()]))
    model = HRNetSegmentation(get_config('hrnet_w18_small'), NUM_CLASSES)
    before = evaluate(model, val, NUM_CLASSES, batch_size=16)['miou']
    result = fit(model, train, SegmentationLoss(NUM_CLASSES), val_set=val, steps=STEPS, out_dir=str(tmp_path),
                 batch_size=BATCH, optimizer='adamw', lr=5e-3, weight_decay=1e-4, progress=False, device='cpu',
                 eval_kwargs=dict(batch_size=16))
    losses = result['losses']
    chance = _majority_class_miou(val)
    miou = result['metrics']['miou']
    print(f'mIoU untrained {before:.3f}, all-background {chance:.3f}, after {STEPS} steps {miou:.3f}')
    assert len(losses) == STEPS and sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert miou > 0.6 and miou > 2.5 * chance and miou > 2.5 * before
    assert (tmp_path / 'last.pth').exists()


def test_cli_train_eval_predict(tmp_path):
    """The entry point end to end on a tiny synthetic run: checkpoints, mIoU JSON, mask PNGs."""
    from PIL import Image
    from hrnet_zoo.tasks.segmentation.__main__ import main
    common = ['--model', 'hrnet_w18_small_seg_cityscapes', '--num-classes', '4', '--device', 'cpu']
    data = ['--data', 'synthetic', '--crop', '64', '64', '--synthetic-val', '2', '--workers', '0']
    summary = main(['train', *common, *data, '--synthetic-train', '4', '--batch-size', '2', '--epochs', '1',
                    '--optimizer', 'adamw', '--lr', '0.005', '--out', str(tmp_path / 'run'), '--no-progress'])
    assert summary['steps'] == 2 and 'miou' in summary['metrics']
    ckpt = str(tmp_path / 'run' / 'last.pth')
    metrics = main(['eval', *common, *data, '--checkpoint', ckpt, '--scales', '0.75', '1.0', '--flip'])
    assert 0.0 <= metrics['miou'] <= 1.0
    image, _ = SyntheticShapes(1, 64, NUM_CLASSES)[0]
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / 'in.png')
    written = main(['predict', *common, '--checkpoint', ckpt, '--image', str(tmp_path / 'in.png'),
                    '--out', str(tmp_path / 'pred')])
    mask = Image.open(written[0])
    assert mask.mode == 'P' and mask.size == (64, 64)
