"""Training (:mod:`hrnet_zoo.tasks.segmentation.training`, the recipes, the command line). Really
training: a W18-small HRNetV2 segmentation model on a synthetic shapes set (written by the test)
through the shared engine reaches an mIoU far above chance."""
from __future__ import annotations

import torch

from hrnet_zoo.configs import get_config
from hrnet_zoo.tasks.segmentation import HRNetSegmentation
from hrnet_zoo.tasks.segmentation.data import SyntheticShapes
from hrnet_zoo.tasks.segmentation.loss import SegmentationLoss
from hrnet_zoo.tasks.segmentation.metrics import ConfusionMatrix
from hrnet_zoo.tasks.segmentation.evaluate import evaluate
from hrnet_zoo.tasks.segmentation.training import fit
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


def test_recipes_are_the_official_configs():
    from hrnet_zoo.train.recipes import list_recipes, load_recipe
    assert {'seg_cityscapes', 'seg_pascal_context', 'seg_lip'} <= set(list_recipes(task='segmentation'))
    cs = load_recipe('seg_cityscapes')
    assert (cs.task, cs.global_batch, cs.train['epochs'], cs.train['lr'], cs.train['weight_decay']) == (
        'segmentation', 12, 484, 0.01, 5e-4)
    assert (cs.train['sched'], cs.train['power'], cs.train['nesterov'], cs.data['crop_size']) == (
        'poly', 0.9, False, [512, 1024])
    assert cs.data['class_weights'] and cs.data['base_size'] == 2048 and cs.augment['scale'] == [0.5, 2.0]
    assert cs.reproduces['miou'] == 80.9
    lip, ctx = load_recipe('seg_lip'), load_recipe('seg_pascal_context')
    assert (lip.global_batch, lip.train['epochs'], lip.train['lr'], lip.augment['scale']) == (
        40, 150, 0.007, [0.5, 1.5])
    assert (ctx.global_batch, ctx.train['epochs'], ctx.train['lr'], ctx.train['weight_decay']) == (16, 200, 0.001, 1e-4)
    assert ctx.eval['flip_test'] and len(ctx.eval['scales']) == 7


def test_cli_takes_the_recipe_of_the_model_s_dataset_and_old_flags():
    from hrnet_zoo.tasks.cli import build_parser, load_task_recipe
    from hrnet_zoo.tasks.segmentation.__main__ import COMMAND, _recipe
    args = build_parser(COMMAND).parse_args(['eval', '--model', 'hrnet_w48_seg_lip', '--flip', '--scales', '0.5', '1',
                                             '--arch', 'hrnet_w18_small'])
    recipe = _recipe(args, load_task_recipe(args, COMMAND))
    assert recipe.name == 'seg_lip' and recipe.eval['scales'] == [0.5, 1.0] and args.flip_test is True
    assert args.arch == 'hrnet_w18_small'  # a smaller trunk for smoke runs (the builder's arch=)
    args = build_parser(COMMAND).parse_args(['train', '--optimizer', 'adamw', '--wd', '0.01', '--no-ohem',
                                             '--set', 'train.epochs=3', '--scale', '0.75', '1.25', '--ohem-keep', '9'])
    recipe = _recipe(args, load_task_recipe(args, COMMAND))
    assert recipe.name == 'seg_cityscapes' and recipe.train['optimizer'] == 'adamw'
    assert recipe.train['weight_decay'] == 0.01 and recipe.train['epochs'] == 3 and recipe.data['ohem'] is False
    assert recipe.augment['scale'] == [0.75, 1.25] and recipe.data['ohem_keep'] == 9


def test_cli_test_protocol_comes_from_the_recipe_and_flags():
    """eval / predict take the official test protocol from the recipe's eval section (PASCAL-Context:
    520x520 windows of a 520 long side; LIP: images resized to 473x473; Cityscapes: 1024x2048
    windows) and --combine / --windows override it."""
    from types import SimpleNamespace
    from hrnet_zoo.tasks.cli import build_parser, load_task_recipe
    from hrnet_zoo.tasks.segmentation.__main__ import COMMAND, _eval_kwargs, _recipe

    model = SimpleNamespace(pretrained_cfg={'flip_pairs': [[14, 15]]})

    def kwargs(*argv):
        args = build_parser(COMMAND).parse_args(['eval', *argv])
        return _eval_kwargs(args, _recipe(args, load_task_recipe(args, COMMAND)), model)

    ctx = kwargs('--model', 'hrnet_w48_seg_pascal_context')
    assert (ctx['crop_size'], ctx['base_size'], ctx['combine'], ctx['windows'], ctx['flip']) == (
        (520, 520), 520, 'official', None, True)
    assert len(ctx['scales']) == 7 and ctx['resize_to'] is None
    lip = kwargs('--model', 'hrnet_w48_seg_lip', '--combine', 'softmax', '--windows', 'cityscapes')
    assert (lip['resize_to'], lip['crop_size'], lip['combine'], lip['windows']) == (
        (473, 473), (473, 473), 'softmax', 'cityscapes')
    assert lip['flip_pairs'] == [[14, 15]]
    cs = kwargs('--model', 'hrnet_w48_seg_cityscapes', '--scales', '0.5', '1.75')
    assert (cs['crop_size'], cs['base_size'], cs['scales'], cs['flip']) == ((1024, 2048), None, (0.5, 1.75), False)
