"""``python -m hrnet_zoo.tasks.segmentation train|eval|predict`` (``torchrun ... -m`` for DDP).

Examples::

    # Cityscapes, the paper's recipe (SGD, lr 0.01, poly 0.9, wd 5e-4, 512x1024 crops, 484 epochs)
    torchrun --nproc_per_node 4 -m hrnet_zoo.tasks.segmentation train --model hrnet_w48_seg_cityscapes \\
        --data cityscapes --root /data/cityscapes --weights-backbone imagenet --batch-size 3 --out runs/cs
    python -m hrnet_zoo.tasks.segmentation eval --model hrnet_w48_seg_cityscapes --checkpoint runs/cs/best.pth \\
        --data cityscapes --root /data/cityscapes --scales 0.5 0.75 1 1.25 1.5 1.75 --flip
    python -m hrnet_zoo.tasks.segmentation predict --model hrnet_w48_seg_cityscapes \\
        --checkpoint hrnet_cs_8090_torch11.pth --image frame.png --out preds/
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

from .datasets import (CITYSCAPES_CLASS_WEIGHTS, CityscapesList, CityscapesTorchvision, ImageMaskFolder,
                       SyntheticShapes, colorize, read_image)
from .inference import predict
from .loss import IGNORE_INDEX, SegmentationLoss
from .model import SEG_MODELS, build_segmentation_model, load_official_checkpoint
from ...train.checkpoint import model_for_inference
from ...train.engine import fit_summary
from .training import evaluate, fit
from .transforms import Normalize, eval_transforms, train_transforms


def _datasets(args, num_classes: int, train: bool):
    """(train_set or None, val_set) for ``--data``."""
    crop = tuple(args.crop)
    t_train = train_transforms(crop, tuple(args.scale), args.base_size, IGNORE_INDEX) if train else None
    t_val = eval_transforms()
    if args.data == 'synthetic':
        val = SyntheticShapes(args.synthetic_val, crop[0], num_classes, seed=10 ** 6, transform=t_val)
        tr = SyntheticShapes(args.synthetic_train, crop[0], num_classes, seed=0, transform=t_train) if train else None
        return tr, val
    if args.root is None:
        raise SystemExit(f'--root is required for --data {args.data}')
    if args.data == 'cityscapes':
        if args.val_list:
            val = CityscapesList(args.root, args.val_list, transform=t_val)
            tr = CityscapesList(args.root, args.train_list, transform=t_train) if train else None
        else:
            val = CityscapesTorchvision(args.root, 'val', transform=t_val)
            tr = CityscapesTorchvision(args.root, 'train', transform=t_train) if train else None
        return tr, val
    root = Path(args.root)
    val = ImageMaskFolder(root / args.val_split, num_classes, transform=t_val)
    tr = ImageMaskFolder(root / args.train_split, num_classes, transform=t_train) if train else None
    return tr, val


def _model(args, **kwargs):
    return build_segmentation_model(args.model, num_classes=args.num_classes, align_corners=args.align_corners,
                                    **kwargs)


def cmd_train(args) -> dict:
    model = _model(args, weights_backbone=args.weights_backbone)
    num_classes = model.num_classes
    train_set, val_set = _datasets(args, num_classes, train=True)
    weight = CITYSCAPES_CLASS_WEIGHTS if args.data == 'cityscapes' and not args.no_class_weights else None
    criterion = SegmentationLoss(num_classes, weight=weight, ohem=args.ohem, thresh=args.ohem_thresh,
                                 min_kept=args.ohem_keep, align_corners=model.align_corners)
    result = fit(model, train_set, criterion, val_set=val_set, steps=args.max_steps, out_dir=args.out,
                 epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                 momentum=0.9, weight_decay=args.wd, amp=args.amp, resume=args.resume,
                 num_workers=args.workers, seed=args.seed, device=args.device,
                 eval_every=args.eval_every, progress=not args.no_progress,
                 eval_kwargs=dict(scales=tuple(args.scales), flip=args.flip,
                                  crop_size=tuple(args.eval_crop) if args.eval_crop else None))
    summary = fit_summary(result)
    print(json.dumps(summary, indent=1))
    return summary


def cmd_eval(args) -> dict:
    model, device = model_for_inference(_model(args), args.checkpoint, args.device, load_official_checkpoint)
    _, val_set = _datasets(args, model.num_classes, train=False)
    metrics = evaluate(model, val_set, model.num_classes, scales=tuple(args.scales), flip=args.flip,
                       crop_size=tuple(args.eval_crop) if args.eval_crop else None, device=device,
                       num_workers=args.workers)
    print(json.dumps(metrics, indent=1))
    return metrics


def _save_atomic(image: Image.Image, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(suffix='.png', dir=path.parent)
    os.close(fd)
    image.save(tmp, format='PNG')
    os.replace(tmp, path)


def cmd_predict(args) -> list:
    model, device = model_for_inference(_model(args), args.checkpoint, args.device, load_official_checkpoint)
    model.eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in args.image:
        raw = read_image(path)
        x, _ = Normalize()(raw, torch.zeros(raw.shape[-2:], dtype=torch.long))
        probs = predict(model, x[None].to(device), scales=tuple(args.scales), flip=args.flip,
                        crop_size=tuple(args.eval_crop) if args.eval_crop else None)
        mask = colorize(probs[0].argmax(0), model.num_classes)
        stem = Path(path).stem
        _save_atomic(mask, out_dir / f'{stem}_mask.png')
        overlay = Image.blend(Image.fromarray(raw.permute(1, 2, 0).numpy()), mask.convert('RGB'), 0.5)
        _save_atomic(overlay, out_dir / f'{stem}_overlay.png')
        written += [str(out_dir / f'{stem}_mask.png'), str(out_dir / f'{stem}_overlay.png')]
    print('\n'.join(written))
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hrnet_zoo.tasks.segmentation', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--model', default='hrnet_w48_seg_cityscapes', choices=sorted(SEG_MODELS))
    common.add_argument('--num-classes', type=int, default=None, help="override the model's classes")
    common.add_argument('--align-corners', type=lambda v: v.lower() in ('1', 'true', 'yes'), default=None,
                        help="true/false; default: the official config's MODEL.ALIGN_CORNERS for the model")
    common.add_argument('--device', default=None)
    common.add_argument('--scales', type=float, nargs='+', default=[1.0], help='test scales')
    common.add_argument('--flip', action='store_true', help='flip test')
    common.add_argument('--eval-crop', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='sliding-window test with this crop')
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument('--data', default='cityscapes', choices=['cityscapes', 'folder', 'synthetic'])
    data.add_argument('--root', default=None)
    data.add_argument('--train-list', default='list/cityscapes/train.lst', help='official list file (cityscapes)')
    data.add_argument('--val-list', default=None, help='official list file; without it torchvision.Cityscapes is used')
    data.add_argument('--train-split', default='train', help='folder data: <root>/<split>/{images,masks}')
    data.add_argument('--val-split', default='val')
    data.add_argument('--crop', type=int, nargs=2, default=[512, 1024], metavar=('H', 'W'))
    data.add_argument('--workers', type=int, default=4)
    data.add_argument('--synthetic-train', type=int, default=256)
    data.add_argument('--synthetic-val', type=int, default=32)

    t = sub.add_parser('train', parents=[common, data], help='fine-tune with the shared engine')
    t.add_argument('--out', default='runs/segmentation')
    t.add_argument('--weights-backbone', default=None, help="'imagenet' or a classifier checkpoint")
    t.add_argument('--epochs', type=int, default=484)
    t.add_argument('--max-steps', type=int, default=None)
    t.add_argument('--batch-size', type=int, default=3, help='per process (the paper: 12 over 4 GPUs)')
    t.add_argument('--optimizer', default='sgd')
    t.add_argument('--lr', type=float, default=0.01)
    t.add_argument('--wd', type=float, default=5e-4)
    t.add_argument('--scale', type=float, nargs=2, default=[0.5, 2.0], help='random scale range')
    t.add_argument('--base-size', type=int, default=None, help='long side before scaling (official 2048)')
    t.add_argument('--ohem', action='store_true')
    t.add_argument('--ohem-thresh', type=float, default=0.9)
    t.add_argument('--ohem-keep', type=int, default=131072)
    t.add_argument('--no-class-weights', action='store_true', help='cityscapes: plain (unweighted) CE')
    t.add_argument('--amp', default=None, choices=['bf16', 'fp16'])
    t.add_argument('--resume', default=None, help="checkpoint or 'auto'")
    t.add_argument('--eval-every', type=int, default=1)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--no-progress', action='store_true')
    t.set_defaults(func=cmd_train)

    e = sub.add_parser('eval', parents=[common, data], help='mIoU on the val split')
    e.add_argument('--checkpoint', default=None, help='engine last/best.pth or an official .pth')
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser('predict', parents=[common], help='colour-coded mask PNGs')
    pr.add_argument('--checkpoint', default=None)
    pr.add_argument('--image', nargs='+', required=True)
    pr.add_argument('--out', default='predictions')
    pr.set_defaults(func=cmd_predict)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    main(sys.argv[1:])
