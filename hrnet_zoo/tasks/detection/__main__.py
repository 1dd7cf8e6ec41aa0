"""``python -m hrnet_zoo.tasks.detection train|eval|predict`` (``torchrun ... -m`` for DDP).

Examples::

    # COCO, Faster R-CNN HRNetV2p-W32, the official 1x schedule (recipe det_coco_1x: 12 epochs, lr steps
    # after 8 and 11, lr 0.02 for 16 images): 8 processes x 2 images
    torchrun --nproc_per_node 8 -m hrnet_zoo.tasks.detection train --model fasterrcnn_hrnetv2p_w32 \\
        --images coco/train2017 --ann coco/annotations/instances_train2017.json \\
        --val-images coco/val2017 --val-ann coco/annotations/instances_val2017.json \\
        --weights-backbone imagenet --batch-size 2 --out-dir runs/frcnn_w32
    python -m hrnet_zoo.tasks.detection eval --model fasterrcnn_hrnetv2p_w32 --checkpoint runs/frcnn_w32/best.pth \\
        --val-images coco/val2017 --val-ann coco/annotations/instances_val2017.json
    python -m hrnet_zoo.tasks.detection predict --model fasterrcnn_hrnetv2p_w32 --checkpoint best.pth \\
        --image street.jpg --out preds/
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Dict, List

import torch
from torchvision.transforms.v2 import functional as TF

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from .. import cli
from ..app import PredictApp
from ..drawing import draw_detections
from ..video import no_timer
from .data import CocoDetectionDataset, SyntheticBoxes, train_transform
from .evaluate import evaluate_dataset, iou_types_of
from .training import fit_detector

# old spellings of recipe values, kept (hidden) for one release: flag -> TrainConfig field
_OLD_TRAIN_FLAGS = {'wd': 'weight_decay', 'milestones': 'milestones', 'warmup_epochs': 'warmup_epochs',
                    'clip_grad': 'clip_grad'}


def add_arguments(g: argparse._ArgumentGroup, command: str) -> None:
    """The detection flags (the common ones come from :mod:`hrnet_zoo.tasks.cli`)."""
    g.add_argument('--arch', '--variant', dest='arch', default=None,
                   help="another trunk, e.g. hrnet_w18_small for a smoke run; None: the model's")
    g.add_argument('--num-classes', type=int, default=None, help="classes with the background; None: the model's (COCO 91)")
    g.add_argument('--min-size', type=int, default=None, help="short side of the resize; None: the model's (800)")
    g.add_argument('--max-size', type=int, default=None, help="long side cap of the resize; None: the model's (1333)")
    if command in ('train', 'eval'):
        g.add_argument('--data', default='coco', choices=['coco', 'synthetic'],
                       help='COCO folders + instances JSON, or synthetic boxes (smoke runs)')
        g.add_argument('--val-images', default=None, help='COCO val images folder')
        g.add_argument('--val-ann', default=None, help='COCO val instances JSON')
        g.add_argument('--synthetic-train', type=int, default=64, help='images of --data synthetic (train)')
        g.add_argument('--synthetic-val', type=int, default=8, help='images of --data synthetic (val)')
    if command == 'train':
        g.add_argument('--images', default=None, help='COCO train images folder')
        g.add_argument('--ann', default=None, help='COCO train instances JSON')
        g.add_argument('--wd', type=float, default=None, help=argparse.SUPPRESS)
        g.add_argument('--milestones', type=float, nargs='+', default=None, help=argparse.SUPPRESS)
        g.add_argument('--warmup-epochs', type=float, default=None, help=argparse.SUPPRESS)
        g.add_argument('--clip-grad', type=float, default=None, help=argparse.SUPPRESS)
    if command == 'predict':
        g.add_argument('--score-thresh', type=float, default=0.5, help='draw detections scoring at least this')


def _model(args: argparse.Namespace, **kwargs: Any) -> torch.nn.Module:
    if args.flip_test:
        raise SystemExit('--flip-test: the detectors have no flip test')
    return cli.build_model(args, arch=args.arch, num_classes=args.num_classes, min_size=args.min_size,
                           max_size=args.max_size, **kwargs)


def _val_set(args: argparse.Namespace, model) -> torch.utils.data.Dataset:
    masks = 'segm' in iou_types_of(model)
    if args.data == 'synthetic':
        return SyntheticBoxes(args.synthetic_val, model.input_size[0], model.num_classes, seed=10 ** 6, masks=masks)
    if not (args.val_images and args.val_ann):
        raise SystemExit('--val-images and --val-ann are required for --data coco')
    return CocoDetectionDataset(args.val_images, args.val_ann, masks=masks)


def _train_set(args: argparse.Namespace, recipe: Recipe, model) -> torch.utils.data.Dataset:
    masks = 'segm' in iou_types_of(model)
    if args.data == 'synthetic':
        return SyntheticBoxes(args.synthetic_train, model.input_size[0], model.num_classes, seed=0, masks=masks,
                              empty_ratio=0.1)
    if not (args.images and args.ann):
        raise SystemExit('--images and --ann are required for --data coco')
    return CocoDetectionDataset(args.images, args.ann, masks=masks, transform=train_transform(recipe.data['hflip']))


def _warmup_ratio(recipe: Recipe) -> float:
    """The recipe's warmup_lr / lr (--lr is not applied to the recipe): the warmup starts at that
    fraction of the run's lr."""
    return float(recipe.train.get('warmup_lr', 0.0)) / float(recipe.train['lr'])


def train(args: argparse.Namespace, recipe: Recipe) -> Dict[str, Any]:
    model = _model(args, weights_backbone=args.weights_backbone)
    train_set, val_set = _train_set(args, recipe, model), _val_set(args, model)
    run = {field: getattr(args, flag) for flag, field in _OLD_TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    cfg = cli.train_config(args, recipe, **run)
    cfg = dataclasses.replace(cfg, warmup_lr=_warmup_ratio(recipe) * cfg.lr)
    result = fit_detector(model, train_set, cfg, val_set, eval_batch_size=cli.batch_size(args, recipe))
    summary = fit_summary(result)
    summary['first_losses'], summary['last_losses'] = result['losses'][:3], result['losses'][-3:]
    return cli.print_json(summary)


def evaluate(args: argparse.Namespace, recipe: Recipe) -> Dict[str, float]:
    model = cli.inference_model(args, _model(args).to(cli.device_of(args)))  # --backend / --dtype
    metrics = evaluate_dataset(model, _val_set(args, model), cli.batch_size(args, recipe), args.workers)
    return cli.print_json(metrics)


def _category_names(num_classes: int) -> List[str]:
    if num_classes == 91:  # torchvision's COCO category list (index = COCO category id)
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights
        return FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta['categories']
    return [str(i) for i in range(num_classes)]


@torch.no_grad()
def predict(args: argparse.Namespace, recipe: Recipe):
    """The detections scoring at least ``--score-thresh`` in every frame of ``--image`` (images, a
    folder, a GIF, a video, a webcam, a stream): one JSON line per frame (``frame``, ``time``,
    ``image``, ``detections``: ``bbox`` [x, y, w, h] as COCO, ``label``, ``category``, ``score``)
    and the drawing (boxes, labels and scores, masks for Mask R-CNN; a video at the source's rate,
    or ``<stem>_boxes.png`` in ``--out``, default ``predictions/``). Returns the PNGs written, or the
    run summary of videos and live sources."""
    device = cli.device_of(args)
    app = PredictApp(args, 'detection', ('predictions', 'predictions'), device)
    model = app.wrap(_model(args).to(device))  # the backbone runs on the fast path
    names = _category_names(model.num_classes)
    timer = app.stages or no_timer

    def make_step(calibrating: bool = False):
        def step(frame):
            with timer('detect'):
                det = model([TF.to_dtype(frame.image, torch.float32, scale=True).to(device)])[0]
            keep = det['scores'] >= args.score_thresh
            boxes, labels, scores = det['boxes'][keep].cpu(), det['labels'][keep].tolist(), det['scores'][keep].tolist()
            masks = det['masks'][keep, 0].cpu() if 'masks' in det else None
            drawing = None
            if not calibrating:  # the int8 calibration pass only feeds the network
                with timer('draw'):
                    drawing = draw_detections(frame.image, boxes, labels, scores, masks, class_names=names)
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
            return {'image': frame.name, 'detections': [
                {'bbox': [round(v, 2) for v in b], 'label': c, 'category': names[c] if c < len(names) else str(c),
                 'score': round(s, 4)} for b, c, s in zip(xywh, labels, scores)]}, drawing
        return step
    run = app.run(make_step, out_suffix='_boxes')
    return run.summary if run.records is None else [r['out'] for r in run.records if 'out' in r]


COMMAND = cli.TaskCommand(task='detection', default_model='fasterrcnn_hrnetv2p_w32', default_recipe='det_coco_1x',
                          train=train, evaluate=evaluate, predict=predict, add_arguments=add_arguments,
                          description=__doc__)


def main(argv=None):
    return cli.main(COMMAND, argv)


if __name__ == '__main__':
    main(sys.argv[1:])
