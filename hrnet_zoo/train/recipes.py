"""Training recipes as data: YAML files shipped in ``hrnet_zoo/train/recipes/``.

A recipe has ``name``, ``description``, ``reproduces`` (the published accuracy it stands for)
and three sections: ``train`` (:class:`~hrnet_zoo.train.engine.TrainConfig` fields, with
``batch_size`` meaning the *global* batch and ``lr`` quoted for ``lr_base_batch`` images),
``data`` (transforms) and ``augment`` (CutMix / Mixup / label smoothing). Every key is checked
on load: an unknown or mistyped key is a :class:`RecipeError` naming the file and the valid keys.

A task recipe (``task: pose | landmarks | segmentation | detection``, e.g. ``pose_coco.yaml``)
has the same ``train`` section; its ``data``, ``augment`` and ``eval`` sections belong to the
task and the file itself declares them: an override (``--set data.sigma=3``) must name a key the
file has, with a value of the same type.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from ..tasks.registry import TASKS
from .engine import TrainConfig

__all__ = ['Recipe', 'RecipeError', 'list_recipes', 'load_recipe', 'recipe_path']

_TOP_KEYS = {'name': str, 'description': str, 'reproduces': dict, 'train': dict, 'data': dict, 'augment': dict,
             'task': str, 'eval': dict}
# TrainConfig fields a recipe may not set: they belong to one run, not to a recipe
_RUN_ONLY = {'out_dir', 'resume', 'max_steps', 'device', 'progress', 'tensorboard', 'num_workers',
             'handle_signals', 'log_every', 'save_every_steps', 'save_every_min', 'eval_all_ranks'}
_TRAIN_EXTRA = {'lr_base_batch': (int, float)}
_DATA_KEYS = {'train_size': int, 'scale': list, 'ratio': list, 'hflip': (int, float),
              'color_jitter': (int, float, list, type(None)), 'auto_augment': (str, type(None)),
              're_prob': (int, float), 'interpolation': str, 'eval_size': int, 'eval_resize': int}
_AUGMENT_KEYS = {'cutmix': (int, float), 'mixup': (int, float), 'label_smoothing': (int, float)}
_DEFAULT_DATA = dict(train_size=224, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3], hflip=0.5, color_jitter=None,
                     auto_augment=None, re_prob=0.0, interpolation='bilinear', eval_size=224, eval_resize=256)
_DEFAULT_AUGMENT = dict(cutmix=0.0, mixup=0.0, label_smoothing=0.0)


class RecipeError(ValueError):
    """A recipe file is missing, unreadable, or has unknown / ill-typed keys."""


@dataclass
class Recipe:
    """A validated recipe. ``train`` / ``data`` / ``augment`` are plain dicts (defaults filled)."""
    name: str
    description: str
    reproduces: Dict[str, Any]
    train: Dict[str, Any]
    data: Dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_DATA))
    augment: Dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_AUGMENT))
    source: str = ''
    task: str = 'classification'
    eval: Dict[str, Any] = field(default_factory=dict)

    @property
    def global_batch(self) -> int:
        """The global batch the recipe is written for."""
        return int(self.train.get('batch_size', 256))

    def scaled_lr(self, global_batch: int) -> float:
        """The recipe's lr scaled linearly from ``lr_base_batch`` to ``global_batch`` images."""
        base = self.train.get('lr_base_batch', self.global_batch)
        return float(self.train.get('lr', 0.1)) * global_batch / float(base)

    def train_config(self, out_dir: str = 'runs/train', world_size: int = 1, batch_size: Optional[int] = None,
                     grad_accum: Optional[int] = None, **run: Any) -> TrainConfig:
        """The engine config for a run with ``world_size`` processes.

        ``batch_size`` is per process; by default the recipe's global batch split over the
        processes and ``grad_accum`` steps. ``lr`` is scaled to the resulting global batch unless
        given in ``run``. Other ``run`` keywords are TrainConfig fields (``max_steps``, ``amp``...)."""
        accum = int(grad_accum or self.train.get('grad_accum', 1))
        if batch_size is None:
            per = self.global_batch / (world_size * accum)
            if per != int(per) or per < 1:
                raise RecipeError(f'recipe {self.name!r}: global batch {self.global_batch} does not split into '
                                  f'{world_size} process(es) x grad_accum {accum}; pass batch_size (per process)')
            batch_size = int(per)
        kwargs = {k: v for k, v in self.train.items() if k not in _TRAIN_EXTRA}
        kwargs.update(batch_size=batch_size, grad_accum=accum, out_dir=out_dir)
        kwargs['lr'] = self.scaled_lr(batch_size * world_size * accum)
        kwargs.update(run)
        return TrainConfig(**kwargs)

    def with_overrides(self, overrides: Sequence[str]) -> 'Recipe':
        """A copy with ``section.key=value`` overrides applied (values parsed as YAML), validated
        like the file: e.g. ``['train.epochs=10', 'augment.label_smoothing=0.1']``."""
        raw = self.to_dict()
        for item in overrides:
            if '=' not in item or '.' not in item.split('=', 1)[0]:
                raise RecipeError(f'override {item!r} must look like section.key=value, e.g. train.epochs=10')
            dotted, value = item.split('=', 1)
            section, key = dotted.split('.', 1)
            sections = ('train', 'data', 'augment') + (('eval',) if self.task != 'classification' else ())
            if section not in sections:
                raise RecipeError(f'override {item!r}: section must be one of {", ".join(sections)}')
            value = yaml.safe_load(value)
            if section != 'train' and self.task != 'classification':
                _check_task_override(self, section, key, value, item)
            raw[section][key] = value
        return _validate(raw, f'{self.source} with overrides {list(overrides)}')

    def to_dict(self) -> Dict[str, Any]:
        raw = {'name': self.name, 'description': self.description, 'reproduces': self.reproduces,
               'train': self.train, 'data': self.data, 'augment': self.augment}
        if self.task != 'classification':
            raw.update(task=self.task, eval=self.eval)
        return copy.deepcopy(raw)


def _check_task_override(recipe: Recipe, section: str, key: str, value: Any, item: str) -> None:
    """A task recipe's data / augment / eval keys are the ones its file declares, with their types."""
    declared = getattr(recipe, section)
    if key not in declared:
        raise RecipeError(f'override {item!r}: recipe {recipe.name!r} has no {section}.{key}; valid keys in '
                          f'{section}: {", ".join(sorted(declared)) or "(none)"}')
    old = declared[key]
    numeric = (int, float)
    same = (old is None or value is None or type(value) is type(old)
            or (isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool)))
    if not same and not (isinstance(old, list) and isinstance(value, list)):
        raise RecipeError(f'override {item!r}: {section}.{key} is {type(old).__name__} in recipe '
                          f'{recipe.name!r}, got {type(value).__name__}' + (' (write 0.5, not "0.5")'
                                                                        if isinstance(old, numeric) else ''))


def _check_section(section: str, values: Mapping[str, Any], allowed: Mapping[str, Any], source: str) -> None:
    for key, value in values.items():
        if key not in allowed:
            raise RecipeError(f'{source}: unknown key {section}.{key}; valid keys in {section}: '
                              f'{", ".join(sorted(allowed))}')
        types = allowed[key]
        if types is not None and not isinstance(value, types):
            raise RecipeError(f'{source}: {section}.{key} = {value!r} has the wrong type '
                              f'({type(value).__name__})')


def _train_types() -> Dict[str, Any]:
    """Allowed train keys: TrainConfig's recipe-level fields (types checked by TrainConfig itself)."""
    allowed: Dict[str, Any] = {n: None for n in TrainConfig.field_names() if n not in _RUN_ONLY}
    allowed.update(_TRAIN_EXTRA)
    return allowed


def _validate(raw: Any, source: str) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f'{source}: a recipe is a YAML mapping, got {type(raw).__name__}')
    _check_section('recipe', raw, _TOP_KEYS, source)
    for key in ('name', 'train'):
        if key not in raw:
            raise RecipeError(f'{source}: missing required key {key!r}')
    task = raw.get('task', 'classification')
    if task not in TASKS:
        raise RecipeError(f'{source}: task must be one of {", ".join(TASKS)}, got {task!r}')
    _check_section('train', raw['train'], _train_types(), source)
    if task == 'classification':
        if 'eval' in raw:
            raise RecipeError(f'{source}: an ImageNet recipe has no eval section (data.eval_size / eval_resize)')
        _check_section('data', raw.get('data', {}), _DATA_KEYS, source)
        _check_section('augment', raw.get('augment', {}), _AUGMENT_KEYS, source)
        data, augment = {**_DEFAULT_DATA, **raw.get('data', {})}, {**_DEFAULT_AUGMENT, **raw.get('augment', {})}
    else:  # the task's own sections, declared by the file
        for section in ('data', 'augment', 'eval'):
            if not isinstance(raw.get(section, {}), dict):
                raise RecipeError(f'{source}: {section} must be a mapping')
        data, augment = dict(raw.get('data', {})), dict(raw.get('augment', {}))
    recipe = Recipe(name=raw['name'], description=raw.get('description', ''), reproduces=raw.get('reproduces', {}),
                    train=dict(raw['train']), data=data, augment=augment, source=source, task=task,
                    eval=dict(raw.get('eval', {})))
    try:  # TrainConfig checks the values (amp, best_mode, integers ...)
        recipe.train_config(batch_size=1)
    except (TypeError, ValueError) as e:
        raise RecipeError(f'{source}: invalid train section: {e}') from e
    return recipe


def _packaged() -> Dict[str, Any]:
    folder = resources.files('hrnet_zoo.train') / 'recipes'
    return {p.name[:-len('.yaml')]: p for p in folder.iterdir() if p.name.endswith('.yaml')}


def list_recipes(task: Optional[str] = None) -> List[str]:
    """Names of the recipes shipped with the package (``task``: only that task's; ImageNet
    recipes are ``'classification'``)."""
    names = sorted(_packaged())
    if task is None:
        return names
    return [n for n in names if (yaml.safe_load(_packaged()[n].read_text()) or {}).get('task', 'classification') == task]


def recipe_path(name: str):
    """The packaged file of recipe ``name``."""
    files = _packaged()
    if name not in files:
        raise RecipeError(f'unknown recipe {name!r}; shipped recipes: {", ".join(sorted(files))} '
                          f'(or pass a path to a .yaml file)')
    return files[name]


def load_recipe(name_or_path: Union[str, Path]) -> Recipe:
    """Load and validate a shipped recipe by name (``'paper'``) or a YAML file by path."""
    text_name = str(name_or_path)
    if text_name.endswith(('.yaml', '.yml')) or Path(text_name).is_file():
        path: Any = Path(text_name)
        if not path.is_file():
            raise RecipeError(f'recipe file {path} does not exist')
    else:
        path = recipe_path(text_name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f'{path}: not valid YAML: {e}') from e
    return _validate(raw, str(path))
