"""End-to-end speed of the pose video app: the whole loop (decode -> detect -> crop -> network ->
decode -> track -> draw -> encode) in frames/s, for each backend / precision next to the plain
eager float32 loop, with each stage's share of the time.

It runs the app's own code: frames from :mod:`hrnet_zoo.tasks.video` (PyAV), the networks on
:class:`hrnet_zoo.tasks.app.Runtime` (what ``--backend`` / ``--dtype`` give ``predict``), the
pose predict step of ``python -m hrnet_zoo.tasks.pose predict`` (crops, flip test, decoding,
OKS-NMS, OKS tracking, drawing) and the H.264 writer, on real clips (``--clips``, default
``$HRNET_ZOO_CLIPS`` or ``/work/shared/realdata/video/*.mp4``; a synthetic clip where none is
found), each read ``--passes`` times after one untimed warm-up pass (deploying, OpenVINO's
static-shape compiles).

Networks: HRNet-W32 pose at 256x192 (``--model``; random weights unless ``--checkpoint``) and
torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn`` as the person detector (``--detector``;
random weights: timing only), deployed through its backbone as the app does. Random weights give
random boxes, so the people are fixed: a reference pass of the plain float32 detector keeps its
``--people`` best-scoring boxes of every frame (3, whatever their label), and every row poses
exactly those; the detector still runs (timed) on every ``--det-every``-th frame, as the app's
``--det-every N`` runs it (in between, the app takes the boxes from the previous keypoints, a few
microseconds, here the same fixed boxes). int8 calibrates on the reference pass's crops and
detector inputs (the app calibrates on the first frames the same way). deploy's output check
(the deployed network against the float32 one) is off: with random weights, int8 outputs are
noise and the check would refuse them; the accuracy of each path is the business of deploy's
bounds and of ``eval --dtype int8`` (which reports the float32 metric beside).

Modes: ``plain`` (the model as built: eager, float32, NCHW: the baseline), ``eager`` (deploy:
BatchNorm folded, channels_last), ``openvino``, ``onnxruntime``, ``inductor``, ``auto``, each
optionally ``:float32`` / ``:bfloat16`` / ``:int8`` (no suffix: the backend's default
precision, e.g. OpenVINO's bf16 on a CPU with native bf16). The time of deploying is reported
apart from the loop's.

    python benchmarks/pipeline.py                                   # defaults: a few minutes on 2 cores
    python benchmarks/pipeline.py --modes plain openvino:int8 --det-every 5 --no-flip-test
    python benchmarks/pipeline.py --device cuda --modes plain eager eager:bfloat16 inductor

Without PyAV (``pip install av``) the frames are synthetic, held in memory, and neither decoding
nor encoding is timed (said in the output).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import glob
import importlib.util
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import CPU_FLAGS, cpu_flags, cpu_name, write_atomic  # noqa: E402

import hrnet_zoo  # noqa: E402
from hrnet_zoo.deploy.calibration import MIN_CALIBRATION_IMAGES  # noqa: E402
from hrnet_zoo.tasks import app  # noqa: E402
from hrnet_zoo.tasks.app import Runtime  # noqa: E402
from hrnet_zoo.tasks.video import Frame, Source, StageTimer, process_frames  # noqa: E402

CLIPS = os.environ.get('HRNET_ZOO_CLIPS', '/work/shared/realdata/video/*.mp4')
MODEL = 'hrnet_w32_pose_coco_256x192'
DETECTOR = 'fasterrcnn_mobilenet_v3_large_320_fpn'  # torchvision's lightest two-stage detector (320 px short side)
DEFAULT_MODES = {'cpu': ('plain', 'openvino', 'openvino:int8'), 'cuda': ('plain', 'eager', 'eager:bfloat16', 'inductor')}
BACKENDS = ('plain',) + app.BACKENDS  # 'plain': the model as it is, not deployed
GOAL_FPS = 30.0  # the goal on 2 cores, with --det-every and int8
SYNTHETIC = ((540, 960), (720, 1280))  # frame sizes of the synthetic clips (those of the real ones)
# Stages in the table: (column, StageTimer name); 'pose' is the whole predict call, its network part apart
STAGES = (('decode', 'decode'), ('detect', 'detect'), ('pose net', 'pose.network'), ('crop+dec', None),
          ('track', 'track'), ('draw', 'draw'), ('encode', 'encode'))


def have_av() -> bool:
    return importlib.util.find_spec('av') is not None


# --- clips ------------------------------------------------------------------------------------

@dataclass
class Clip:
    """One clip: its path (None: synthetic), frame count, rate, and the fixed person boxes of each
    frame (index -> (N, 5) [x, y, w, h, score])."""
    path: Optional[str]
    frames: int
    fps: float
    size: Tuple[int, int]
    boxes: Dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.path else f'synthetic {self.size[1]}x{self.size[0]}'


class LoopSource(Source):
    """A clip read ``passes`` times in a row as one source: frame indices and times go on from
    pass to pass (the tracker needs increasing times). Synthetic clips are made in memory."""
    kind = 'video'

    def __init__(self, clip: Clip, passes: int):
        super().__init__(clip.name, clip.fps, clip.size[1], clip.size[0], clip.frames * passes)
        self.clip, self.passes = clip, passes

    def _frames(self) -> Iterator[Frame]:
        n, dt = self.clip.frames, 1.0 / self.clip.fps
        for p in range(self.passes):
            for frame in read_clip(self.clip):
                yield Frame(frame.image, p * n + frame.index, (p * n + frame.index) * dt, frame.name)


def read_clip(clip: Clip) -> Iterator[Frame]:
    if clip.path is None:
        h, w = clip.size
        g = torch.Generator().manual_seed(h)
        base = torch.randint(0, 256, (3, h // 8, w // 8), dtype=torch.uint8, generator=g)
        for i in range(clip.frames):  # smooth random images, shifted a little per frame
            image = torch.nn.functional.interpolate(base[None].float(), size=(h, w), mode='bilinear')[0]
            yield Frame(image.roll(4 * i, dims=-1).to(torch.uint8), i, i / clip.fps, f'{clip.name}#{i:05d}')
        return
    from hrnet_zoo.tasks.video import open_source
    with open_source(clip.path) as source:
        yield from source


def load_clips(pattern: str, notes: List[str]) -> List[Clip]:
    paths = sorted(glob.glob(pattern))
    if paths and not have_av():
        notes.append('PyAV is not installed (pip install av): synthetic frames of the clips\' sizes instead, '
                     'and neither decoding nor encoding is timed')
        paths = []
    if not paths:
        if have_av():
            notes.append(f'no clips at {pattern}: synthetic frames instead (--clips to give some)')
        return [Clip(None, 5, 25.0, size) for size in SYNTHETIC]
    from hrnet_zoo.tasks.video import open_source
    clips = []
    for path in paths:
        with open_source(path) as source:
            frames = sum(1 for _ in source)
            clips.append(Clip(path, frames, source.fps or 25.0, (source.height, source.width)))
    return clips


# --- networks ---------------------------------------------------------------------------------

def build_networks(args) -> Tuple[torch.nn.Module, torch.nn.Module]:
    import torchvision
    pose = hrnet_zoo.create_model(args.model, checkpoint_path=args.checkpoint).to(args.device).eval()
    detector = torchvision.models.get_model(args.detector, weights=None, weights_backbone=None)
    detector.roi_heads.score_thresh = 0.0  # random weights: keep every box, the best --people are taken
    detector.roi_heads.detections_per_img = max(args.people, 10)
    return pose, detector.to(args.device).eval()


@torch.no_grad()
def top_boxes(detector: torch.nn.Module, image: torch.Tensor, k: int) -> np.ndarray:
    """The detector's ``k`` best-scoring boxes (any label) of a uint8 frame, (k, 5) [x, y, w, h, score]."""
    device = next(detector.parameters()).device
    out = detector([image.to(device).float() / 255])[0]
    best = out['scores'].argsort(descending=True)[:k]
    xyxy, scores = out['boxes'][best].float().cpu(), out['scores'][best].float().cpu()
    return torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2], scores[:, None]], 1).numpy().astype(np.float64)


def reference_pass(args, clips: Sequence[Clip], pose, detector, options) -> Dict[str, List[torch.Tensor]]:
    """The fixed boxes of every frame (the plain float32 detector's best ``--people``), and the
    int8 calibration inputs: the crops and detector inputs of these frames (the detector's
    mirrored too where there are fewer than deploy's 16)."""
    from hrnet_zoo.tasks.pose.evaluate import predict
    runtime = Runtime(record=True, verbose=False)
    net, det = runtime.wrap(pose, 'pose'), runtime.wrap(copy.deepcopy(detector), 'detect')
    for clip in clips:
        for frame in read_clip(clip):
            clip.boxes[frame.index] = top_boxes(det, frame.image, args.people)
            predict(net, frame.image, boxes=clip.boxes[frame.index], **options)
    recorded = runtime.recorded()
    if app._images(recorded.get('detect', [])) < MIN_CALIBRATION_IMAGES:
        recorded['detect'] = recorded.get('detect', []) + [t.flip(-1) for t in recorded.get('detect', [])]
    return recorded


# --- one row ----------------------------------------------------------------------------------

@dataclass
class Row:
    mode: str
    precision: str
    det_every: int
    flip_test: bool
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    x_plain: Optional[float] = None
    deploy_s: float = 0.0
    shares: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None


def parse_mode(mode: str) -> Tuple[Optional[str], Optional[str]]:
    backend, _, dtype = mode.partition(':')
    if backend not in BACKENDS or (dtype and dtype not in app.DTYPES):
        raise ValueError(f'mode {mode!r}: BACKEND[:DTYPE] with BACKEND one of {BACKENDS}, DTYPE one of {app.DTYPES}')
    return (None if backend == 'plain' else backend), (dtype or None)


def sync_of(device: str):
    return torch.cuda.synchronize if device == 'cuda' else None


def run_row(args, mode: str, det_every: int, clips: Sequence[Clip], pose, detector, options, calibration,
            workdir: str, deployed: Optional[Dict[str, Tuple]] = None) -> Row:
    """One row: ``mode``'s networks (deployed once per mode: ``deployed`` keeps them for the
    mode's next --det-every row) over a warm-up read and ``--passes`` timed reads of the clips."""
    from hrnet_zoo.tasks.pose.__main__ import pose_step
    from hrnet_zoo.tasks.pose.specs import COCO_SKELETON
    backend, dtype = parse_mode(mode)
    row = Row(mode, dtype or ('float32' if backend is None else 'default'), det_every, options['flip_test'])
    deployed = {} if deployed is None else deployed
    if mode not in deployed:
        runtime = Runtime(backend, dtype, verbose=False, stages=StageTimer(sync_of(args.device)),
                          carried={k: list(v) for k, v in calibration.items()} if dtype == 'int8' else None,
                          deploy_options={'check': False})  # random weights: deploy's output check means nothing
        deployed[mode] = runtime, runtime.wrap(pose, 'pose'), runtime.wrap(copy.deepcopy(detector), 'detect')
    runtime, net, det = deployed[mode]
    runtime.stages = StageTimer(sync_of(args.device))

    def finder(clip: Clip):
        def find_people(frame: Frame) -> np.ndarray:
            if frame.index % det_every == 0:
                top_boxes(det, frame.image, args.people)  # timed; the boxes posed are the fixed ones
            return clip.boxes[frame.index % clip.frames]
        return find_people

    def loop(passes: int, write: bool) -> Dict:
        total = {'frames': 0, 'seconds': 0.0}
        for i, clip in enumerate(clips):
            step = pose_step(net, finder(clip), options, track='oks', fps=clip.fps, skeleton=COCO_SKELETON,
                             stages=runtime.stages)
            out = os.path.join(workdir, f'{i}.mp4') if write else None
            summary = process_frames(LoopSource(clip, passes), step, out=out, progress=False, stages=runtime.stages)
            total['frames'] += summary['frames']
            total['seconds'] += summary['seconds']
        return total

    loop(1, write=False)  # warm-up: deploys, calibrates, compiles OpenVINO's static shapes
    runtime.stages = StageTimer(sync_of(args.device))
    total = loop(args.passes, write=have_av() and clips[0].path is not None)
    row.frames, row.seconds = total['frames'], total['seconds']
    row.fps = row.frames / row.seconds if row.seconds else 0.0
    info = runtime.describe()
    row.deploy_s = sum(v.get('deploy_seconds', 0.0) for v in info.values())
    if backend is not None and 'pose' in info:
        row.precision = info['pose']['precision'] or row.precision
    row.shares = stage_shares(runtime.stages, row.seconds)
    return row


def stage_shares(stages: StageTimer, total: float) -> Dict[str, float]:
    s = stages.seconds
    out = {}
    for column, name in STAGES:
        value = s.get('pose', 0.0) - s.get('pose.network', 0.0) if name is None else s.get(name, 0.0)
        out[column] = value / total if total else 0.0
    out['other'] = max(0.0, 1.0 - sum(out.values()))
    return out


# --- report -----------------------------------------------------------------------------------

def format_table(rows: Sequence[Row]) -> str:
    head = ['mode', 'precision', 'det-every', 'flip', 'frames', 'frames/s', 'x plain', 'deploy s'] + \
        [c for c, _ in STAGES] + ['other']
    cells = [head]
    for r in rows:
        if r.error:
            cells.append([r.mode, r.precision, str(r.det_every), 'yes' if r.flip_test else 'no', '-', 'failed: '
                          + r.error] + [''] * (len(head) - 6))
            continue
        cells.append([r.mode, r.precision, str(r.det_every), 'yes' if r.flip_test else 'no', str(r.frames),
                      f'{r.fps:.2f}', '-' if r.x_plain is None else f'{r.x_plain:.2f}', f'{r.deploy_s:.1f}']
                     + [f'{r.shares.get(c, 0.0):.0%}' for c in head[8:]])
    widths = [max(len(c[i]) for c in cells if i < len(c)) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def machine_line(args) -> Tuple[str, Dict]:
    flags = [f for f in CPU_FLAGS if f in cpu_flags()]
    info = {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'device': torch.cuda.get_device_name() if args.device == 'cuda' else cpu_name(),
            'cpu': cpu_name(), 'cpu_flags': flags, 'threads': torch.get_num_threads(), 'cores': os.cpu_count(),
            'torch': torch.__version__, 'load_average': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None}
    for pkg in ('openvino', 'onnxruntime', 'nncf', 'av'):
        try:
            info[pkg] = __import__(pkg).__version__
        except Exception:
            info[pkg] = None
    load = f', load average {info["load_average"]:.2f}' if info['load_average'] is not None else ''
    text = (f'{info["device"]} (CPU {info["cpu"]}; flags: {" ".join(flags) or "none of interest"}), '
            f'{info["threads"]} threads of {info["cores"]} cores, torch {info["torch"]}, openvino {info["openvino"]}, '
            f'onnxruntime {info["onnxruntime"]}, PyAV {info["av"]}, {info["date"]}{load}')
    return text, info


def goal_line(rows: Sequence[Row]) -> str:
    fast = [r for r in rows if not r.error and r.det_every > 1 and r.precision == 'int8']
    if not fast:
        return f'goal ({GOAL_FPS:.0f} frames/s with --det-every and int8): no such row was run'
    best = max(fast, key=lambda r: r.fps)
    verdict = 'met' if best.fps >= GOAL_FPS else 'not met'
    return (f'goal: {GOAL_FPS:.0f} frames/s with --det-every and int8 on 2 cores: {best.fps:.1f} frames/s '
            f'({best.mode}, --det-every {best.det_every}, flip test {"on" if best.flip_test else "off"}): {verdict}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--clips', default=CLIPS, help='a glob of video files (default: $HRNET_ZOO_CLIPS or %(default)s)')
    p.add_argument('--model', default=MODEL, help='the pose model (default %(default)s)')
    p.add_argument('--checkpoint', default=None, help='its weights (default: random; timing only)')
    p.add_argument('--detector', default=DETECTOR, help='a torchvision detection model (default %(default)s)')
    p.add_argument('--people', type=int, default=3, help='people posed per frame (the detector\'s best boxes)')
    p.add_argument('--modes', nargs='+', default=None,
                   help=f'BACKEND[:DTYPE] (default: {" ".join(DEFAULT_MODES["cpu"])}; on cuda: '
                        f'{" ".join(DEFAULT_MODES["cuda"])}); the plain row is always added as the baseline')
    p.add_argument('--det-every', type=int, nargs='+', default=[1, 5], help='detector on every N-th frame (rows for each)')
    p.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=True,
                   help='average with the flipped crops, as the pose recipe (doubles the pose network)')
    p.add_argument('--passes', type=int, default=3, help='timed reads of each clip (after one warm-up read)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s)')
    p.add_argument('--json', metavar='FILE', help='write the rows and the machine here')
    args = p.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    args.modes = list(dict.fromkeys(['plain'] + list(args.modes or DEFAULT_MODES[args.device])))
    for mode in args.modes:
        try:
            parse_mode(mode)
        except ValueError as e:
            p.error(str(e))
    if args.passes < 1 or args.people < 1 or min(args.det_every) < 1:
        p.error('--passes, --people and --det-every must be at least 1')
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    text, info = machine_line(args)
    print(text)
    notes: List[str] = []
    clips = load_clips(args.clips, notes)
    for n in notes:
        print('note:', n)
    from hrnet_zoo.train.recipes import load_recipe
    ev = load_recipe('pose_coco').eval
    options = dict(flip_test=args.flip_test, vis_thresh=ev['vis_thresh'], oks_thresh=ev['oks_thresh'],
                   soft_nms=ev['soft_nms'], batch_size=ev['batch_size'])
    print(f'{args.model} (weights: {args.checkpoint or "random"}) with {args.detector} (random weights) on '
          f'{", ".join(f"{c.name} ({c.frames} frames, {c.size[1]}x{c.size[0]})" for c in clips)}, '
          f'{args.people} people per frame, {args.passes} timed passes')
    t0 = time.perf_counter()
    pose, detector = build_networks(args)
    calibration = reference_pass(args, clips, pose, detector, options)
    rows: List[Row] = []
    deployed: Dict[str, Tuple] = {}
    with tempfile.TemporaryDirectory() as workdir, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for mode in args.modes:
            for every in args.det_every:
                try:
                    row = run_row(args, mode, every, clips, pose, detector, options, calibration, workdir,
                                  deployed)
                except Exception as e:  # a backend that is not installed or fails: say so in its row
                    backend, dtype = parse_mode(mode)
                    error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    row = Row(mode, dtype or 'default', every, args.flip_test, error=error[:100])
                    print(f'  {mode} det-every {every}: failed: {error}', file=sys.stderr, flush=True)
                rows.append(row)
                if not row.error:
                    print(f'  {mode} det-every {every}: {row.fps:.2f} frames/s', file=sys.stderr, flush=True)
    base = next((r for r in rows if r.mode == 'plain' and r.det_every == min(args.det_every) and not r.error), None)
    for r in rows:
        r.x_plain = r.fps / base.fps if base is not None and base.fps and not r.error else None
    print(format_table(rows))
    print(f'frames/s: the whole loop per frame (decode .. encode), {args.passes} reads of every clip after a warm-up '
          f'read; x plain: over the plain eager float32 loop with --det-every {min(args.det_every)}; deploy s: '
          f'deploying (and int8 quantization; once per mode) before the loop, not counted; columns after it: '
          f'share of the loop\'s time (pose net: the pose network, flip test included; crop+dec: the rest of the '
          f'pose step: crops, heatmap decoding, OKS-NMS). Took {time.perf_counter() - t0:.0f} s.')
    closing = goal_line(rows)
    print(closing)
    result = {'machine': info, 'notes': notes, 'clips': [c.name for c in clips], 'rows': [asdict(r) for r in rows],
              'goal': closing}
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    return result


if __name__ == '__main__':
    main()
