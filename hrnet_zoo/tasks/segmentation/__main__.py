"""``python -m hrnet_zoo.tasks.segmentation train|eval|predict`` (``torchrun ... -m`` for DDP),
built on the shared task command line (:mod:`hrnet_zoo.tasks.cli`); the defaults come from the
recipe (``seg_cityscapes``, ``seg_pascal_context``, ``seg_lip``: the official configs).

Examples::

    # Cityscapes, the official recipe (SGD, lr 0.01, poly 0.9, wd 5e-4, 512x1024 crops, 484 epochs)
    torchrun --nproc_per_node 4 -m hrnet_zoo.tasks.segmentation train --model hrnet_w48_seg_cityscapes \\
        --root /data/cityscapes --weights-backbone imagenet --out-dir runs/cs
    # the official test protocol (evaluate.py): --combine softmax / --windows base for the alternatives
    python -m hrnet_zoo.tasks.segmentation eval --model hrnet_w48_seg_cityscapes --checkpoint runs/cs/best.pth \\
        --root /data/cityscapes --scales 0.5 0.75 1 1.25 1.5 1.75 --flip-test
    python -m hrnet_zoo.tasks.segmentation predict --model hrnet_w48_seg_cityscapes \\
        --checkpoint hrnet_cs_8090_torch11.pth --image frame.png --out preds/
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

import torch

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from .. import cli
from ..app import PredictApp
from ..drawing import draw_segmentation, save_png
from ..video import VIDEO_SUFFIXES, ImageWriter, no_timer
from .data import (CITYSCAPES_CLASS_WEIGHTS, CityscapesList, CityscapesTorchvision, ImageMaskFolder,
                   SyntheticShapes, colorize)
from .evaluate import COMBINES, PROTOCOLS, WINDOWS, evaluate, model_protocol, predict
from .metainfo import DATASETS, label_map
from .training import fit, loss_from_recipe
from .transforms import Normalize, eval_transforms, train_transforms

# old flag spellings (one release), each the same as --set <section.key>=VALUE: (flag, key, type, nargs)
ALIASES = (('--optimizer', 'train.optimizer', str, None), ('--wd', 'train.weight_decay', float, None),
           ('--eval-every', 'train.eval_every', int, None), ('--ohem-thresh', 'data.ohem_thresh', float, None),
           ('--ohem-keep', 'data.ohem_keep', int, None), ('--base-size', 'data.base_size', int, None),
           ('--scale', 'augment.scale', float, 2))
RECIPES = {'cityscapes': 'seg_cityscapes', 'pascal_context': 'seg_pascal_context', 'lip': 'seg_lip'}


def add_arguments(g: argparse._ArgumentGroup, command: str) -> None:
    """The segmentation flags (defaults: the recipe's)."""
    g.add_argument('--num-classes', type=int, default=None, help="override the model's classes")
    g.add_argument('--arch', default=None, help="another trunk, e.g. hrnet_w18_small for a smoke run")
    g.add_argument('--align-corners', type=lambda v: v.lower() in ('1', 'true', 'yes'), default=None,
                   help="true/false; default: the official config's MODEL.ALIGN_CORNERS for the model")
    g.add_argument('--scales', type=float, nargs='+', default=None,
                   help="test scales (default: the recipe's eval.scales)")
    g.add_argument('--eval-crop', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help="sliding-window test with this crop (default: the recipe's eval.crop_size)")
    g.add_argument('--combine', default=None, choices=COMBINES,
                   help="how flip / windows / scales are combined: official (exp of the flip-averaged logits, "
                        "summed over scales, as HRNet-Semantic-Segmentation) or softmax (averaged probabilities); "
                        "default: the recipe's eval.combine")
    g.add_argument('--windows', default=None, choices=WINDOWS,
                   help="multi-scale window rule: cityscapes (whole image at scales <= 1, crop-sized windows "
                        "stepped by a full crop above) or base (windows every 2/3 crop, black padding); "
                        "default: the recipe's eval.windows, else the model's (cityscapes for Cityscapes models)")
    g.add_argument('--flip', dest='flip_test', action='store_const', const=True, default=None,
                   help=argparse.SUPPRESS)  # old spelling of --flip-test
    g.add_argument('--protocol', default=None, choices=PROTOCOLS,
                   help="test protocol: official (HRNet-Semantic-Segmentation, the recipe's eval section) or mmseg "
                        "(mmsegmentation's test of the model's dataset: keep-ratio resize to its scale, whole image "
                        "or slide windows, softmax averaged over --scales ratios and --flip-test); default: the "
                        "model's (mmseg for the *_mmseg models)")
    if command == 'predict':
        return
    g.add_argument('--data', default=None, choices=['cityscapes', 'folder', 'synthetic'],
                   help="dataset kind (default: the recipe's data.dataset)")
    g.add_argument('--root', default=None, help='dataset root')
    g.add_argument('--train-list', default=None, help='cityscapes: official list file (default: the recipe\'s)')
    g.add_argument('--val-list', default=None, help='cityscapes: official list file; none: torchvision.Cityscapes')
    g.add_argument('--train-split', default='train', help='folder data: <root>/<split>/{images,masks}')
    g.add_argument('--val-split', default='val')
    g.add_argument('--crop', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help="training crop / synthetic image size (default: the recipe's data.crop_size)")
    g.add_argument('--synthetic-train', type=int, default=256, help='synthetic data: training images')
    g.add_argument('--synthetic-val', type=int, default=32, help='synthetic data: validation images')
    g.add_argument('--reduce-zero-label', action=argparse.BooleanOptionalAction, default=None,
                   help="folder data: mask value 0 is 'unlabelled' (ignored) and k is class k-1, as mmseg's "
                        "reduce_zero_label (default: the model's dataset's, for the *_mmseg models: ADE20K, "
                        "PASCAL-Context 59, LoveDA, Potsdam, Vaihingen)")
    if command == 'train':
        g.add_argument('--ohem', action=argparse.BooleanOptionalAction, default=None,
                       help="OHEM cross-entropy (default: the recipe's data.ohem)")
        g.add_argument('--no-class-weights', action='store_true', help='cityscapes: plain (unweighted) CE')
        for flag, key, kind, nargs in ALIASES:
            g.add_argument(flag, dest='set_' + key, type=kind, nargs=nargs, default=None, help=argparse.SUPPRESS)


def _recipe(args: argparse.Namespace, recipe: Recipe) -> Recipe:
    """The recipe (without ``--recipe``: the model's dataset's, ``seg_lip`` for
    ``hrnet_w48_seg_lip``, chosen by the shared CLI) with this command's flags as overrides."""
    overrides: List[str] = []
    for flag, key in ((('data', 'data.dataset'), ('train_list', 'data.train_list'), ('val_list', 'data.val_list'),
                       ('ohem', 'data.ohem'), ('scales', 'eval.scales'), ('eval_crop', 'eval.crop_size'),
                       ('crop', 'data.crop_size')) + tuple(('set_' + key, key) for _, key, _, _ in ALIASES)):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f'{key}={list(value) if isinstance(value, (list, tuple)) else value}'.replace("'", ''))
    if getattr(args, 'no_class_weights', False):
        overrides.append('data.class_weights=false')
    return recipe.with_overrides(overrides) if overrides else recipe


def _model(args: argparse.Namespace, **kwargs: Any):
    """``--model`` with ``--checkpoint`` (any layout the hub reads: the official trainer's for every
    model, the W18-small ones too; mmseg's for the ``*_mmseg`` models; an engine / safetensors file)."""
    return cli.build_model(args, num_classes=args.num_classes, align_corners=args.align_corners, arch=args.arch,
                           **kwargs)


def _dataset_of(model):
    """The model's dataset (:mod:`.metainfo`) when its classes are the model's, else None."""
    info = DATASETS.get(model.pretrained_cfg.get('dataset'))
    return info if info is not None and info.num_classes == model.num_classes else None


def _folder_labels(args: argparse.Namespace, model) -> dict:
    """``label_map`` / ``class_names`` of folder data: the model's dataset's (:mod:`.metainfo`) when
    its classes are the model's; ``--reduce-zero-label`` (default: the dataset's, for mmseg's
    protocol) maps 0 to ignore and k to k - 1."""
    info = _dataset_of(model)
    known = info is not None
    reduce = args.reduce_zero_label
    if reduce is None:
        reduce = known and info.reduce_zero_label and model_protocol(model, args.protocol) == 'mmseg'
    out = {'class_names': info.classes} if known else {}
    if reduce:
        out['label_map'] = label_map(info.name) if known else {k: k - 1 for k in range(1, model.num_classes + 1)}
    return out


def _datasets(args: argparse.Namespace, recipe: Recipe, model, train: bool):
    """(train_set or None, val_set) of the recipe's ``data.dataset``."""
    data, aug, num_classes = recipe.data, recipe.augment, model.num_classes
    crop = tuple(data['crop_size'])
    t_train = train_transforms(crop, tuple(aug['scale']), data.get('base_size'), data['ignore_index'],
                               bool(aug['hflip']), model.pretrained_cfg['flip_pairs']) if train else None
    t_val = eval_transforms()
    kind = data['dataset']
    if kind == 'synthetic':
        val = SyntheticShapes(args.synthetic_val, crop[0], num_classes, seed=10 ** 6, transform=t_val)
        tr = SyntheticShapes(args.synthetic_train, crop[0], num_classes, seed=0, transform=t_train) if train else None
        return tr, val
    if args.root is None:
        raise SystemExit(f'--root is required for --data {kind}')
    if kind == 'cityscapes':
        if data.get('val_list'):
            val = CityscapesList(args.root, data['val_list'], transform=t_val)
            tr = CityscapesList(args.root, data['train_list'], transform=t_train) if train else None
        else:
            val = CityscapesTorchvision(args.root, 'val', transform=t_val)
            tr = CityscapesTorchvision(args.root, 'train', transform=t_train) if train else None
        return tr, val
    root, labels = Path(args.root), _folder_labels(args, model)
    val = ImageMaskFolder(root / args.val_split, num_classes, transform=t_val, **labels)
    tr = ImageMaskFolder(root / args.train_split, num_classes, transform=t_train, **labels) if train else None
    return tr, val


def _eval_kwargs(args: argparse.Namespace, recipe: Recipe, model) -> dict:
    """:func:`.evaluate.predict`'s protocol from the recipe's ``eval`` section (``scales``,
    ``crop_size``, ``combine``, ``windows``, ``base_size``, ``resize_to``) and the flags; mmseg's
    protocol (``--protocol``, default the model's) from its dataset's test and the flags only (the
    recipes are the official code's): single scale without flip unless ``--scales`` /
    ``--flip-test`` ask, ``--eval-crop`` / ``--windows`` override its windows."""
    flip_pairs = model.pretrained_cfg.get('flip_pairs', ())
    if model_protocol(model, getattr(args, 'protocol', None)) == 'mmseg':
        crop = getattr(args, 'eval_crop', None)
        return dict(protocol='mmseg', scales=tuple(args.scales or (1.0,)), flip=bool(args.flip_test),
                    flip_pairs=flip_pairs, crop_size=tuple(crop) if crop else None,
                    combine=getattr(args, 'combine', None), windows=getattr(args, 'windows', None))
    ev = recipe.eval
    crop, resize = ev.get('crop_size'), ev.get('resize_to')
    return dict(scales=tuple(ev.get('scales', [1.0])), flip=cli.flip_test(args, recipe),
                crop_size=tuple(crop) if crop else None, flip_pairs=model.pretrained_cfg.get('flip_pairs', ()),
                combine=getattr(args, 'combine', None) or ev.get('combine', 'official'),
                windows=getattr(args, 'windows', None) or ev.get('windows'), base_size=ev.get('base_size'),
                resize_to=tuple(resize) if resize else None, protocol='official')


def cmd_train(args: argparse.Namespace, recipe: Recipe) -> dict:
    recipe = _recipe(args, recipe)
    model = _model(args, weights_backbone=args.weights_backbone)
    train_set, val_set = _datasets(args, recipe, model, train=True)
    cityscapes = recipe.data['dataset'] == 'cityscapes'
    weights = CITYSCAPES_CLASS_WEIGHTS if cityscapes and recipe.data['class_weights'] else None
    criterion = loss_from_recipe(recipe.data, model.num_classes, model.align_corners, weights)
    run = {}
    if args.max_steps and args.epochs is None:  # end the poly schedule exactly at --max-steps
        per_epoch = max(1, len(train_set) // (args.batch_size or recipe.global_batch))
        run['epochs'] = max(1, math.ceil(args.max_steps / per_epoch))
    config = cli.train_config(args, recipe, **run)
    result = fit(model, train_set, criterion, val_set=val_set, config=config,
                 aux_weight=float(recipe.data.get('aux_weight', 0.4)),
                 eval_kwargs=dict(_eval_kwargs(args, recipe, model),
                                  batch_size=cli.batch_size(args, recipe)))
    return cli.print_json(fit_summary(result))


def cmd_eval(args: argparse.Namespace, recipe: Recipe) -> dict:
    recipe = _recipe(args, recipe)
    device = cli.device_of(args)
    model = cli.inference_model(args, _model(args).to(device))  # --backend / --dtype
    _, val_set = _datasets(args, recipe, model, train=False)
    metrics = evaluate(model, val_set, model.num_classes, batch_size=cli.batch_size(args, recipe), device=device,
                       num_workers=args.workers, ignore_index=recipe.data['ignore_index'],
                       **_eval_kwargs(args, recipe, model))
    return cli.print_json(metrics)


def cmd_predict(args: argparse.Namespace, recipe: Recipe):
    """Every frame of ``--image`` (images, a folder, a GIF, a video, a webcam, a stream) segmented
    by the recipe's test protocol: one JSON line per frame (``frame``, ``time``, ``image``,
    ``classes``: the fraction of the frame's pixels per class present, largest first), the overlay
    (a video at the source's rate, or ``<stem>_overlay.png`` in ``--out``, default
    ``predictions/``) and, for PNG outputs, the class-index mask ``<stem>_mask.png`` (paletted).
    Returns the PNGs written (mask, overlay per image), or the run summary of videos and live
    sources."""
    recipe = _recipe(args, recipe)
    device = cli.device_of(args)
    app = PredictApp(args, 'segmentation', ('predictions', 'predictions'), device)
    model = app.wrap(_model(args).to(device))
    options, n = _eval_kwargs(args, recipe, model), model.num_classes
    info = _dataset_of(model)  # its class names, else numbers
    names = list(info.classes) if info is not None else [str(c) for c in range(n)]
    masks = None if Path(app.out).suffix.lower() in VIDEO_SUFFIXES else app.out  # PNG outputs get the masks
    timer = app.stages or no_timer

    def make_step(calibrating: bool = False):
        def step(frame):
            raw = frame.image
            with timer('segmentation'):
                x, _ = Normalize()(raw, torch.zeros(raw.shape[-2:], dtype=torch.long))
                labels = predict(model, x[None].to(device), **options)[0].argmax(0).cpu()
            counts = torch.bincount(labels.flatten(), minlength=n)[:n].tolist()
            record = {'image': frame.name, 'classes': {names[c]: round(k / labels.numel(), 4) for c, k in
                                                       sorted(enumerate(counts), key=lambda ck: -ck[1]) if k}}
            if calibrating:  # the int8 calibration pass only feeds the network: nothing written or drawn
                return record, None
            if masks is not None:
                record['mask'] = save_png(colorize(labels, n), _mask_path(masks, frame))
            with timer('draw'):
                drawing = draw_segmentation(raw, labels, n)
            return record, drawing
        return step
    run = app.run(make_step, out_suffix='_overlay')
    if run.records is None:
        return run.summary
    return [path for r in run.records for path in (r.get('mask'), r.get('out')) if path]


def _mask_path(out: str, frame) -> str:
    """``<out>/<stem>_mask.png`` for a folder output, ``<stem>_mask.png`` beside a single PNG."""
    if Path(out).suffix.lower() == '.png':
        return str(Path(out).with_name(Path(out).stem + '_mask.png'))
    return str(Path(out) / f'{ImageWriter.file_name(frame)}_mask.png')


COMMAND = cli.TaskCommand(task='segmentation', default_model='hrnet_w48_seg_cityscapes',
                          default_recipe='seg_cityscapes', train=cmd_train, evaluate=cmd_eval, predict=cmd_predict,
                          add_arguments=add_arguments, description=__doc__, recipes=RECIPES)


def main(argv: Optional[Sequence[str]] = None) -> Any:
    return cli.main(COMMAND, argv)


if __name__ == '__main__':
    main(sys.argv[1:])
