"""``python -m hrnet_zoo.tasks.detection train|eval|predict`` (``torchrun ... -m`` for DDP).

Examples::

    # COCO, Faster R-CNN HRNetV2p-W32, 2x schedule (24 epochs, lr steps at 16 and 22), 16 images/batch
    torchrun --nproc_per_node 8 -m hrnet_zoo.tasks.detection train --model fasterrcnn_hrnetv2p_w32 \\
        --images coco/train2017 --ann coco/annotations/instances_train2017.json \\
        --val-images coco/val2017 --val-ann coco/annotations/instances_val2017.json \\
        --weights-backbone imagenet --batch-size 2 --lr 0.02 --out runs/frcnn_w32
    python -m hrnet_zoo.tasks.detection eval --model fasterrcnn_hrnetv2p_w32 --checkpoint runs/frcnn_w32/best.pth \\
        --val-images coco/val2017 --val-ann coco/annotations/instances_val2017.json
    python -m hrnet_zoo.tasks.detection predict --model fasterrcnn_hrnetv2p_w32 --checkpoint best.pth \\
        --image street.jpg --out preds/
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ...train import TrainConfig, Trainer
from ...train.engine import fit_summary
from ...train.checkpoint import load_model_state, model_for_inference
from .datasets import CocoDetectionDataset, RandomHorizontalFlip, SyntheticBoxes, collate
from .metric import evaluate_detector
from .models import build_detector

MODELS = {
    'fasterrcnn_hrnetv2p_w18': ('fasterrcnn', 'hrnet_w18'), 'fasterrcnn_hrnetv2p_w32': ('fasterrcnn', 'hrnet_w32'),
    'fasterrcnn_hrnetv2p_w40': ('fasterrcnn', 'hrnet_w40'), 'maskrcnn_hrnetv2p_w32': ('maskrcnn', 'hrnet_w32'),
    'retinanet_hrnetv2p_w32': ('retinanet', 'hrnet_w32'), 'fcos_hrnetv2p_w32': ('fcos', 'hrnet_w32'),
}


def detection_loss(model, batch) -> torch.Tensor:
    """The engine's ``loss_fn``: the sum of the torchvision detector's losses."""
    images, targets = batch
    return sum(model(images, targets).values())


def _model(args, **kwargs):
    kind, variant = MODELS[args.model]
    return build_detector(kind, args.variant or variant, num_classes=args.num_classes,
                          min_size=args.min_size, max_size=args.max_size, **kwargs)


def _val_set(args, masks: bool):
    if args.data == 'synthetic':
        return SyntheticBoxes(args.synthetic_val, args.min_size, args.num_classes, seed=10 ** 6, masks=masks)
    if not (args.val_images and args.val_ann):
        raise SystemExit('--val-images and --val-ann are required for --data coco')
    return CocoDetectionDataset(args.val_images, args.val_ann, masks=masks)


def _eval_fn(val_set, iou_types):
    loader = DataLoader(val_set, batch_size=2, shuffle=False, collate_fn=collate)
    coco_gt = getattr(val_set, 'coco', None)
    return lambda model: evaluate_detector(model, loader, next(model.parameters()).device, iou_types, coco_gt)


def _load_plain_state_dict(model, path: str) -> None:
    """A plain torchvision-layout state_dict (the fallback when --checkpoint is no engine checkpoint)."""
    load_model_state(model, torch.load(path, map_location='cpu', weights_only=True), source=path)


def cmd_train(args) -> dict:
    model = _model(args, weights_backbone=args.weights_backbone)
    masks = MODELS[args.model][0] == 'maskrcnn'
    if args.data == 'synthetic':
        train_set = SyntheticBoxes(args.synthetic_train, args.min_size, args.num_classes, seed=0, masks=masks,
                                   empty_ratio=0.1)
    else:
        train_set = CocoDetectionDataset(args.images, args.ann, masks=masks, transform=RandomHorizontalFlip())
    iou_types = ('bbox', 'segm') if masks else ('bbox',)
    cfg = TrainConfig(out_dir=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                      optimizer='sgd', lr=args.lr, momentum=0.9, nesterov=False, weight_decay=args.wd,
                      sched='step', milestones=tuple(args.milestones), gamma=0.1, warmup_epochs=args.warmup_epochs,
                      warmup_lr=args.lr / 3, amp=args.amp, resume=args.resume, num_workers=args.workers,
                      seed=args.seed, device=args.device, progress=not args.no_progress, best_metric='bbox_AP',
                      clip_grad=args.clip_grad)
    trainer = Trainer(model, train_set, detection_loss, cfg, eval_fn=_eval_fn(_val_set(args, masks), iou_types),
                      collate_fn=collate)
    result = trainer.fit()
    summary = fit_summary(result)
    summary['first_losses'], summary['last_losses'] = result['losses'][:3], result['losses'][-3:]
    print(json.dumps(summary, indent=1))
    return summary


def cmd_eval(args) -> dict:
    model, device = model_for_inference(_model(args), args.checkpoint, args.device, _load_plain_state_dict)
    masks = MODELS[args.model][0] == 'maskrcnn'
    metrics = _eval_fn(_val_set(args, masks), ('bbox', 'segm') if masks else ('bbox',))(model)
    print(json.dumps(metrics, indent=1))
    return metrics


def _category_names(num_classes: int):
    if num_classes == 91:  # torchvision's COCO category list (index = COCO category id)
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights
        return FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta['categories']
    return [str(i) for i in range(num_classes)]


def cmd_predict(args) -> list:
    from torchvision.transforms.v2 import functional as TF
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks
    model, device = model_for_inference(_model(args), args.checkpoint, args.device, _load_plain_state_dict)
    model.eval()
    names = _category_names(args.num_classes)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in args.image:
        with Image.open(path) as im:
            raw = TF.pil_to_tensor(im.convert('RGB'))
        with torch.no_grad():
            det = model([TF.to_dtype(raw, torch.float32, scale=True).to(device)])[0]
        keep = det['scores'] >= args.score_thresh
        canvas = raw
        if 'masks' in det and keep.any():
            canvas = draw_segmentation_masks(canvas, det['masks'][keep, 0].cpu() > 0.5, alpha=0.4)
        labels = [f'{names[int(l)] if int(l) < len(names) else int(l)} {s:.2f}'
                  for l, s in zip(det['labels'][keep].tolist(), det['scores'][keep].tolist())]
        canvas = draw_bounding_boxes(canvas, det['boxes'][keep].cpu(), labels=labels, colors='red', width=2)
        target = out_dir / f'{Path(path).stem}_boxes.png'
        fd, tmp = tempfile.mkstemp(suffix='.png', dir=out_dir)
        os.close(fd)
        Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(tmp, format='PNG')
        os.replace(tmp, target)
        written.append(str(target))
        print(f'{target}: {int(keep.sum())} detections >= {args.score_thresh}')
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hrnet_zoo.tasks.detection', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--model', default='fasterrcnn_hrnetv2p_w32', choices=sorted(MODELS))
    common.add_argument('--variant', default=None, help='trunk override, e.g. hrnet_w18_small for a smoke run')
    common.add_argument('--num-classes', type=int, default=91, help='with background (COCO: 91 ids)')
    common.add_argument('--min-size', type=int, default=800)
    common.add_argument('--max-size', type=int, default=1333)
    common.add_argument('--device', default=None)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument('--data', default='coco', choices=['coco', 'synthetic'])
    data.add_argument('--val-images', default=None)
    data.add_argument('--val-ann', default=None)
    data.add_argument('--workers', type=int, default=4)
    data.add_argument('--synthetic-train', type=int, default=64)
    data.add_argument('--synthetic-val', type=int, default=8)

    t = sub.add_parser('train', parents=[common, data], help='fine-tune with the shared engine')
    t.add_argument('--images', default=None)
    t.add_argument('--ann', default=None)
    t.add_argument('--out', default='runs/detection')
    t.add_argument('--weights-backbone', default=None, help="'imagenet' or a classifier checkpoint")
    t.add_argument('--epochs', type=int, default=24)
    t.add_argument('--milestones', type=float, nargs='+', default=[16, 22])
    t.add_argument('--warmup-epochs', type=float, default=0.0)
    t.add_argument('--max-steps', type=int, default=None)
    t.add_argument('--batch-size', type=int, default=2, help='per process')
    t.add_argument('--lr', type=float, default=0.02)
    t.add_argument('--wd', type=float, default=1e-4)
    t.add_argument('--clip-grad', type=float, default=None)
    t.add_argument('--amp', default=None, choices=['bf16', 'fp16'])
    t.add_argument('--resume', default=None)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--no-progress', action='store_true')
    t.set_defaults(func=cmd_train)

    e = sub.add_parser('eval', parents=[common, data], help='COCO AP on the val set')
    e.add_argument('--checkpoint', default=None)
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser('predict', parents=[common], help='boxes drawn on the image (PNG)')
    pr.add_argument('--checkpoint', default=None)
    pr.add_argument('--image', nargs='+', required=True)
    pr.add_argument('--out', default='predictions')
    pr.add_argument('--score-thresh', type=float, default=0.5)
    pr.set_defaults(func=cmd_predict)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == 'train' and args.data == 'coco' and not (args.images and args.ann):
        raise SystemExit('--images and --ann are required for --data coco')
    return args.func(args)


if __name__ == '__main__':
    main(sys.argv[1:])
