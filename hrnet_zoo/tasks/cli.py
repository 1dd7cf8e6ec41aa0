"""The one command line of the task packages: ``python -m hrnet_zoo.tasks.<task> train|eval|predict``.

The flags every task shares are defined here once, spelled the same everywhere:

* all commands: ``--model``, ``--checkpoint``, ``--device``, ``--batch-size``, ``--workers``,
  ``--input-size H W``, ``--flip-test/--no-flip-test``, ``--recipe``, ``--set section.key=value``;
* ``train``: ``--out-dir``, ``--epochs``, ``--max-steps``, ``--lr``, ``--amp``, ``--channels-last``,
  ``--resume``, ``--seed``, ``--weights-backbone``, ``--no-progress``;
* ``eval`` and ``predict``: ``--backend``, ``--dtype``, ``--calibration`` (the fast path of
  :mod:`hrnet_zoo.tasks.app`: every network of the run, a pose app's person detector included);
* ``predict``: ``--image`` / ``--source`` (images, a folder, a GIF, a video, a webcam index or a
  stream URL), ``--out`` (an annotated video at the source's frame rate, or PNGs), ``--json`` (one
  line per frame), ``--no-progress``.

The handlers are wrapped once here: bad input (a missing checkpoint, an unavailable backend, an
unreadable video) ends in one ``error: ...`` line; a model without ``--checkpoint`` says on stderr
that it runs with random weights; ``eval`` in a low precision (``--dtype bfloat16`` / ``int8``,
or a backend whose default is one) runs twice and reports the float32 metrics next to its own
(see :func:`run_eval`).

A task adds only its own flags (datasets, decoding, ...) through :attr:`TaskCommand.add_arguments`
and reads recipe values (the task's YAML recipe, next to the ImageNet ones) instead of
retyping them: flags left unset fall back to the recipe.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..train.recipes import Recipe, load_recipe

__all__ = ['TaskCommand', 'build_parser', 'main', 'load_task_recipe', 'train_config', 'build_model',
           'inference_model', 'run_eval', 'flip_test', 'batch_size', 'device_of', 'print_json']

Handler = Callable[[argparse.Namespace, Recipe], Any]


@dataclass(frozen=True)
class TaskCommand:
    """What a task package gives the shared CLI: its name, default model and recipe, the
    handlers of ``train`` / ``eval`` / ``predict`` (each ``handler(args, recipe)``),
    ``add_arguments(parser, command)`` for its own flags, and ``recipes``: the shipped recipe of
    each dataset (without ``--recipe``, a model gets its dataset's, else ``default_recipe``)."""
    task: str
    default_model: str
    default_recipe: str
    train: Handler
    evaluate: Handler
    predict: Handler
    add_arguments: Callable[[argparse.ArgumentParser, str], None]
    description: str = ''
    recipes: Mapping[str, str] = field(default_factory=dict)

    def recipe_for(self, model: str) -> str:
        """The recipe a model trains and evaluates with by default: its dataset's."""
        from .registry import get_model_spec
        return self.recipes.get(get_model_spec(model).dataset, self.default_recipe)


def _common(cmd: TaskCommand) -> argparse.ArgumentParser:
    from .. import list_models
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group('common options (every task)')
    g.add_argument('--model', default=cmd.default_model, choices=list_models(task=cmd.task), metavar='NAME',
                   help=f'a registered {cmd.task} model (default {cmd.default_model}; '
                        f'`hrnet-zoo list --task {cmd.task}` lists them)')
    g.add_argument('--checkpoint', default=None,
                   help='weights: an engine last.pth / best.pth, an official checkpoint or a .safetensors file')
    g.add_argument('--device', default=None, help='cpu, cuda, cuda:1 (default: CUDA when available)')
    g.add_argument('--batch-size', type=int, default=None, help='per process (default: the recipe\'s)')
    g.add_argument('--workers', type=int, default=4, help='data-loader worker processes')
    g.add_argument('--input-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help="model input size (default: the model's)")
    g.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=None,
                   help='average with the flipped image at test time (default: the recipe\'s eval.flip_test)')
    g.add_argument('--recipe', default=None,
                   help=f'task recipe name or YAML file (default: the recipe of the model\'s dataset, '
                        f'{cmd.default_recipe} for {cmd.default_model}; `hrnet-zoo recipes` lists them)')
    g.add_argument('--set', dest='overrides', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override a recipe value, e.g. --set train.epochs=10 (repeatable)')
    return p


def _train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('training options (every task)')
    g.add_argument('--out-dir', '--out', dest='out_dir', default=None,
                   help='run folder for last.pth / best.pth / the log (default runs/<task>)')
    g.add_argument('--epochs', type=int, default=None, help="default: the recipe's")
    g.add_argument('--max-steps', type=int, default=None, help='stop after this many updates (resumable)')
    g.add_argument('--lr', type=float, default=None, help="learning rate (default: the recipe's)")
    g.add_argument('--amp', choices=['bf16', 'fp16'], default=None, help='mixed precision')
    g.add_argument('--channels-last', action='store_true')
    g.add_argument('--resume', default=None, help="a checkpoint path or 'auto' (out-dir/last.pth)")
    g.add_argument('--seed', type=int, default=0)
    g.add_argument('--weights-backbone', default=None,
                   help="initialise the trunk: 'imagenet', a classifier checkpoint, or (detection) an official "
                        'mmdetection checkpoint (trunk + HRFPN neck)')
    g.add_argument('--no-progress', action='store_true', help='no progress bar')


def _runtime_options(p: argparse.ArgumentParser, command: str) -> None:
    from .app import BACKENDS, CALIBRATION_INPUTS, DEPLOY_MIN_FRAMES, DTYPES, PREDICT_BACKEND
    g = p.add_argument_group('fast path (eval and predict; hrnet_zoo.deploy)')
    default = ('default: the plain model, float32 (the published protocol)' if command == 'eval' else
               f'default: {PREDICT_BACKEND} in its default precision on a CPU (bfloat16 where native) for videos, '
               f'streams and sources of {DEPLOY_MIN_FRAMES} frames or more; the plain model otherwise')
    g.add_argument('--backend', choices=BACKENDS, default=None,
                   help=f'run every network through hrnet_zoo.deploy on this backend ({default}; auto builds and '
                        'times each installed backend first; inductor compiles for every new input shape)')
    g.add_argument('--dtype', choices=DTYPES, default=None,
                   help="precision (default: the backend's own; bfloat16 only where the device has it natively; "
                        'int8: OpenVINO / ONNX Runtime, calibrated on the first inputs'
                        + (', and the float32 metrics are reported next to it)' if command == 'eval' else ')'))
    g.add_argument('--calibration', default=None, metavar='DIR',
                   help=f'--dtype int8: calibrate on these images (read with the model\'s preprocessing: give person '
                        f'/ face crops to pose / landmark models) instead of the first {CALIBRATION_INPUTS} inputs '
                        'the networks get')


def _predict_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('input and output (predict)')
    g.add_argument('--image', '--source', dest='image', nargs='+', required=True, metavar='SOURCE',
                   help='image file(s), a folder of images, a GIF, a video (mp4, mov, mkv, avi, webm), a webcam '
                        'index (0) or a stream URL (rtsp://, http://, ...)')
    g.add_argument('--out', default=None,
                   help='the drawings: a video (.mp4, .mkv, .mov, .avi, .webm; at the source\'s frame rate), a .png '
                        'for one image, or a folder of PNGs (default: <source>_<task>.mp4 for videos and streams, '
                        "the task's PNG / folder otherwise)")
    g.add_argument('--json', default=None, metavar='FILE',
                   help='write one JSON line per frame here ({"frame", "time", the outputs}); default: to stdout')
    g.add_argument('--no-progress', action='store_true', help='no progress bar')


def build_parser(cmd: TaskCommand) -> argparse.ArgumentParser:
    """``train`` / ``eval`` / ``predict`` subcommands with the common flags and the task's own."""
    p = argparse.ArgumentParser(prog=f'python -m hrnet_zoo.tasks.{cmd.task}', description=cmd.description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    common = _common(cmd)
    helps = {'train': f'train / fine-tune a {cmd.task} model with the shared engine',
             'eval': f'the {cmd.task} metric on a validation set',
             'predict': 'run the model on images and write the drawings / outputs'}
    for command, handler in (('train', cmd.train), ('eval', cmd.evaluate), ('predict', cmd.predict)):
        s = sub.add_parser(command, parents=[common], help=helps[command], description=helps[command])
        if command == 'train':
            _train_options(s)
        if command == 'predict':
            _predict_options(s)
        if command in ('eval', 'predict'):
            _runtime_options(s, command)
        cmd.add_arguments(s.add_argument_group(f'{cmd.task} options'), command)
        s.set_defaults(handler=handler if command == 'train' else _checked(cmd, command, handler))
    return p


def _checked(cmd: TaskCommand, command: str, handler: Handler) -> Handler:
    """``handler`` with the checks and reports of ``eval`` / ``predict``: missing files and bad
    input as one ``error: ...`` line, the no-weights warning, and (``eval``) :func:`run_eval`."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace, recipe: Recipe) -> Any:
        from .app import AppError, warn_no_weights
        from .video import VideoError
        try:
            for flag in ('checkpoint', 'detector_checkpoint'):
                path = getattr(args, flag, None)
                if path and not os.path.isfile(path):
                    raise AppError(f'--{flag.replace("_", "-")} {path}: no such file')
            warn_no_weights(args, cmd.task)
            return run_eval(args, recipe, handler, cmd.task) if command == 'eval' else handler(args, recipe)
        except (AppError, VideoError) as e:
            raise SystemExit(f'error: {e}') from None
    return run


def run_eval(args: argparse.Namespace, recipe: Recipe, handler: Handler, task: str) -> Any:
    """``eval`` on the path of ``--backend`` / ``--dtype`` (:func:`inference_model` gives the
    handler its networks). A precision other than float32 runs twice: first the plain float32
    model (which also records the int8 calibration inputs, unless ``--calibration`` is given),
    then the asked path; the result is its metrics with ``"float32"`` (the reference metrics) and
    ``"runtime"`` (what ran, per network), printed once."""
    from .app import Runtime
    runtime = Runtime.from_args(args, 'eval', device=device_of(args), task=task)
    if runtime.backend is None or runtime.dtype == 'float32' or (
            runtime.dtype is None and runtime.backend in ('eager', 'inductor', 'onnxruntime')):
        args.runtime = runtime
        return handler(args, recipe)
    reference = Runtime(record=runtime.needs_calibration, verbose=False, task=task)
    print(f'eval 1/2: the plain model in float32 (the reference){", recording int8 calibration inputs" * reference.record}',
          file=sys.stderr)
    args.runtime = reference
    with _quiet():
        float32 = handler(args, recipe)
    runtime.carried = reference.recorded()
    print(f'eval 2/2: --backend {runtime.backend} --dtype {runtime.dtype or "(its default)"}', file=sys.stderr)
    args.runtime = runtime
    with _quiet():
        metrics = handler(args, recipe)
    if not isinstance(metrics, dict) or not isinstance(float32, dict):
        return metrics
    result = {**metrics, 'float32': float32, 'runtime': runtime.describe()}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and isinstance(float32.get(key), (int, float)):
            print(f'{key}: {value:.4f} vs float32 {float32[key]:.4f} ({value - float32[key]:+.4f})', file=sys.stderr)
    return print_json(result) if int(os.environ.get('RANK', 0)) == 0 else result


def inference_model(args: argparse.Namespace, model: nn.Module, name: Optional[str] = None) -> nn.Module:
    """``model`` (eval mode) on the path ``--backend`` / ``--dtype`` ask for (unchanged by
    default); a detector's backbone is deployed in place. ``cmd_eval`` passes its model here."""
    from .app import Runtime
    runtime = getattr(args, 'runtime', None)
    if runtime is None:
        runtime = args.runtime = Runtime.from_args(args, 'eval', device=device_of(args))
    return runtime.wrap(model, name or runtime.task)


_QUIET = []


@contextlib.contextmanager
def _quiet():
    """:func:`print_json` prints nothing inside (the passes of :func:`run_eval`)."""
    _QUIET.append(True)
    try:
        yield
    finally:
        _QUIET.pop()


def main(cmd: TaskCommand, argv: Optional[Sequence[str]] = None) -> Any:
    args = build_parser(cmd).parse_args(argv)
    return args.handler(args, load_task_recipe(args, cmd))  # eval / predict: bad input is one line (_checked)


def load_task_recipe(args: argparse.Namespace, cmd: Optional[TaskCommand] = None) -> Recipe:
    """The recipe of ``--recipe`` (none given: ``cmd.recipe_for(--model)``) with the ``--set``
    overrides, then ``--epochs`` as a ``train`` override (``--lr`` is applied, unscaled, by
    :func:`train_config`)."""
    name = args.recipe or (cmd.recipe_for(args.model) if cmd is not None else None)
    if name is None:
        raise ValueError('no --recipe given and no task command to choose the default one')
    recipe = load_recipe(name)
    overrides: List[str] = list(args.overrides)
    if getattr(args, 'epochs', None) is not None:
        overrides.append(f'train.epochs={args.epochs!r}')
    return recipe.with_overrides(overrides) if overrides else recipe


def train_config(args: argparse.Namespace, recipe: Recipe, **run: Any):
    """The engine config of a ``train`` command: the recipe's ``train`` section and this run's
    flags (``--batch-size`` is per process; without it the recipe's global batch is split over
    the processes). The recipe's lr is scaled to the global batch; an explicit ``--lr`` is used
    as given."""
    world = int(os.environ.get('WORLD_SIZE') or 1)  # torchrun's; the engine joins the group itself
    values = dict(out_dir=args.out_dir or f'runs/{recipe.task}', max_steps=args.max_steps, amp=args.amp,
                  resume=args.resume, seed=args.seed, device=args.device, progress=not args.no_progress,
                  num_workers=args.workers, channels_last=args.channels_last)
    if getattr(args, 'lr', None) is not None:
        values['lr'] = args.lr
    values.update(run)
    out_dir = values.pop('out_dir')
    return recipe.train_config(out_dir=out_dir, world_size=world, batch_size=args.batch_size, **values)


def build_model(args: argparse.Namespace, **kwargs: Any) -> nn.Module:
    """``--model`` with ``--input-size`` and ``--checkpoint`` (loaded strictly by the builder)."""
    from .. import create_model
    if args.input_size:
        kwargs['input_size'] = tuple(args.input_size)
    return create_model(args.model, checkpoint_path=args.checkpoint, **kwargs)


def flip_test(args: argparse.Namespace, recipe: Recipe) -> bool:
    """``--flip-test/--no-flip-test`` if given, else the recipe's ``eval.flip_test``."""
    return bool(recipe.eval.get('flip_test', False)) if args.flip_test is None else args.flip_test


def device_of(args: argparse.Namespace) -> torch.device:
    from ..train.distributed import resolve_device
    return resolve_device(args.device)


def print_json(result: Any) -> Any:
    if not _QUIET:
        print(json.dumps(result, indent=1, default=_jsonable))
    return result


def _jsonable(value: Any) -> Any:
    return value.tolist() if hasattr(value, 'tolist') else str(value)  # tensors, numpy arrays / scalars


def batch_size(args: argparse.Namespace, recipe: Recipe) -> int:
    """``--batch-size`` or the recipe's per-process batch for eval / predict."""
    return args.batch_size or int(recipe.eval.get('batch_size', recipe.global_batch))

