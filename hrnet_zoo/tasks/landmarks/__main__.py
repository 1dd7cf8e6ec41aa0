"""``python -m hrnet_zoo.tasks.landmarks train|eval|predict`` (``torchrun ... -m`` for DDP).

Data in the official HRNet-Facial-Landmark-Detection layout (``data/wflw/images`` and
``face_landmarks_wflw_{train,test}.csv``); the recipe of the model's dataset
(``landmarks_wflw``, ``landmarks_300w``, ...) gives the defaults of every flag::

    python -m hrnet_zoo.tasks.landmarks train --model hrnet_w18_face_wflw --images data/wflw/images \\
        --train-csv data/wflw/face_landmarks_wflw_train.csv --val-csv data/wflw/face_landmarks_wflw_test.csv \\
        --out-dir runs/wflw
    python -m hrnet_zoo.tasks.landmarks eval --model hrnet_w18_face_wflw --checkpoint HR18-WFLW.pth \\
        --images data/wflw/images --val-csv data/wflw/face_landmarks_wflw_test.csv
    python -m hrnet_zoo.tasks.landmarks predict --model hrnet_w18_face_wflw --checkpoint runs/wflw/best.pth \\
        --image face.jpg --box 40 60 180 180 --out face_landmarks.png
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional

import numpy as np
from PIL import Image

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from .. import cli
from ..codecs import CODECS, set_codec
from ..drawing import draw_keypoints, save_png
from ..heatmap import REFINEMENTS
from ..registry import get_model_spec
from ..topdown import load_image
from .data import FaceLandmarks
from .evaluate import evaluate_landmarks, predict_face
from .training import fit_landmarks

DEFAULT_MODEL, DEFAULT_RECIPE = 'hrnet_w18_face_wflw', 'landmarks_wflw'


def _model(args: argparse.Namespace, recipe: Recipe, **kwargs: Any):
    """``--model`` with its checkpoint; its codec: ``--codec``, else the recipe's ``eval.codec``,
    else the one the checkpoint records (an engine checkpoint from before codecs: ``udp``), else
    the spec's (``face``)."""
    model = cli.build_model(args, **({'arch': args.arch} if args.arch else {}), **kwargs)  # + the checkpoint's codec
    codec = args.codec or recipe.eval.get('codec')
    return set_codec(model, codec) if codec else model


def _dataset(args: argparse.Namespace, recipe: Recipe, csv_file: Optional[str], train: bool, model) -> FaceLandmarks:
    if not csv_file:
        raise SystemExit(f'no landmark CSV: pass --{"train" if train else "val"}-csv '
                         f'(recipe {recipe.name!r} has none)')
    augment = recipe.augment if train else {}
    sigma = recipe.data['sigma'] if args.sigma is None else args.sigma
    return FaceLandmarks(csv_file, args.images or recipe.data['images'], dataset=get_model_spec(args.model).dataset,
                         input_size=model.input_size, train=train, sigma=sigma, **augment)


def _decode(args: argparse.Namespace, recipe: Recipe) -> Optional[str]:
    """``--decode`` (the codec's refinement replaced), else a recipe's ``eval.decode`` (deprecated)."""
    method = args.decode or recipe.eval.get('decode')
    if method and not args.decode:
        print(f"note: recipe eval.decode={method!r} replaces the codec's refinement; recipes now name "
              "eval.codec (null: the model's) instead", file=sys.stderr)
    return method


def cmd_train(args: argparse.Namespace, recipe: Recipe) -> dict:
    model = _model(args, recipe, weights_backbone=args.weights_backbone)
    if args.milestones:  # the flag before the recipes (hidden; --set train.milestones=[30,50])
        recipe = recipe.with_overrides([f'train.milestones={list(args.milestones)}'])
    train_set = _dataset(args, recipe, args.train_csv or recipe.data['train_csv'], True, model)
    default_val = recipe.data['val_csv']
    val_csv = args.val_csv or (default_val if default_val and os.path.isfile(default_val) else None)
    if val_csv is None:
        print(f'no --val-csv (and no {default_val}): training without validation', file=sys.stderr)
    val_set = _dataset(args, recipe, val_csv, False, model) if val_csv else None
    cfg = cli.train_config(args, recipe)
    result = fit_landmarks(model, train_set, cfg, val_set, flip_test=cli.flip_test(args, recipe),
                           method=_decode(args, recipe), eval_batch_size=cli.batch_size(args, recipe))
    return cli.print_json(fit_summary(result))


def cmd_eval(args: argparse.Namespace, recipe: Recipe) -> dict:
    model = _model(args, recipe).to(cli.device_of(args))
    dataset = _dataset(args, recipe, args.val_csv or recipe.data['val_csv'], False, model)
    return cli.print_json(evaluate_landmarks(model, dataset, cli.batch_size(args, recipe), cli.flip_test(args, recipe),
                                             _decode(args, recipe), args.workers))


def cmd_predict(args: argparse.Namespace, recipe: Recipe):
    """Draw the landmarks of the face in ``--box`` (default: the whole image) of each ``--image``:
    ``--out`` is the PNG for one image, a folder for several (default ``landmarks.png`` / ``landmarks/``)."""
    model = _model(args, recipe).to(cli.device_of(args)).eval()
    single = len(args.image) == 1
    written, results = [], []
    for path in args.image:
        image = load_image(path)
        pts, conf = predict_face(model, image, args.box, cli.flip_test(args, recipe), _decode(args, recipe))
        box = args.box or [0.0, 0.0, float(image.shape[-1]), float(image.shape[-2])]
        pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
        stem = os.path.splitext(os.path.basename(path))[0]
        out = (args.out or 'landmarks.png') if single else os.path.join(args.out or 'landmarks', f'{stem}_landmarks.png')
        written.append(save_png(draw_keypoints(pil, pts[None], conf[None], threshold=-1.0, box=box), out))
        results.append({'image': path, 'out': out, 'landmarks': np.round(pts, 2).tolist()})
    cli.print_json(results[0] if single else results)
    return written[0] if single else written


def add_arguments(group: argparse._ArgumentGroup, command: str) -> None:
    group.add_argument('--arch', default=None, help='another trunk for the model (default: the spec\'s hrnet_w18)')
    group.add_argument('--images', default=None, help="folder the CSV image names are relative to (default: the recipe's)")
    group.add_argument('--codec', default=None, choices=sorted(CODECS),
                       help="heatmap codec of crops, targets and decoding (default: the model's, face for the "
                            'official weights; see docs/landmarks.md)')
    group.add_argument('--decode', default=None, choices=REFINEMENTS,
                       help="replace the codec's refinement (default: the codec's)")
    if command in ('train', 'eval'):
        group.add_argument('--sigma', type=float, default=None, help="target Gaussian sigma (default: the recipe's)")
        group.add_argument('--val-csv', default=None, help="official-format landmark CSV (default: the recipe's)")
    if command == 'train':
        group.add_argument('--train-csv', default=None, help="official-format landmark CSV (default: the recipe's)")
        group.add_argument('--milestones', type=float, nargs='+', default=None, help=argparse.SUPPRESS)
    if command == 'predict':
        group.add_argument('--box', type=float, nargs=4, default=None, metavar=('X', 'Y', 'W', 'H'),
                           help='face box (default: the whole image)')


COMMAND = cli.TaskCommand('landmarks', DEFAULT_MODEL, DEFAULT_RECIPE, cmd_train, cmd_eval, cmd_predict, add_arguments,
                          description=__doc__,
                          recipes={d: f'landmarks_{d}' for d in ('wflw', '300w', 'aflw', 'cofw')})


def main(argv: Optional[List[str]] = None) -> Any:
    """The shared task CLI (without ``--recipe``: the recipe of the model's dataset)."""
    args = cli.build_parser(COMMAND).parse_args(argv)
    recipe, dataset = cli.load_task_recipe(args, COMMAND), get_model_spec(args.model).dataset
    if recipe.data.get('dataset') not in (None, dataset):
        print(f"note: recipe {recipe.name!r} is written for {recipe.data['dataset']}, the model for {dataset}",
              file=sys.stderr)
    return args.handler(args, recipe)


if __name__ == '__main__':
    main(sys.argv[1:])
