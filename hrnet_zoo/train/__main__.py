"""``python -m hrnet_zoo.train``: train an HRNet classifier with a recipe.

    python -m hrnet_zoo.train --recipe paper --model hrnet_w32 --data-dir /data/imagenet
    torchrun --nproc_per_node 8 -m hrnet_zoo.train --recipe cosine_cutmix_300e --model hrnet_w48 \
        --data-dir /data/imagenet --amp bf16 --channels-last
    python -m hrnet_zoo.train --recipe paper --model hrnet_w18 --data-dir /data/imagenet \
        --opt adamw --sched cosine --img-size 256 --save-every-min 30 --resume auto
    python -m hrnet_zoo.train --list-recipes

timm ``train.py``'s names (``--img-size``, ``--opt``, ``--sched``, ...) are aliases of recipe values,
the same as ``--set section.key=value`` (see ``--help``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ['build_parser', 'main', 'recipes_table', 'resolve_recipe']


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hrnet_zoo.train',
                                description='Train an HRNet classifier with a recipe (one process, or many under torchrun).')
    p.add_argument('--recipe', default='paper', help='shipped recipe name or path to a .yaml (default: paper)')
    p.add_argument('--list-recipes', action='store_true', help='list the shipped recipes and exit')
    p.add_argument('--show-recipe', action='store_true', help='print the resolved recipe (after --set) and exit')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override a recipe value, e.g. --set train.epochs=10 --set augment.label_smoothing=0.1')
    p.add_argument('--model', default='hrnet_w32', help='hrnet_zoo classifier name (default: hrnet_w32)')
    p.add_argument('--pretrained', action='store_true', help='start from the published weights')
    p.add_argument('--data-dir', default=None, help='ImageFolder root (train/ and val/ inside)')
    p.add_argument('--dataset', default='', help='timm dataset string (default: folder); "digits" = a tiny demo')
    p.add_argument('--train-split', default='train')
    p.add_argument('--val-split', default='validation')
    p.add_argument('--num-classes', type=int, default=None, help='default: from the dataset')
    p.add_argument('--out-dir', default=None, help='default: runs/<model>-<recipe>')
    p.add_argument('--epochs', type=int, default=None, help='override the recipe\'s epochs')
    p.add_argument('--batch-size', type=int, default=None, help='per process (default: recipe global batch / processes / grad-accum)')
    p.add_argument('--grad-accum', type=int, default=None)
    p.add_argument('--lr', type=float, default=None, help='absolute lr (default: recipe lr scaled to the global batch)')
    p.add_argument('--max-steps', type=int, default=None, help='stop after this many optimizer updates')
    p.add_argument('--amp', choices=['bf16', 'fp16'], default=None)
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--grad-checkpointing', action='store_true')
    p.add_argument('--no-sync-bn', action='store_true', help='keep per-process BatchNorm under DDP')
    p.add_argument('--ema-decay', type=float, default=None, help='e.g. 0.9998')
    p.add_argument('--resume', default=None, help='checkpoint path, or "auto" (out-dir/last.pth if present)')
    p.add_argument('--save-every', type=_positive(int), default=None, metavar='N',
                   help='also write last.pth every N optimizer updates (after a hard kill, --resume auto)')
    p.add_argument('--save-every-min', type=_positive(float), default=None, metavar='M',
                   help='also write last.pth every M minutes of wall time')
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda when available)')
    p.add_argument('--tensorboard', action='store_true', help='also log to TensorBoard (needs tensorboard)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--log-every', type=int, default=50)
    p.add_argument('--export-dir', default=None,
                   help='after training, write best (else last) weights as a Hub folder (model.safetensors + config.json + README.md)')
    p.add_argument('--export-ema', action='store_true', help='export the EMA weights')
    g = p.add_argument_group('timm train.py names', 'aliases of recipe values: each is the --set shown '
                             '(giving a value both ways is an error)')
    g.add_argument('--img-size', type=_positive(int), metavar='S',
                   help='data.train_size and data.eval_size = S (data.eval_resize keeps the recipe\'s crop ratio)')
    g.add_argument('--input-size', type=_positive(int), nargs=3, metavar=('C', 'H', 'W'),
                   help='as --img-size S with C=3, H=W=S')
    g.add_argument('--opt', choices=sorted(_OPT_ALIASES), help='train.optimizer (sgd and nesterov: SGD with '
                   'Nesterov momentum, momentum: plain momentum SGD; sets train.nesterov)')
    g.add_argument('--sched', choices=sorted(_SCHED_ALIASES), help='train.sched (multistep = step: lr x gamma '
                   'at train.milestones)')
    for flag, key in _FLOAT_ALIASES.items():
        g.add_argument(flag, type=float, metavar='X', help=key)
    return p


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


_OPT_ALIASES = {'sgd': dict(optimizer='sgd', nesterov=True), 'nesterov': dict(optimizer='sgd', nesterov=True),
                'momentum': dict(optimizer='sgd', nesterov=False), 'adam': dict(optimizer='adam'),
                'adamw': dict(optimizer='adamw')}
_SCHED_ALIASES = {'step': 'step', 'multistep': 'step', 'cosine': 'cosine', 'poly': 'poly', 'constant': 'constant'}
_FLOAT_ALIASES = {'--warmup-epochs': 'train.warmup_epochs', '--weight-decay': 'train.weight_decay',
                  '--smoothing': 'augment.label_smoothing', '--mixup': 'augment.mixup',
                  '--cutmix': 'augment.cutmix', '--model-ema-decay': 'train.ema_decay'}


def _yaml_value(value: Any) -> str:
    """``value`` as the YAML text --set parses back to it (floats such as 5e-05 keep a dot)."""
    import yaml
    return yaml.safe_dump([value], default_flow_style=True).strip()[1:-1]


def alias_overrides(args: argparse.Namespace, recipe) -> List[str]:
    """The timm-named flags of ``args`` as ``section.key=value`` overrides of ``recipe``."""
    from .recipes import RecipeError
    values: Dict[str, Any] = {}
    size = args.img_size
    if args.input_size is not None:
        c, h, w = args.input_size
        if c != 3 or h != w:
            raise RecipeError(f'--input-size {c} {h} {w}: the data pipeline gives square RGB crops; use 3 S S')
        if size is not None and size != h:
            raise RecipeError(f'--img-size {size} and --input-size {c} {h} {w} disagree')
        size = h
    if size is not None:
        ratio = recipe.data['eval_resize'] / recipe.data['eval_size']
        values.update({'data.train_size': size, 'data.eval_size': size, 'data.eval_resize': round(size * ratio)})
    if args.opt is not None:
        values.update({f'train.{k}': v for k, v in _OPT_ALIASES[args.opt].items()})
    if args.sched is not None:
        values['train.sched'] = _SCHED_ALIASES[args.sched]
    for flag, key in _FLOAT_ALIASES.items():
        if getattr(args, flag[2:].replace('-', '_')) is not None:
            values[key] = getattr(args, flag[2:].replace('-', '_'))
    given = {item.split('=', 1)[0] for item in args.set}
    clash = sorted(given & set(values))
    if clash:
        raise RecipeError(f'{", ".join(clash)} given both by --set and by a timm-named flag; keep one')
    if 'train.ema_decay' in values and args.ema_decay is not None:
        raise RecipeError('--model-ema-decay and --ema-decay both given; keep one')
    return [f'{k}={_yaml_value(v)}' for k, v in values.items()]


def resolve_recipe(args: argparse.Namespace):
    """The recipe of ``args``: ``--recipe``, then ``--set``, then the timm-named flags."""
    from .recipes import load_recipe
    recipe = load_recipe(args.recipe).with_overrides(args.set)
    aliases = alias_overrides(args, recipe)
    return recipe.with_overrides(aliases) if aliases else recipe


def recipes_table() -> str:
    """One line per shipped recipe: name, epochs, schedule, and the accuracy it reproduces."""
    from .recipes import list_recipes, load_recipe
    lines = [f'{"recipe":<20} {"epochs":>6} {"sched":<7} {"batch":>5} {"lr":>6}  reproduces (top-1)']
    for name in list_recipes():
        r = load_recipe(name)
        top1 = ', '.join(f'{k} {v}' for k, v in r.reproduces.get('top1', {}).items())
        lines.append(f'{name:<20} {r.train["epochs"]:>6} {r.train.get("sched", "step"):<7} '
                     f'{r.global_batch:>5} {r.train.get("lr", 0.1):>6}  {top1}')
    return '\n'.join(lines)


def _run_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    run: Dict[str, Any] = dict(max_steps=args.max_steps, amp=args.amp, channels_last=args.channels_last,
                               grad_checkpointing=args.grad_checkpointing, sync_bn=not args.no_sync_bn,
                               resume=args.resume, num_workers=args.workers, device=args.device,
                               tensorboard=args.tensorboard, progress=not args.no_progress,
                               log_every=args.log_every, eval_all_ranks=True,
                               save_every_steps=args.save_every, save_every_min=args.save_every_min)
    for key in ('epochs', 'lr', 'seed', 'ema_decay'):
        if getattr(args, key) is not None:
            run[key] = getattr(args, key)
    return run


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """Build recipe, data, model, loss and evaluation from ``args`` and run the engine."""
    import hrnet_zoo
    from .classification import ClassificationLoss, build_mixup, make_eval_fn
    from .data import build_datasets
    from .distributed import init_distributed
    from .engine import Trainer, seed_everything

    recipe = resolve_recipe(args)
    info = init_distributed(args.device)
    out_dir = args.out_dir or f'runs/{args.model}-{recipe.name}'
    cfg = recipe.train_config(out_dir, world_size=info.world_size, batch_size=args.batch_size,
                              grad_accum=args.grad_accum, **_run_overrides(args))
    train_set, eval_set, n_cls = build_datasets(args.dataset, args.data_dir, recipe.data,
                                                args.train_split, args.val_split)
    num_classes = args.num_classes or n_cls
    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = hrnet_zoo.create_model(args.model, pretrained=args.pretrained, num_classes=num_classes)
    aug = recipe.augment
    loss_fn = ClassificationLoss(aug['label_smoothing'],
                                 build_mixup(aug['cutmix'], aug['mixup'], aug['label_smoothing'], num_classes))
    eval_fn = make_eval_fn(eval_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                           distributed=True, channels_last=cfg.channels_last)
    trainer = Trainer(model, train_set, loss_fn, cfg, eval_fn=eval_fn)
    if info.is_main:
        run = {'recipe': recipe.to_dict(), 'model': args.model, 'num_classes': num_classes,
               'world_size': info.world_size, 'config': {k: v for k, v in vars(cfg).items()}}
        (Path(out_dir) / 'run.json').write_text(json.dumps(run, indent=2, default=str))
    result = trainer.fit()
    if args.export_dir and info.is_main:
        result['export_dir'] = str(export(result, args.model, args.export_dir, args.export_ema, tag=recipe.name))
    return result


def export(result: Dict[str, Any], arch: str, out: str, use_ema: bool = False, tag: Optional[str] = None) -> Path:
    """Write the run's best (else last) checkpoint as a Hub folder with ``hrnet_zoo.hub.convert``."""
    from .export import export_checkpoint
    ckpt = result.get('best_checkpoint') or result.get('last_checkpoint')
    if ckpt is None:
        raise ValueError('nothing to export: the run wrote no checkpoint')
    return export_checkpoint(ckpt, arch, out, use_ema=use_ema, tag=tag)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (2 for a usage / data / checkpoint error)."""
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .distributed import cleanup_distributed
    from .recipes import RecipeError
    try:
        if args.list_recipes:
            print(recipes_table())
            return 0
        if args.show_recipe:
            import yaml
            print(yaml.safe_dump(resolve_recipe(args).to_dict(), sort_keys=False))
            return 0
        result = train(args)
    except (RecipeError, CheckpointError, ValueError, FileNotFoundError) as e:
        print(f'hrnet_zoo.train: error: {e}', file=sys.stderr)
        return 2
    finally:
        cleanup_distributed()
    if int(os.environ.get('RANK', '0')) == 0:
        summary = {k: v for k, v in result.items() if k != 'losses'}
        summary['final_loss'] = result['losses'][-1] if result['losses'] else None
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
