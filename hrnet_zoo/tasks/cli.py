"""The one command line of the task packages: ``python -m hrnet_zoo.tasks.<task> train|eval|predict``.

The flags every task shares are defined here once, spelled the same everywhere:

* all commands: ``--model``, ``--checkpoint``, ``--device``, ``--batch-size``, ``--workers``,
  ``--input-size H W``, ``--flip-test/--no-flip-test``, ``--recipe``, ``--set section.key=value``;
* ``train``: ``--out-dir``, ``--epochs``, ``--max-steps``, ``--lr``, ``--amp``, ``--channels-last``,
  ``--resume``, ``--seed``, ``--weights-backbone``, ``--no-progress``;
* ``predict``: ``--image`` (one or more), ``--out``.

A task adds only its own flags (datasets, decoding, ...) through :attr:`TaskCommand.add_arguments`
and reads recipe values (the task's YAML recipe, next to the ImageNet ones) instead of
retyping them: flags left unset fall back to the recipe.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..train.recipes import Recipe, load_recipe

__all__ = ['TaskCommand', 'build_parser', 'main', 'load_task_recipe', 'train_config', 'build_model',
           'flip_test', 'batch_size', 'device_of', 'print_json']

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
            s.add_argument('--image', nargs='+', required=True, help='image file(s)')
            s.add_argument('--out', default=None, help='output file or folder')
        cmd.add_arguments(s.add_argument_group(f'{cmd.task} options'), command)
        s.set_defaults(handler=handler)
    return p


def main(cmd: TaskCommand, argv: Optional[Sequence[str]] = None) -> Any:
    args = build_parser(cmd).parse_args(argv)
    from .video import VideoError
    try:
        return args.handler(args, load_task_recipe(args, cmd))
    except VideoError as e:  # bad input (a missing, corrupt or unsupported source): one line, no traceback
        raise SystemExit(f'error: {e}') from None


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
    print(json.dumps(result, indent=1, default=_jsonable))
    return result


def _jsonable(value: Any) -> Any:
    return value.tolist() if hasattr(value, 'tolist') else str(value)  # tensors, numpy arrays / scalars


def batch_size(args: argparse.Namespace, recipe: Recipe) -> int:
    """``--batch-size`` or the recipe's per-process batch for eval / predict."""
    return args.batch_size or int(recipe.eval.get('batch_size', recipe.global_batch))

