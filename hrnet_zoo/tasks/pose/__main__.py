"""``python -m hrnet_zoo.tasks.pose train|eval|predict`` (``torchrun ... -m`` for DDP), on the
shared task command line (:mod:`hrnet_zoo.tasks.cli`) and the ``pose_coco`` recipe.

Examples (COCO as downloaded: ``coco/annotations/person_keypoints_{train,val}2017.json`` and
``coco/{train,val}2017/``)::

    torchrun --nproc_per_node 4 -m hrnet_zoo.tasks.pose train --model hrnet_w32_pose_coco_256x192 \\
        --weights-backbone imagenet --train-ann coco/annotations/person_keypoints_train2017.json \\
        --train-images coco/train2017 --val-ann coco/annotations/person_keypoints_val2017.json \\
        --val-images coco/val2017 --out-dir runs/pose_w32
    python -m hrnet_zoo.tasks.pose eval --model hrnet_w32_pose_coco_256x192 --checkpoint pose_hrnet_w32_256x192.pth \\
        --val-ann coco/annotations/person_keypoints_val2017.json --val-images coco/val2017 \\
        --det-boxes COCO_val2017_detections_AP_H_56_person.json --results-json results.json
    python -m hrnet_zoo.tasks.pose predict --checkpoint runs/pose_w32/best.pth --image people.jpg \\
        --det-boxes dets.json --json people.json --out people.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from ..cli import TaskCommand, batch_size, build_model, device_of, flip_test, main as cli_main, print_json, train_config
from ..codecs import CODECS, set_codec
from ..drawing import draw_keypoints, save_png
from ..heatmap import REFINEMENTS
from .data import COCOKeypoints, iter_frames, read_detections
from .evaluate import build_detector, evaluate_coco, predict
from .specs import COCO_SKELETON, GENERIC
from .training import dataset_options, fit_pose


def _model(args, recipe: Recipe, **kwargs):
    """``--model`` with its checkpoint; the codec it decodes / trains under: ``--codec``, else the
    recipe's ``eval.codec``, else the one the checkpoint records (an engine checkpoint from before
    codecs: ``udp``), else the spec's."""
    if args.num_keypoints:
        kwargs['num_keypoints'] = args.num_keypoints
    if args.arch and args.model == GENERIC:
        kwargs['arch'] = args.arch
    model = build_model(args, **kwargs)  # checkpoint_path= sets the codec the checkpoint records
    codec = args.codec or recipe.eval.get('codec')
    return set_codec(model, codec) if codec else model


def _decode(args, recipe: Recipe) -> Optional[str]:
    """``--decode`` (the codec's refinement replaced), else a recipe's ``eval.decode`` (deprecated)."""
    if args.decode:
        return args.decode
    method = recipe.eval.get('decode')
    if method:
        print(f"note: recipe eval.decode={method!r} replaces the codec's refinement; recipes now name "
              "eval.codec (null: the model's) instead", file=sys.stderr)
    return method


def _opt(args, recipe: Recipe, flag: str, key: Optional[str] = None):
    """``--flag`` if given, else the recipe's ``eval.<key>``."""
    value = getattr(args, flag, None)
    return recipe.eval.get(key or flag) if value is None else value


def _sigmas(args, recipe: Recipe):
    return _opt(args, recipe, 'sigmas')


def _dataset(model, ann: str, images: str, train: bool, recipe: Recipe, **kwargs) -> COCOKeypoints:
    return COCOKeypoints(ann, images, input_size=model.input_size, train=train, num_keypoints=model.num_keypoints,
                         flip_pairs=model.flip_pairs, **dataset_options(recipe.data), **kwargs)


def cmd_train(args, recipe: Recipe) -> Dict[str, Any]:
    if bool(args.val_ann) != bool(args.val_images):
        raise SystemExit('--val-ann and --val-images go together')
    model = _model(args, recipe)
    if args.weights_backbone:
        from ...checkpoint import load_trunk
        load_trunk(model, args.weights_backbone)
    train_set = _dataset(model, args.train_ann, args.train_images, True, recipe)
    val_set = _dataset(model, args.val_ann, args.val_images, False, recipe) if args.val_ann else None
    # Adam's lr is used as given for any batch, as the official code does (--lr replaces it)
    cfg = train_config(args, recipe, lr=float(recipe.train['lr'] if args.lr is None else args.lr))
    result = fit_pose(model, train_set, cfg, val_set, flip_test=flip_test(args, recipe),
                      method=_decode(args, recipe), sigmas=_sigmas(args, recipe),
                      eval_batch_size=batch_size(args, recipe))
    return print_json(fit_summary(result))


def cmd_eval(args, recipe: Recipe) -> Dict[str, float]:
    from ...train.distributed import init_distributed
    info = init_distributed(args.device)  # under torchrun: every process evaluates a share of the boxes
    model = _model(args, recipe).to(info.device)
    det = {} if not args.det_boxes else {'boxes': args.det_boxes,
                                         'det_score_thresh': _opt(args, recipe, 'det_score_thresh')}
    val_set = _dataset(model, args.val_ann, args.val_images, False, recipe, **det)
    stats = evaluate_coco(model, val_set, batch_size=batch_size(args, recipe), flip_test=flip_test(args, recipe),
                          method=_decode(args, recipe), sigmas=_sigmas(args, recipe),
                          num_workers=args.workers, vis_thresh=_opt(args, recipe, 'vis_thresh'),
                          oks_thresh=_opt(args, recipe, 'oks_thresh'), soft_nms=_opt(args, recipe, 'soft_nms'),
                          results_json=args.results_json, progress=not args.no_progress)
    return print_json(stats) if info.rank == 0 else stats


def _boxes_by_image(path: str, score_thresh: float) -> Dict[str, List[dict]]:
    """Detections of a COCO results file by image: under their image id, and under the file name
    when an annotation-style ``images`` list gives it (``{"images": [...], "detections": [...]}``)."""
    with open(path) as f:
        raw = json.load(f)
    dets = read_detections(raw['detections'] if isinstance(raw, dict) else raw, score_thresh)
    names = {im['id']: im['file_name'] for im in raw.get('images', [])} if isinstance(raw, dict) else {}
    out: Dict[str, List[dict]] = {}
    for d in dets:
        for key in {str(d['image_id']), names.get(d['image_id'], str(d['image_id']))}:
            out.setdefault(key, []).append(d)
    return out


def _frame_boxes(by_image: Dict[str, List[dict]], name: str, index: int, single: bool) -> List[dict]:
    """The detections of one image / frame: by file name (``{"images": [...], "detections": [...]}``
    files name them), by stem, by COCO's id-in-the-name (``000000397133.jpg`` -> 397133); a video /
    GIF frame ``clip.gif#00007`` also by its index (7); for a single image, a file with the
    detections of one image only."""
    base = os.path.basename(name)
    stem = os.path.splitext(base)[0]
    keys = [base, stem, stem.lstrip('0') or '0']
    if '#' in base:
        keys = [base, str(int(base.rsplit('#', 1)[1]))]
    for key in keys:
        if key in by_image:
            return by_image[key]
    ids = {d['image_id'] for dets in by_image.values() for d in dets}
    return next(iter(by_image.values())) if single and len(ids) == 1 else []


def cmd_predict(args, recipe: Recipe) -> List[Dict[str, Any]]:
    device = device_of(args)
    model = _model(args, recipe).to(device).eval()
    options = dict(flip_test=flip_test(args, recipe), method=_decode(args, recipe),
                   vis_thresh=_opt(args, recipe, 'vis_thresh'), oks_thresh=_opt(args, recipe, 'oks_thresh'),
                   soft_nms=_opt(args, recipe, 'soft_nms'), sigmas=_sigmas(args, recipe),
                   batch_size=batch_size(args, recipe))
    detector, by_image = None, None
    if args.det_boxes:
        by_image = _boxes_by_image(args.det_boxes, _opt(args, recipe, 'det_score_thresh'))
    elif args.detector:
        detector = build_detector(args.detector, args.detector_checkpoint, device)
        options['det_score_thresh'] = _opt(args, recipe, 'det_score_thresh', 'detector_score_thresh')
    frames = list(iter_frames(args.image))
    single = len(frames) == 1 and len(args.image) == 1 and os.path.isfile(args.image[0])
    skeleton = COCO_SKELETON if model.num_keypoints == 17 else ()
    lines = []
    for i, (name, image) in enumerate(frames):
        boxes = args.box if args.box else (_frame_boxes(by_image, name, i, single) if by_image is not None else None)
        people = predict(model, image, boxes=boxes, detector=detector, **options)
        out = _drawing_path(args.out, name, single)
        pil = _to_pil(image)
        pts = np.stack([p['keypoints'] for p in people]) if people else np.zeros((0, model.num_keypoints, 2))
        conf = np.stack([p['keypoint_scores'] for p in people]) if people else np.zeros((0, model.num_keypoints))
        save_png(draw_keypoints(pil, pts, conf, skeleton, args.threshold,
                                boxes=np.array([p['bbox'] for p in people]).reshape(-1, 4)), out)
        lines.append({'image': name, 'out': out, 'people': [_jsonable(p) for p in people]})
    text = '\n'.join(json.dumps(line) for line in lines)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    print(text)
    return lines


def _drawing_path(out: Optional[str], name: str, single: bool) -> str:
    if single:
        return out or 'pose.png'
    stem = os.path.splitext(os.path.basename(name))[0] if '#' not in name else name.replace('#', '_').split('/')[-1]
    return os.path.join(out or 'pose_predictions', stem + '.png')


def _to_pil(image: torch.Tensor):
    from PIL import Image
    return Image.fromarray((image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))


def _jsonable(person: Dict[str, Any]) -> Dict[str, Any]:
    return {'bbox': [round(float(v), 2) for v in person['bbox']], 'bbox_score': round(person['bbox_score'], 4),
            'score': round(person['score'], 4),
            'keypoints': np.round(np.asarray(person['keypoints'], dtype=np.float64), 2).tolist(),
            'keypoint_scores': np.round(np.asarray(person['keypoint_scores'], dtype=np.float64), 3).tolist()}


def add_arguments(p: argparse._ArgumentGroup, command: str) -> None:
    p.add_argument('--arch', default=None, help=f'trunk for --model {GENERIC} (e.g. hrnet_w18_small)')
    p.add_argument('--num-keypoints', type=int, default=None, help="default: the model's (17, COCO)")
    p.add_argument('--codec', default=None, choices=sorted(CODECS),
                   help="heatmap codec of crops, targets, flip test and decoding (default: the model's, "
                        'e.g. msra for the official weights; see docs/pose.md)')
    p.add_argument('--decode', default=None, choices=REFINEMENTS,
                   help="replace the codec's refinement (default: the codec's)")
    p.add_argument('--sigmas', type=float, nargs='+', default=None,
                   help="OKS constants per keypoint (default: COCO's 17)")
    if command == 'train':
        p.add_argument('--train-ann', required=True, help='COCO keypoints JSON of the training set')
        p.add_argument('--train-images', required=True, help='its image folder')
    if command in ('train', 'eval'):
        p.add_argument('--val-ann', required=command == 'eval', help='COCO keypoints JSON of the validation set')
        p.add_argument('--val-images', required=command == 'eval', help='its image folder')
    if command in ('eval', 'predict'):
        p.add_argument('--det-boxes', default=None,
                       help='person boxes: a COCO detection-results JSON (e.g. COCO_val2017_detections_AP_H_56_person'
                            '.json); eval runs on them with rescoring and OKS-NMS (default: ground-truth boxes)')
        p.add_argument('--det-score-thresh', type=float, default=None,
                       help="drop boxes scoring below (default: the recipe's eval.det_score_thresh, 0.0)")
        p.add_argument('--vis-thresh', type=float, default=None,
                       help='keypoints scoring above it make the person score (default 0.2)')
        p.add_argument('--oks-thresh', type=float, default=None, help='OKS-NMS threshold (default 0.9)')
        p.add_argument('--soft-nms', action=argparse.BooleanOptionalAction, default=None,
                       help='soft OKS-NMS (Gaussian rescoring) instead of greedy')
    if command == 'eval':
        p.add_argument('--results-json', default=None, help='write the COCO keypoint results here')
        p.add_argument('--no-progress', action='store_true', help='no progress bar')
    if command == 'predict':
        p.add_argument('--box', type=float, nargs=4, action='append', default=None, metavar=('X', 'Y', 'W', 'H'),
                       help='a person box (repeatable; default: detections, or the whole image)')
        p.add_argument('--detector', default=None,
                       help='person detector when no boxes are given: a torchvision detection model '
                            '(fasterrcnn_resnet50_fpn_v2, COCO weights) or an hrnet-zoo detector')
        p.add_argument('--detector-checkpoint', default=None, help="the detector's weights file")
        p.add_argument('--json', default=None, help='write one JSON line per image / frame here')
        p.add_argument('--threshold', type=float, default=0.2, help='hide keypoints scoring below this')


COMMAND = TaskCommand(task='pose', default_model='hrnet_w32_pose_coco_256x192', default_recipe='pose_coco',
                      train=cmd_train, evaluate=cmd_eval, predict=cmd_predict, add_arguments=add_arguments,
                      description=__doc__)


def main(argv: Optional[Sequence[str]] = None):
    return cli_main(COMMAND, argv)


if __name__ == '__main__':
    main(sys.argv[1:])
