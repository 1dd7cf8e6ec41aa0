"""What the task apps share beyond their flags (:mod:`hrnet_zoo.tasks.cli`): every network of a
``predict`` or ``eval`` run on the path ``--backend`` / ``--dtype`` ask for (:class:`Runtime`),
and the one predict loop over images, folders, GIFs, videos, webcams and streams
(:class:`PredictApp`) that each task drives with its own per-frame step.

**The fast path.** A network is wrapped in a :class:`FastModel`, which deploys it
(:func:`hrnet_zoo.deploy`) on its first call, with that call's input as the example (the real
batch and image size); its attributes (``input_size``, ``flip_pairs``, ``pretrained_cfg``, ...)
stay reachable, so the task's own ``predict`` / ``evaluate`` functions run it unchanged. A
torchvision detector (a pose app's ``--detector``, the detection models) is deployed through its
backbone, the rest of it (RPN, RoI heads, box decoding) stays eager.

**int8** calibrates on :data:`CALIBRATION_INPUTS` inputs of the network itself (pose / landmark
models: the crops the frames give; flipped crops of the flip test count too), or on the images of
``--calibration DIR`` (read with the model's preprocessing: resized and centre-cropped to its input
size, so give person / face crops to a top-down model). ``predict`` takes them from the first
frames of its source in a pass before the real one (a live source: its first frames run the plain
model until there are enough); ``eval`` from the first inputs of its float32 reference pass. With
fewer than :data:`~hrnet_zoo.deploy.calibration.MIN_CALIBRATION_IMAGES` (16) a network runs the
backend's default precision instead, with a warning.

**Defaults.** ``eval`` runs the plain model in float32 unless a flag asks otherwise (the published
protocol), and with a low precision it reports the float32 metric next to it. ``predict`` on a CPU
runs OpenVINO in its default precision (bfloat16 where the CPU has AVX512-BF16 / AMX, float32
elsewhere; checked against the float32 model by deploy's bounds) for sources of at least
:data:`DEPLOY_MIN_FRAMES` frames and live ones: on hrnet_w32 pose that is 7-8x the eager float32
crops/s on a 2-core AMX Xeon (``benchmarks/RESULTS.md``), while deploying costs 15-35 s, more than
a handful of frames saves; ``'auto'`` (which builds and times every backend first) costs a minute
or two more. Shorter sources, GPUs and machines without OpenVINO run the plain model.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..deploy.calibration import MIN_CALIBRATION_IMAGES
from .video import Source, StageTimer, VideoWarning, open_sources, process_frames

__all__ = ['Runtime', 'FastModel', 'PredictApp', 'PredictRun', 'AppError', 'BACKENDS', 'DTYPES',
           'CALIBRATION_INPUTS', 'DEPLOY_MIN_FRAMES', 'PREDICT_BACKEND', 'warn_no_weights']

BACKENDS = ('eager', 'openvino', 'onnxruntime', 'inductor', 'auto')
DTYPES = ('float32', 'bfloat16', 'int8')
PREDICT_BACKEND = 'openvino'  # predict's default on a CPU (module docstring)
DEPLOY_MIN_FRAMES = 50  # shorter sources run the plain model by default: deploying would cost more than it saves
# Calibration inputs per network: the images of the first batches it gets (flipped crops included).
# deploy needs 16; 32 kept the int8 drop of the tests' trained models within 0.5 points.
CALIBRATION_INPUTS = 32
CALIBRATION_BYTES = 256 << 20  # ... or fewer when they are this large (detector inputs of 800 x 1333: 20)
CALIBRATION_FRAMES = 64  # predict's calibration pass reads at most this many frames


class AppError(ValueError):
    """Bad input to a task app (a missing checkpoint, an unavailable backend, ...): the task CLI
    prints the message as one ``error: ...`` line, without a traceback."""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _available(backend: str, dtype: Optional[str]) -> bool:
    from ..deploy.api import _available as available
    return available(backend, torch.int8 if dtype == 'int8' else None)


def _is_detector(model: nn.Module) -> bool:
    """A torchvision-style detector (GeneralizedRCNN, RetinaNet, FCOS): a ``transform`` that
    batches the images, then a ``backbone`` on the batch tensor."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform
    return isinstance(getattr(model, 'transform', None), GeneralizedRCNNTransform) and \
        isinstance(getattr(model, 'backbone', None), nn.Module)


def _images(batches: Sequence[torch.Tensor]) -> int:
    return sum(int(b.shape[0]) for b in batches)


class Runtime:
    """The ``--backend`` / ``--dtype`` / ``--calibration`` choice of one command run, and the
    networks it wraps (:meth:`wrap`).

    ``backend`` None is the plain model (no deploy); ``dtype`` None the backend's default
    precision. ``record``: a reference pass that runs the plain model and keeps each network's
    first inputs (``eval``'s float32 pass, for int8 calibration); ``carried``: such inputs per
    network name, handed to the networks of the next pass; ``task``: the default network name.
    ``explicit``: the user asked for this
    backend (a failed deploy is an error; a default choice falls back to the plain model).
    ``stages``: a :class:`~hrnet_zoo.tasks.video.StageTimer` that gets each network's time as
    ``<name>.network``. ``deploy_options``: more keyword arguments of :func:`hrnet_zoo.deploy`
    (e.g. ``check=False`` for a benchmark's random-weight networks, whose int8 outputs are
    meaningless)."""

    def __init__(self, backend: Optional[str] = None, dtype: Optional[str] = None,
                 calibration: Optional[str] = None, record: bool = False, explicit: bool = True,
                 note: str = '', verbose: bool = True, stages: Optional[StageTimer] = None,
                 carried: Optional[Dict[str, List[torch.Tensor]]] = None, task: str = 'model',
                 deploy_options: Optional[Dict[str, Any]] = None):
        if backend is not None and backend not in BACKENDS:
            raise AppError(f'--backend {backend}: choose one of {", ".join(BACKENDS)}')
        if dtype is not None and dtype not in DTYPES:
            raise AppError(f'--dtype {dtype}: choose one of {", ".join(DTYPES)}')
        self.backend, self.dtype, self.calibration = backend, dtype, calibration
        self.record, self.explicit, self.note, self.verbose = record, explicit, note, verbose
        self.stages, self.carried, self.task = stages, dict(carried or {}), task
        self.deploy_options = dict(deploy_options or {})
        self.models: Dict[str, FastModel] = {}

    @classmethod
    def from_args(cls, args, command: str, source: Optional[Source] = None,
                  device: Optional[torch.device] = None, **kwargs) -> 'Runtime':
        """The runtime a command line asks for (defaults: module docstring). Raises
        :class:`AppError` for a backend that is not installed, int8 on eager / inductor, bfloat16
        on a CPU that only emulates it, an ONNX backend on a GPU, a ``--calibration`` that is not a
        folder."""
        backend, dtype = getattr(args, 'backend', None), getattr(args, 'dtype', None)
        calibration = getattr(args, 'calibration', None)
        device = torch.device(device if device is not None else 'cpu')
        if calibration is not None:
            if dtype != 'int8':
                raise AppError(f'--calibration {calibration}: calibration images are for --dtype int8')
            if not os.path.isdir(calibration):
                raise AppError(f'--calibration {calibration}: not a folder of images')
        explicit, note = backend is not None or dtype is not None, ''
        if backend is None:
            backend, note = _default_backend(command, dtype, source, device)
        _check(backend, dtype, device)
        return cls(backend, dtype, calibration, explicit=explicit, note=note, **kwargs)

    # --- the networks ---------------------------------------------------------------------------
    def wrap(self, model: nn.Module, name: str = 'model') -> nn.Module:
        """``model`` (in eval mode) on this runtime: a :class:`FastModel`, or ``model`` itself
        when there is nothing to do (the plain model, nothing to record or time). A detector is
        changed in place (its ``backbone`` wrapped) and returned."""
        model.eval()
        if _is_detector(model):
            model.backbone = self.wrap(model.backbone, name)
            return model
        if self.backend is None and not self.record and self.stages is None:
            return model
        fast = FastModel(model, self, name, self.carried.pop(name, None))
        self.models[name] = fast
        return fast

    @property
    def needs_calibration(self) -> bool:
        """int8 without a calibration folder: the networks calibrate on their own first inputs."""
        return self.dtype == 'int8' and self.calibration is None and self.backend is not None

    @property
    def calibrated(self) -> bool:
        """Every wrapped network has been deployed."""
        return bool(self.models) and all(m.ready for m in self.models.values())

    def finish_calibration(self) -> None:
        """Deploy every network that recorded inputs but not enough to deploy by itself (int8 on
        at least 16 of them, else the backend's default precision, with a warning)."""
        for m in self.models.values():
            if not m.ready and m.inputs:
                m.deploy(m.inputs[0])

    def recorded(self) -> Dict[str, List[torch.Tensor]]:
        """Each network's recorded inputs (a reference pass's, for the next pass's ``carried``)."""
        return {name: m.inputs for name, m in self.models.items() if m.inputs}

    def describe(self) -> Dict[str, Any]:
        """What ran: per network its backend, precision and why, and the deploy time."""
        return {name: m.info() for name, m in self.models.items()}

    def say(self, text: str) -> None:
        if self.verbose:
            _say(text)


def _default_backend(command: str, dtype: Optional[str], source: Optional[Source], device: torch.device):
    """(backend, note) when ``--backend`` is not given (module docstring)."""
    cpu = device.type == 'cpu'
    if dtype == 'int8':
        if not cpu:
            raise AppError(f'--dtype int8 runs on the CPU (OpenVINO / ONNX Runtime), not {device}: add --device cpu')
        for backend in ('openvino', 'onnxruntime'):
            if _available(backend, dtype):
                return backend, ''
        raise AppError('--dtype int8 needs OpenVINO (with NNCF) or ONNX Runtime: pip install "hrnet-zoo[openvino]"')
    if dtype is not None:  # bfloat16 / float32 asked for: the fastest backend for it
        return ('openvino' if cpu and _available('openvino', dtype) else 'eager'), ''
    if command != 'predict':
        return None, ''
    if not cpu:
        return None, f'the plain model on {device} (--backend eager / inductor to deploy)'
    if not _available(PREDICT_BACKEND, None):
        return None, 'the plain model: OpenVINO is not installed (pip install "hrnet-zoo[openvino]" for the fast path)'
    frames = None if source is None else source.num_frames
    if frames is not None and frames < DEPLOY_MIN_FRAMES:
        return None, (f'the plain model: {frames} frame{"s" * (frames != 1)} (under {DEPLOY_MIN_FRAMES}) would not '
                      f'repay deploying (--backend {PREDICT_BACKEND} to deploy anyway)')
    return PREDICT_BACKEND, ''


def _check(backend: Optional[str], dtype: Optional[str], device: torch.device) -> None:
    from ..deploy import native_bfloat16
    from ..deploy.runtimes import RUNTIMES
    if backend in RUNTIMES or backend == 'auto':
        if device.type != 'cpu' and backend != 'auto':
            raise AppError(f'--backend {backend} runs on the CPU; on {device} use --backend eager or inductor')
        if backend in RUNTIMES and not _available(backend, dtype):
            extra = 'openvino' if backend == 'openvino' else 'onnx'
            what = 'OpenVINO and NNCF' if backend == 'openvino' and dtype == 'int8' else backend
            raise AppError(f'--backend {backend}{" --dtype int8" if dtype == "int8" else ""} needs {what}: '
                           f'pip install "hrnet-zoo[{extra}]"')
    if dtype == 'int8' and backend in ('eager', 'inductor'):
        raise AppError(f'--dtype int8 runs on --backend openvino or onnxruntime, not {backend}')
    if dtype == 'bfloat16' and backend == 'onnxruntime':
        raise AppError('--backend onnxruntime runs float32 or int8, not bfloat16')
    if dtype == 'bfloat16' and not native_bfloat16(device):
        raise AppError(f'--dtype bfloat16: {device} has no native bfloat16 (no AVX512-BF16 / AMX on this CPU), '
                       'where it is emulated about 100x slower than float32; use --dtype float32 or int8')


class FastModel(nn.Module):
    """A network on its :class:`Runtime`'s path: deployed on its first call (that input as the
    example; int8: once it has recorded enough inputs, running the plain model meanwhile), then
    run deployed. Other attributes come from the wrapped model; ``train()`` only sets its flag
    (the deployed copy is inference-only)."""

    def __init__(self, model: nn.Module, runtime: Runtime, name: str,
                 inputs: Optional[List[torch.Tensor]] = None):
        super().__init__()
        self.model = model
        self.__dict__['runtime'] = runtime
        self.name = name
        self.inputs: List[torch.Tensor] = list(inputs or [])
        self.carried = inputs is not None  # calibration inputs from a reference pass: deploy on the first call
        self.deployed: Optional[nn.Module] = None
        self.plain = runtime.backend is None  # runs the plain model (asked, or fallen back to)
        self.seconds_to_deploy: Optional[float] = None
        self.precision = 'float32' if self.plain else None
        self.reason = runtime.note if self.plain else ''

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get('_modules')
            if not modules or 'model' not in modules:
                raise
            return getattr(modules['model'], name)

    def train(self, mode: bool = True) -> 'FastModel':
        self.training = mode
        self.model.train(mode)
        return self

    @property
    def ready(self) -> bool:
        return self.plain or self.deployed is not None

    def _wants_inputs(self) -> bool:
        rt = self.runtime
        if not (rt.record or (rt.needs_calibration and not self.ready and not self.carried)):
            return False
        n = _images(self.inputs)
        return n < CALIBRATION_INPUTS and not (n >= MIN_CALIBRATION_IMAGES and self._bytes() >= CALIBRATION_BYTES)

    def _bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.inputs)

    def forward(self, x: torch.Tensor):
        if self._wants_inputs():
            self.inputs.append(x.detach().float().cpu())
        if not self.ready:
            if self.runtime.needs_calibration and self._wants_inputs():
                return self._run(self.model, x)  # int8: the plain model until there are enough inputs
            self.deploy(x)
        return self._run(self.model if self.plain else self.deployed, x)

    def _run(self, net: nn.Module, x: torch.Tensor):
        stages = self.runtime.stages
        with torch.no_grad():
            if stages is None:
                return net(x)
            with stages(f'{self.name}.network'):
                return net(x)

    def deploy(self, example: torch.Tensor) -> None:
        """Deploy now on the runtime's backend (``example``: an input batch)."""
        from .. import deploy
        rt = self.runtime
        dtype, calibration = rt.dtype, None
        if dtype == 'int8':
            calibration = rt.calibration or self.inputs
            if not isinstance(calibration, str) and _images(calibration) < MIN_CALIBRATION_IMAGES:
                warnings.warn(f'{self.name} network: only {_images(calibration)} calibration inputs (int8 needs '
                              f'{MIN_CALIBRATION_IMAGES}): it runs {rt.backend} in its default precision instead; '
                              'give more frames or --calibration DIR', VideoWarning, stacklevel=2)
                dtype, calibration = None, None
        start = time.perf_counter()
        try:
            deployed = deploy(self.model, dtype=dtype, backend=rt.backend, example_input=example.detach(),
                              calibration=calibration, **rt.deploy_options)
        except (RuntimeError, ValueError, ImportError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if rt.explicit:
                raise AppError(f'{self.name} network: deploy(backend={rt.backend!r}, dtype={dtype!r}) failed: '
                               f'{first}') from None
            warnings.warn(f'{self.name} network: deploying on {rt.backend} failed ({first}); running the plain '
                          'model', VideoWarning, stacklevel=2)
            self.plain, self.precision, self.reason = True, 'float32', f'{rt.backend} failed: {first}'
            self.inputs = []
            return
        self.deployed, self.inputs = deployed, []
        self.seconds_to_deploy = time.perf_counter() - start
        self.precision = str(deployed.precision).replace('torch.', '')
        self.reason = deployed.reason
        rt.say(f'{self.name} network: {deployed.backend} {self.precision}'
               f'{f" ({deployed.reason})" if deployed.reason else ""}, deployed in {self.seconds_to_deploy:.1f} s')

    def info(self) -> Dict[str, Any]:
        backend = self.deployed.backend if self.deployed is not None else ('plain' if self.plain else
                                                                           self.runtime.backend)
        out = {'backend': backend, 'precision': self.precision, 'reason': self.reason}
        if self.seconds_to_deploy is not None:
            out['deploy_seconds'] = round(self.seconds_to_deploy, 2)
        return out


def warn_no_weights(args, task: str) -> None:
    """Say on stderr that a model runs with random weights when no ``--checkpoint`` is given."""
    if getattr(args, 'checkpoint', None):
        return
    _say(f'warning: {args.model} has no weights loaded (no --checkpoint): it runs with random weights and its '
         f'outputs mean nothing. Load weights with --checkpoint FILE (an official checkpoint, an engine best.pth or a '
         f'.safetensors file); `hrnet-zoo list --task {task}` lists the published ones, docs/{task}.md how to use them.')


# --- predict ----------------------------------------------------------------------------------

@dataclass
class PredictRun:
    """One predict run: ``summary`` (frames, skipped, seconds, fps, outputs), ``records`` (every
    frame's JSON line, kept for images, folders and GIFs; None for videos and live sources, whose
    lines are only written), ``runtime`` (what ran: :meth:`Runtime.describe`)."""
    summary: Dict[str, Any]
    records: Optional[List[Dict[str, Any]]]
    runtime: Dict[str, Any]

    @property
    def result(self):
        """The records where kept, else the summary."""
        return self.records if self.records is not None else self.summary


class PredictApp:
    """The predict command of a task: its source (``--image``: an image, several images, a
    folder, a GIF, a video, a webcam index or a stream URL), its :class:`Runtime`, and the loop.

    ``defaults``: the drawing output without ``--out``: ``(one image, several frames)``, e.g.
    ``('pose.png', 'pose_predictions')``; a video or live source writes ``<stem>_<task>.mp4``.
    A task wraps its networks with :meth:`wrap` and runs :meth:`run` with ``make_step``:
    ``make_step(calibrating=False)`` returns a fresh per-frame step (``frame -> (outputs,
    drawing)``); ``calibrating=True`` is the int8 calibration pass (e.g. run the detector on
    every frame; its outputs are dropped, so it need not draw)."""

    def __init__(self, args, task: str, defaults: Sequence[str], device: Optional[torch.device] = None,
                 stages: Optional[StageTimer] = None):
        self.args, self.task, self.stages = args, task, stages
        self.source = open_sources(args.image)
        try:
            self.runtime = Runtime.from_args(args, 'predict', self.source, device, stages=stages)
        except BaseException:
            self.source.close()
            raise
        if self.runtime.note:
            _say(f'{task}: {self.runtime.note}')
        self.out = args.out if args.out is not None else self.default_out(defaults)

    def default_out(self, defaults: Sequence[str]) -> str:
        kind = self.source.kind
        if kind in ('video', 'live'):
            stem = os.path.splitext(os.path.basename(self.source.name.split(' (')[0]))[0] or 'stream'
            return f'{stem.replace(" ", "")}_{self.task}.mp4'
        return defaults[0] if self.source.num_frames == 1 and kind == 'image' else defaults[1]

    def wrap(self, model: nn.Module, name: Optional[str] = None) -> nn.Module:
        return self.runtime.wrap(model, name or self.task)

    def run(self, make_step: Callable[..., Callable], out_suffix: str = '') -> PredictRun:
        """Calibrate (int8), then run ``make_step()`` over the source; JSON lines to ``--json``
        (without it: to stdout), drawings to the output, a summary line on stderr."""
        args = self.args
        if self.runtime.needs_calibration and not self.source.live:
            self._calibrate(make_step)
        keep = self.source.kind in ('image', 'folder', 'gif')
        records: Optional[List[Dict[str, Any]]] = [] if keep else None
        to_stdout = not args.json

        def on_record(line: Dict[str, Any]) -> None:
            if records is not None:
                records.append(line)
            if to_stdout:
                from .video.sinks import _jsonable
                print(json.dumps(line, default=_jsonable), flush=True)

        summary = process_frames(self.source, make_step(), out=self.out, json_path=args.json,
                                 progress=not getattr(args, 'no_progress', False), out_suffix=out_suffix,
                                 on_record=on_record, stages=self.stages)
        skipped = f', {summary["skipped"]} skipped' if summary['skipped'] else ''
        wrote = ', '.join(summary['outputs']) or 'nothing'
        _say(f'{self.source.name}: {summary["frames"]} frames{skipped} in {summary["seconds"]:.1f} s '
             f'({summary["fps"] or 0:.2f} frames/s); wrote {wrote}')
        return PredictRun(summary, records, self.runtime.describe())

    def _calibrate(self, make_step: Callable[..., Callable]) -> None:
        """int8: run the networks (plain, recording their inputs) on the first frames of a second
        read of the source until each has deployed, or :data:`CALIBRATION_FRAMES` frames."""
        from tqdm.auto import tqdm
        step = make_step(calibrating=True)
        with open_sources(self.args.image) as source:
            total = min(CALIBRATION_FRAMES, source.num_frames or CALIBRATION_FRAMES)
            with tqdm(total=total, desc='int8 calibration', unit='frame',
                      disable=getattr(self.args, 'no_progress', False)) as bar:
                for i, frame in enumerate(source):
                    if self.runtime.calibrated or i >= CALIBRATION_FRAMES:
                        break
                    step(frame)
                    bar.update()
        self.runtime.finish_calibration()
