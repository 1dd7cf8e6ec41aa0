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

from ...train.engine import fit_summary
from ...train.recipes import Recipe
from ..app import AppError, PredictApp
from ..cli import (TaskCommand, batch_size, build_model, device_of, flip_test, inference_model, main as cli_main,
                   print_json, train_config)
from ..codecs import CODECS, set_codec
from ..drawing import draw_people
from ..heatmap import REFINEMENTS
from ..video import no_timer
from .data import COCOKeypoints, read_detections
from .evaluate import as_image_tensor, build_detector, detect_people, evaluate_keypoints, predict
from .specs import COCO_SKELETON, GENERIC
from .tracking import DetectEvery, PoseTracker
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


def _dataset(model, ann: str, images: str, train: bool, recipe: Recipe, head_boxes: Optional[str] = None,
             **kwargs) -> COCOKeypoints:
    """The model's data: its keypoint set's COCO-style file (mmpose's layouts, see
    :class:`~.data.COCOKeypoints`), MPII's own JSON (with ``head_boxes`` for PCKh), or a plain COCO
    file for a model without a set; for evaluation of a model that scores some of its outputs only
    (COCO+AIC "combine" on COCO), the file of those outputs."""
    from .data import MPIIKeypoints
    from .specs import keypoint_set_of
    kps = keypoint_set_of(model)
    options = dict(input_size=model.input_size, train=train, **dataset_options(recipe.data), **kwargs)
    scored = kps.metrics[0].keypoint_indices if kps is not None and kps.metrics else None
    if kps is not None and kps.name == 'mpii' and _is_json_list(ann):
        return MPIIKeypoints(ann, images, head_boxes=head_boxes, **options)
    if scored is not None and not train:
        return COCOKeypoints(ann, images, num_keypoints=len(scored), flip_pairs=(), **options)
    return COCOKeypoints(ann, images, num_keypoints=model.num_keypoints, flip_pairs=model.flip_pairs,
                         keypoint_set=kps, **options)


def _is_json_list(path: str) -> bool:
    """Whether a JSON file holds a list (MPII's own format) rather than a COCO dict."""
    with open(path) as f:
        return f.read(64).lstrip().startswith('[')


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
    model = inference_model(args, _model(args, recipe).to(info.device))  # --backend / --dtype
    det = {} if not args.det_boxes else {'boxes': args.det_boxes,
                                         'det_score_thresh': _opt(args, recipe, 'det_score_thresh')}
    val_set = _dataset(model, args.val_ann, args.val_images, False, recipe, head_boxes=args.head_boxes, **det)
    stats = evaluate_keypoints(model, val_set, batch_size=batch_size(args, recipe), flip_test=flip_test(args, recipe),
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


# predict keeps person boxes scoring at least this unless the recipe's eval.predict_score_thresh or
# --det-score-thresh says otherwise (mmpose's demos: --bbox-thr 0.3)
PREDICT_DET_SCORE_THRESH = 0.3
TRACKED_SOURCES = ('video', 'gif', 'live')  # tracked by default (--track oks); images and folders: --track none


def cmd_predict(args, recipe: Recipe):
    """Every person of every frame of ``--image`` (images, a folder, a GIF, a video, a webcam, a
    stream): one JSON line per frame (``frame``, ``time``, ``image``, ``people``: ``bbox``, scores,
    ``keypoints``, with ``track_id`` when tracked) and the drawing (a video at the source's rate,
    or PNGs). Person boxes: ``--box``, ``--det-boxes``, ``--detector`` (on every ``--det-every``-th
    frame, in between from the previous keypoints) or the whole image; boxes scoring under
    ``--det-score-thresh`` (default :data:`PREDICT_DET_SCORE_THRESH`) are dropped. Returns the JSON
    lines of images, folders and GIFs, the run summary of videos and live sources."""
    device = device_of(args)
    if args.det_every < 1:
        raise AppError(f'--det-every {args.det_every}: give N >= 1 (detect on every N-th frame)')
    app = PredictApp(args, 'pose', ('pose.png', 'pose_predictions'), device)
    model = app.wrap(_model(args, recipe).to(device))
    options = dict(flip_test=flip_test(args, recipe), method=_decode(args, recipe),
                   vis_thresh=_opt(args, recipe, 'vis_thresh'), oks_thresh=_opt(args, recipe, 'oks_thresh'),
                   soft_nms=_opt(args, recipe, 'soft_nms'), sigmas=_sigmas(args, recipe),
                   batch_size=batch_size(args, recipe))
    find_people = _people_finder(args, recipe, app, device)
    track = args.track or ('oks' if app.source.kind in TRACKED_SOURCES else 'none')
    skeleton = COCO_SKELETON if model.num_keypoints == 17 else ()

    def make_step(calibrating: bool = False):
        # the calibration pass only feeds the networks: no schedule, no tracks, no smoothing, no drawing
        return pose_step(model, find_people, options, det_every=1 if calibrating else args.det_every,
                         track='none' if calibrating else track, smooth=args.smooth and not calibrating,
                         fps=app.source.fps, skeleton=skeleton, threshold=args.threshold,
                         sigmas=_sigmas(args, recipe), stages=app.stages, draw=not calibrating)
    return app.run(make_step).result


def _people_finder(args, recipe: Recipe, app: PredictApp, device):
    """``frame -> person boxes`` (None: the whole image) from ``--box``, ``--det-boxes`` or ``--detector``."""
    thresh = args.det_score_thresh
    if thresh is None:
        thresh = recipe.eval.get('predict_score_thresh', PREDICT_DET_SCORE_THRESH)
    if args.box:
        boxes = np.asarray(args.box, dtype=np.float64)
        return lambda frame: boxes
    if args.det_boxes:
        by_image = _boxes_by_image(args.det_boxes, thresh)
        single = app.source.kind == 'image'
        return lambda frame: _frame_boxes(by_image, frame.name, frame.index, single)
    if args.detector:
        try:
            detector = build_detector(args.detector, args.detector_checkpoint, device)
        except (ValueError, RuntimeError) as e:
            raise AppError(str(e)) from None
        detector = app.wrap(detector, 'detect')
        return lambda frame: detect_people(detector, as_image_tensor(frame.image), thresh)
    return lambda frame: None


def pose_step(model, find_people, options: Dict[str, Any], *, det_every: int = 1, track: str = 'none',
              smooth: bool = False, fps: Optional[float] = None, skeleton=COCO_SKELETON, threshold: float = 0.2,
              sigmas=None, stages=None, draw: bool = True):
    """The per-frame step of pose predict (a fresh tracker each call): person boxes
    (``find_people(frame)``: (N, 4|5) boxes, COCO detection dicts, or None for the whole image;
    with ``det_every`` > 1 only on every N-th frame, in between from the previous keypoints:
    :class:`~.tracking.DetectEvery`), people (:func:`~.evaluate.predict` with ``options``), track
    ids (:class:`~.tracking.PoseTracker`, ``track`` 'oks' / 'iou'; 'none': no ids) with one-euro
    ``smooth``-ing, and the drawing (None without ``draw``). ``stages`` (a StageTimer) times detect /
    pose / track / draw."""
    timer = stages if stages is not None else no_timer
    tracker = None
    if track != 'none' or det_every > 1 or smooth:  # the schedule and the smoother need tracks
        tracker = PoseTracker(metric='oks' if track == 'none' else track, smooth=smooth, sigmas=sigmas,
                              fps=fps or 30.0)
    schedule = DetectEvery(det_every) if det_every > 1 else None

    def step(frame):
        image = frame.image
        with timer('detect'):
            if schedule is None:
                boxes = find_people(frame)
            else:
                def detect():
                    found = find_people(frame)
                    return [[0.0, 0.0, float(image.shape[-1]), float(image.shape[-2])]] if found is None else found
                boxes = schedule.person_boxes(frame.index, tracker, tuple(image.shape[-2:]), detect)
        with timer('pose'):
            people = predict(model, image, boxes=boxes, **options) if boxes is None or len(boxes) else []
        if tracker is not None:
            with timer('track'):
                people = tracker.update(people, frame.time)
        drawing = None
        if draw:
            with timer('draw'):
                k = model.num_keypoints
                drawing = draw_people(image, np.asarray([p['keypoints'] for p in people]).reshape(-1, k, 2),
                                      np.asarray([p['keypoint_scores'] for p in people]).reshape(-1, k), skeleton,
                                      threshold, [p['track_id'] for p in people] if track != 'none' else None,
                                      boxes=np.asarray([p['bbox'] for p in people]).reshape(-1, 4))
        return {'image': frame.name, 'people': [_jsonable(p, track != 'none') for p in people]}, drawing
    return step


def _jsonable(person: Dict[str, Any], track_id: bool = False) -> Dict[str, Any]:
    out = {'bbox': [round(float(v), 2) for v in person['bbox']], 'bbox_score': round(person['bbox_score'], 4),
           'score': round(person['score'], 4),
           'keypoints': np.round(np.asarray(person['keypoints'], dtype=np.float64), 2).tolist(),
           'keypoint_scores': np.round(np.asarray(person['keypoint_scores'], dtype=np.float64), 3).tolist()}
    if track_id:
        out['track_id'] = int(person['track_id'])
    return out


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
                       help="drop person boxes scoring below (default: eval: the recipe's eval.det_score_thresh, "
                            "0.0 as the official code; predict: eval.predict_score_thresh, 0.3 as mmpose's demos)")
        p.add_argument('--vis-thresh', type=float, default=None,
                       help='keypoints scoring above it make the person score (default 0.2)')
        p.add_argument('--oks-thresh', type=float, default=None, help='OKS-NMS threshold (default 0.9)')
        p.add_argument('--soft-nms', action=argparse.BooleanOptionalAction, default=None,
                       help='soft OKS-NMS (Gaussian rescoring) instead of greedy')
    if command == 'eval':
        p.add_argument('--results-json', default=None, help='write the COCO keypoint results here')
        p.add_argument('--no-progress', action='store_true', help='no progress bar')
        p.add_argument('--head-boxes', default=None,
                       help="MPII's head boxes for PCKh (mpii_gt_val.mat, or a .npy / .json array (N, 4)), with "
                            '--val-ann mpii_val.json')
    if command == 'predict':
        p.add_argument('--box', type=float, nargs=4, action='append', default=None, metavar=('X', 'Y', 'W', 'H'),
                       help='a person box (repeatable; default: detections, or the whole image)')
        p.add_argument('--detector', default=None,
                       help='person detector when no boxes are given: a torchvision detection model '
                            '(fasterrcnn_resnet50_fpn_v2, COCO weights) or an hrnet-zoo detector')
        p.add_argument('--detector-checkpoint', default=None, help="the detector's weights file")
        p.add_argument('--threshold', type=float, default=0.2, help='hide keypoints scoring below this')
        p.add_argument('--det-every', type=int, default=1, metavar='N',
                       help='run the person detector on every N-th frame; in between each person\'s box comes from '
                            'their keypoints in the previous frame (default 1: every frame)')
        p.add_argument('--track', choices=('oks', 'iou', 'none'), default=None,
                       help='keep an id per person across frames (track_id in the JSON, drawn) by keypoint '
                            'similarity (oks) or box overlap (iou); default: oks for videos, GIFs and streams, '
                            'none for images and folders')
        p.add_argument('--smooth', action='store_true', help='smooth each tracked person\'s keypoints over time '
                                                              '(one-euro filter)')


COMMAND = TaskCommand(task='pose', default_model='hrnet_w32_pose_coco_256x192', default_recipe='pose_coco',
                      train=cmd_train, evaluate=cmd_eval, predict=cmd_predict, add_arguments=add_arguments,
                      description=__doc__)


def main(argv: Optional[Sequence[str]] = None):
    return cli_main(COMMAND, argv)


if __name__ == '__main__':
    main(sys.argv[1:])
