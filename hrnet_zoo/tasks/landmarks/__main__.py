"""``python -m hrnet_zoo.tasks.landmarks train|eval|predict`` (``torchrun ... -m`` for DDP).

Data in the official HRNet-Facial-Landmark-Detection layout (``data/wflw/images`` and
``face_landmarks_wflw_{train,test}.csv``)::

    python -m hrnet_zoo.tasks.landmarks train --model hrnet_w18_face_wflw --images data/wflw/images \\
        --train-csv data/wflw/face_landmarks_wflw_train.csv --val-csv data/wflw/face_landmarks_wflw_test.csv \\
        --out runs/wflw
    python -m hrnet_zoo.tasks.landmarks eval --model hrnet_w18_face_wflw --checkpoint HR18-WFLW.pth \\
        --images data/wflw/images --val-csv data/wflw/face_landmarks_wflw_test.csv
    python -m hrnet_zoo.tasks.landmarks predict --model hrnet_w18_face_wflw --checkpoint runs/wflw/best.pth \\
        --image face.jpg --box 40 60 180 180 --out face_landmarks.png
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np
from PIL import Image

import hrnet_zoo
from ...train.distributed import resolve_device
from ...train.engine import TrainConfig, fit_summary
from ..topdown import load_image, normalize
from ..heatmap import DECODE_METHODS, predict_heatmaps
from ..topdown import PIXEL_STD, affine_matrix, warp_image
from ..drawing import draw_keypoints, save_png
from .dataset import FACE_PADDING, FaceLandmarks
from .decode import decode_landmarks
from .training import FACE_RECIPE, evaluate_landmarks, fit_landmarks, load_face_weights

FACE_MODELS = {'hrnet_w18_face_wflw': 'wflw', 'hrnet_w18_face_300w': '300w', 'hrnet_w18_face_aflw': 'aflw',
               'hrnet_w18_face_cofw': 'cofw'}


def _model(args):
    kwargs = {'arch': args.arch} if args.arch else {}
    model = hrnet_zoo.create_model(args.model, **kwargs)
    if args.checkpoint:
        load_face_weights(model, args.checkpoint)
    return model


def _dataset(args, csv_file: str, train: bool) -> FaceLandmarks:
    return FaceLandmarks(csv_file, args.images, dataset=FACE_MODELS[args.model], train=train, sigma=args.sigma,
                         input_size=tuple(args.input_size))


def cmd_train(args) -> dict:
    model = _model(args)
    train_set = _dataset(args, args.train_csv, True)
    val_set = _dataset(args, args.val_csv, False) if args.val_csv else None
    cfg = TrainConfig(out_dir=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                      num_workers=args.workers, optimizer='adam', lr=args.lr, weight_decay=0.0, sched='step',
                      milestones=tuple(args.milestones), gamma=0.1, amp=args.amp, resume=args.resume, seed=args.seed,
                      device=args.device, progress=not args.no_progress, best_metric='nme', best_mode='min')
    result = fit_landmarks(model, train_set, cfg, val_set, flip_test=args.flip_test, method=args.decode)
    summary = fit_summary(result)
    print(json.dumps(summary, indent=1))
    return summary


def cmd_eval(args) -> dict:
    model = _model(args).to(resolve_device(args.device))
    metrics = evaluate_landmarks(model, _dataset(args, args.val_csv, False), args.batch_size, args.flip_test,
                                 args.decode, args.workers)
    print(json.dumps(metrics, indent=1))
    return metrics


def cmd_predict(args) -> str:
    device = resolve_device(args.device)
    model = _model(args).to(device).eval()
    image = load_image(args.image)
    h, w = image.shape[-2:]
    x, y, bw, bh = args.box or [0.0, 0.0, float(w), float(h)]
    center = np.array([x + bw / 2, y + bh / 2])
    scale = max(bw, bh) / PIXEL_STD * FACE_PADDING
    size = tuple(args.input_size)
    crop = normalize(warp_image(image, affine_matrix(center, scale, 0.0, size), size))
    heatmaps = predict_heatmaps(model, crop[None].to(device), model.flip_pairs, args.flip_test)
    pts, conf = decode_landmarks(heatmaps.float().cpu(), center[None], np.array([scale]), args.decode)
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    save_png(draw_keypoints(pil, pts, conf, threshold=-1.0, box=[x, y, bw, bh]), args.out)
    print(json.dumps({'out': args.out, 'landmarks': np.round(pts[0], 2).tolist()}))
    return args.out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hrnet_zoo.tasks.landmarks', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--model', default='hrnet_w18_face_wflw', choices=sorted(FACE_MODELS))
    common.add_argument('--arch', default=None, help='another trunk (default hrnet_w18)')
    common.add_argument('--checkpoint', default=None, help='engine last/best.pth or an official HR18-*.pth')
    common.add_argument('--input-size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'))
    common.add_argument('--device', default=None)
    common.add_argument('--decode', default='quarter', choices=DECODE_METHODS)
    common.add_argument('--flip-test', action='store_true')
    common.add_argument('--sigma', type=float, default=1.5)
    common.add_argument('--batch-size', type=int, default=FACE_RECIPE['batch_size'])
    common.add_argument('--workers', type=int, default=4)
    common.add_argument('--images', default='.', help='folder the CSV image names are relative to')
    t = sub.add_parser('train', parents=[common], help='fine-tune on an official-format landmark CSV')
    t.add_argument('--train-csv', required=True)
    t.add_argument('--val-csv', default=None)
    t.add_argument('--out', default='runs/landmarks')
    t.add_argument('--epochs', type=int, default=FACE_RECIPE['epochs'])
    t.add_argument('--max-steps', type=int, default=None)
    t.add_argument('--lr', type=float, default=FACE_RECIPE['lr'])
    t.add_argument('--milestones', type=float, nargs='+', default=list(FACE_RECIPE['milestones']))
    t.add_argument('--amp', choices=['bf16', 'fp16'], default=None)
    t.add_argument('--resume', default=None)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--no-progress', action='store_true')
    e = sub.add_parser('eval', parents=[common], help='NME / failure rate / AUC')
    e.add_argument('--val-csv', required=True)
    d = sub.add_parser('predict', parents=[common], help='draw predicted landmarks on an image')
    d.add_argument('--image', required=True)
    d.add_argument('--box', type=float, nargs=4, default=None, metavar=('X', 'Y', 'W', 'H'),
                   help='face box (default: the whole image)')
    d.add_argument('--out', default='landmarks.png')
    return p


def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    return {'train': cmd_train, 'eval': cmd_eval, 'predict': cmd_predict}[args.command](args)


if __name__ == '__main__':
    main(sys.argv[1:])
