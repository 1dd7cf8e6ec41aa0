"""``python -m hrnet_zoo.tasks.pose train|eval|predict`` (``torchrun ... -m`` for DDP).

Examples (COCO as downloaded: ``coco/annotations/person_keypoints_{train,val}2017.json`` and
``coco/{train,val}2017/``)::

    torchrun --nproc_per_node 4 -m hrnet_zoo.tasks.pose train --model hrnet_w32_pose_coco_256x192 \\
        --train-ann coco/annotations/person_keypoints_train2017.json --train-images coco/train2017 \\
        --val-ann coco/annotations/person_keypoints_val2017.json --val-images coco/val2017 --out runs/pose_w32
    python -m hrnet_zoo.tasks.pose eval --model hrnet_w32_pose_coco_256x192 --checkpoint pose_hrnet_w32_256x192.pth \\
        --val-ann coco/annotations/person_keypoints_val2017.json --val-images coco/val2017
    python -m hrnet_zoo.tasks.pose predict --model hrnet_w32_pose_coco_256x192 --checkpoint runs/pose_w32/best.pth \\
        --image person.jpg --box 50 30 200 400 --out person_pose.png
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np

import hrnet_zoo
from ...train.distributed import resolve_device
from ...train.engine import TrainConfig, fit_summary
from .dataset import COCOKeypoints, load_image, normalize
from ..heatmap import DECODE_METHODS, decode_heatmaps, predict_heatmaps
from .training import POSE_RECIPE, fit_pose, load_pose_weights
from ..topdown import COCO_SKELETON, affine_matrix, box_to_center_scale, warp_image
from ..drawing import draw_keypoints, save_png


def _model(args):
    kwargs = {'input_size': tuple(args.input_size)} if args.input_size else {}
    if args.num_keypoints:
        kwargs['num_keypoints'] = args.num_keypoints
    if args.model == 'hrnet_pose':
        kwargs['arch'] = args.arch
    model = hrnet_zoo.create_model(args.model, **kwargs)
    if args.checkpoint:
        load_pose_weights(model, args.checkpoint)
    return model


def _dataset(model, ann, images, train: bool, args) -> COCOKeypoints:
    return COCOKeypoints(ann, images, input_size=model.input_size, train=train, num_keypoints=model.num_keypoints,
                         sigma=args.sigma)


def cmd_train(args) -> dict:
    model = _model(args)
    train_set = _dataset(model, args.train_ann, args.train_images, True, args)
    val_set = _dataset(model, args.val_ann, args.val_images, False, args) if args.val_ann else None
    cfg = TrainConfig(out_dir=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                      num_workers=args.workers, optimizer='adam', lr=args.lr, weight_decay=0.0, sched='step',
                      milestones=tuple(args.milestones), gamma=0.1, amp=args.amp, resume=args.resume,
                      seed=args.seed, device=args.device, progress=not args.no_progress,
                      best_metric='AP', best_mode='max', channels_last=args.channels_last)
    result = fit_pose(model, train_set, cfg, val_set, flip_test=not args.no_flip_test, method=args.decode,
                      sigmas=args.sigmas)
    summary = fit_summary(result)
    print(json.dumps(summary, indent=1))
    return summary


def cmd_eval(args) -> dict:
    from .evaluate import evaluate_coco
    model = _model(args).to(resolve_device(args.device))
    val_set = _dataset(model, args.val_ann, args.val_images, False, args)
    stats = evaluate_coco(model, val_set, batch_size=args.batch_size, flip_test=not args.no_flip_test,
                          method=args.decode, sigmas=args.sigmas, num_workers=args.workers)
    print(json.dumps(stats, indent=1))
    return stats


def cmd_predict(args) -> str:
    device = resolve_device(args.device)
    model = _model(args).to(device).eval()
    image = load_image(args.image)
    h, w = image.shape[-2:]
    box = args.box or [0.0, 0.0, float(w), float(h)]
    size = model.input_size
    center, scale = box_to_center_scale(box, size[1] / size[0])
    crop = normalize(warp_image(image, affine_matrix(center, scale, 0.0, size), size))
    heatmaps = predict_heatmaps(model, crop[None].to(device), model.flip_pairs, not args.no_flip_test)
    pts, conf = decode_heatmaps(heatmaps.float().cpu(), center[None], scale[None], args.decode)
    from PIL import Image
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    skeleton = COCO_SKELETON if model.num_keypoints == 17 else ()
    save_png(draw_keypoints(pil, pts, conf, skeleton, args.threshold, box=box), args.out)
    print(json.dumps({'out': args.out, 'keypoints': np.round(pts[0], 2).tolist(),
                      'scores': np.round(conf[0], 3).tolist()}))
    return args.out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hrnet_zoo.tasks.pose', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--model', default='hrnet_w32_pose_coco_256x192',
                        help='a registered pose model, or hrnet_pose with --arch')
    common.add_argument('--arch', default='hrnet_w32', help='trunk for --model hrnet_pose (e.g. hrnet_w18_small)')
    common.add_argument('--num-keypoints', type=int, default=None, help='default 17 (COCO)')
    common.add_argument('--input-size', type=int, nargs=2, default=None, metavar=('H', 'W'))
    common.add_argument('--checkpoint', default=None, help='engine last/best.pth or an official pose .pth')
    common.add_argument('--device', default=None)
    common.add_argument('--decode', default='quarter', choices=DECODE_METHODS)
    common.add_argument('--no-flip-test', action='store_true')
    common.add_argument('--sigma', type=float, default=2.0, help='Gaussian target sigma (heatmap px)')
    common.add_argument('--sigmas', type=float, nargs='+', default=None,
                        help='OKS constants per keypoint (default: COCO\'s 17)')
    common.add_argument('--batch-size', type=int, default=POSE_RECIPE['batch_size'])
    common.add_argument('--workers', type=int, default=4)
    t = sub.add_parser('train', parents=[common], help='fine-tune on a COCO-format keypoint set')
    t.add_argument('--train-ann', required=True)
    t.add_argument('--train-images', required=True)
    t.add_argument('--val-ann', default=None)
    t.add_argument('--val-images', default=None)
    t.add_argument('--out', default='runs/pose')
    t.add_argument('--epochs', type=int, default=POSE_RECIPE['epochs'])
    t.add_argument('--max-steps', type=int, default=None)
    t.add_argument('--lr', type=float, default=POSE_RECIPE['lr'])
    t.add_argument('--milestones', type=float, nargs='+', default=list(POSE_RECIPE['milestones']))
    t.add_argument('--amp', choices=['bf16', 'fp16'], default=None)
    t.add_argument('--channels-last', action='store_true')
    t.add_argument('--resume', default=None, help="a checkpoint path or 'auto'")
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--no-progress', action='store_true')
    e = sub.add_parser('eval', parents=[common], help='COCO keypoint AP with ground-truth boxes')
    e.add_argument('--val-ann', required=True)
    e.add_argument('--val-images', required=True)
    d = sub.add_parser('predict', parents=[common], help='draw the predicted keypoints on an image')
    d.add_argument('--image', required=True)
    d.add_argument('--box', type=float, nargs=4, default=None, metavar=('X', 'Y', 'W', 'H'),
                   help='person box (default: the whole image)')
    d.add_argument('--threshold', type=float, default=0.2, help='hide keypoints scoring below this')
    d.add_argument('--out', default='pose.png')
    return p


def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    if args.command == 'train' and bool(args.val_ann) != bool(args.val_images):
        raise SystemExit('--val-ann and --val-images go together')
    return {'train': cmd_train, 'eval': cmd_eval, 'predict': cmd_predict}[args.command](args)


if __name__ == '__main__':
    main(sys.argv[1:])
