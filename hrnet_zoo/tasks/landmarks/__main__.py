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

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from .. import cli
from ..app import PredictApp
from ..codecs import CODECS, set_codec
from ..drawing import draw_landmarks
from ..heatmap import REFINEMENTS
from ..registry import get_model_spec
from ..video import no_timer
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
    from .specs import face_dataset_spec  # the model's benchmark: the official four or its keypoint set's
    return FaceLandmarks(csv_file, args.images or recipe.data['images'], dataset=get_model_spec(args.model).dataset,
                         input_size=model.input_size, train=train, sigma=sigma, spec=face_dataset_spec(model),
                         **augment)


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
    model = cli.inference_model(args, _model(args, recipe).to(cli.device_of(args)))  # --backend / --dtype
    dataset = _dataset(args, recipe, args.val_csv or recipe.data['val_csv'], False, model)
    return cli.print_json(evaluate_landmarks(model, dataset, cli.batch_size(args, recipe), cli.flip_test(args, recipe),
                                             _decode(args, recipe), args.workers))


def cmd_predict(args: argparse.Namespace, recipe: Recipe):
    """The landmarks of the face in ``--box`` (default: the whole image) in every frame of
    ``--image`` (images, a folder, a GIF, a video, a webcam, a stream): one JSON line per frame
    (``frame``, ``time``, ``image``, ``box``, ``landmarks``, ``landmark_scores``) and the drawing
    (a video at the source's rate; one PNG, default ``landmarks.png``; or a folder, default
    ``landmarks/``, of ``<stem>_landmarks.png``). Returns the PNG(s) written for images, folders
    and GIFs, the run summary for videos and live sources."""
    device = cli.device_of(args)
    app = PredictApp(args, 'landmarks', ('landmarks.png', 'landmarks'), device)
    model = app.wrap(_model(args, recipe).to(device))
    flip, method = cli.flip_test(args, recipe), _decode(args, recipe)
    timer = app.stages or no_timer

    def make_step(calibrating: bool = False):
        def step(frame):
            h, w = frame.image.shape[-2:]
            box = list(args.box) if args.box else [0.0, 0.0, float(w), float(h)]
            with timer('landmarks'):
                pts, conf = predict_face(model, frame.image.float() / 255, box, flip, method)
            drawing = None
            if not calibrating:  # the int8 calibration pass only feeds the network
                with timer('draw'):
                    drawing = draw_landmarks(frame.image, pts, box)
            return {'image': frame.name, 'box': [round(float(v), 2) for v in box],
                    'landmarks': np.round(pts, 2).tolist(), 'landmark_scores': np.round(conf, 3).tolist()}, drawing
        return step
    run = app.run(make_step, out_suffix='_landmarks')
    if run.records is None:
        return run.summary
    written = [r['out'] for r in run.records if 'out' in r]
    return written[0] if app.source.kind == 'image' and len(written) == 1 else written


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
        group.add_argument('--val-csv', default=None,
                           help="official-format landmark CSV, or mmpose's face JSON (default: the recipe's)")
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
