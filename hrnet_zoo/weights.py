"""Deprecated: the weight tooling moved to :mod:`hrnet_zoo.hub` (one path for every model).

``hrnet_zoo.weights.<name>`` keeps working for the names users called (``convert``,
``convert_task``, ``verify``, ``publish``, ``load_manifest``, ``get_weight``, ``WeightRecord``,
``model_card``, ...); each use warns with a :class:`DeprecationWarning` that names the new place.
"""
from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any, Callable, Dict, Tuple, Union


def _convert_task(checkpoint, name, out, tag=None, repo_id=None, force=False, model_args=None):
    from .hub import convert
    return convert(checkpoint, name, out, tag=tag, repo_id=repo_id, force=force, model_args=model_args)


def _classifier_card(name, config, record, sha256, repo_id=None):
    from .hub import model_card
    from .tasks.registry import get_model_spec
    return model_card(config, get_model_spec(config['architecture']), record, sha256, repo_id)


def _task_spec(name):
    from .tasks.registry import MODEL_SPECS
    spec = MODEL_SPECS.get(name or '')
    return spec if spec is not None and spec.task != 'classification' else None


def _build_classifier(arch, num_classes=1000, tag=None):
    from .hub import build_model
    return build_model(arch, {'num_classes': num_classes}, tag)


def _build_task_model(name, model_args=None, device=None):
    from .hub import build_model
    return build_model(name, model_args, device=device)


def _resolve_task_weights(spec, pretrained, cache_dir=None):
    from .hub import resolve_weights
    return resolve_weights(spec, pretrained, cache_dir)[0]


def _task_records(task=None, manifest=None):
    from .hub import list_records
    return list_records(task, manifest=manifest)


# old name -> its new place 'module.attr' under hrnet_zoo, or (an adapter with the old signature, the new spelling)
_MOVED: Dict[str, Union[str, Tuple[Callable[..., Any], str]]] = {
    **{n: f'hub.{n}' for n in (
        'convert', 'verify', 'publish', 'publish_plan', 'load_manifest', 'get_weight', 'WeightRecord', 'Report',
        'record_as_json', 'record_for_model', 'sha256_file', 'manifest_path', 'MANIFEST_ENV', 'DEFAULT_MANIFEST',
        'WEIGHTS_FILE', 'TASK_METRICS', 'TASK_CONFIG_FIELDS', 'task_config', 'task_record', 'count_params',
        'count_gmacs', 'merge_into_default_cfgs', 'fetch_pretrained', 'PretrainedWeightsUnavailable', 'WeightsError')},
    **{n: f'checkpoint.{n}' for n in ('read_state_dict', 'read_safetensors_header', 'load_strict',
                                      'state_dict_problems', 'unwrap_state_dict')},
    **{n: f'hub.config.{n}' for n in ('PAPER', 'PAPER_ID', 'OFFICIAL_REPO')},
    'PIPELINE_TAGS': 'hub.cards.PIPELINE_TAGS',
    'read_checkpoint': 'checkpoint.read_state_dict',
    'measure_task_model': 'hub.measure_model',
    'task_model_of': 'hub.model_of_repo',
    'load_task_pretrained': 'hub.load_pretrained',
    'task_model_card': 'hub.model_card',
    'task_records': (_task_records, 'hrnet_zoo.hub.list_records(task)'),
    'convert_task': (_convert_task, 'hrnet_zoo.hub.convert(checkpoint, name, out, model_args=...)'),
    'model_card': (_classifier_card, 'hrnet_zoo.hub.model_card(config, spec, record, sha256)'),
    'task_spec': (_task_spec, 'hrnet_zoo.get_model_spec(name)'),
    'build_classifier': (_build_classifier, "hrnet_zoo.hub.build_model(arch, {'num_classes': n}, tag)"),
    'build_task_model': (_build_task_model, 'hrnet_zoo.hub.build_model(name, model_args)'),
    'resolve_task_weights': (_resolve_task_weights, 'hrnet_zoo.hub.resolve_weights(spec, pretrained)[0]'),
}
__all__ = sorted(_MOVED)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    moved = _MOVED[name]
    if isinstance(moved, tuple):
        value, new = moved
    else:
        module, _, attr = moved.rpartition('.')
        value, new = getattr(import_module(f'hrnet_zoo.{module}'), attr), f'hrnet_zoo.{moved}'
    warnings.warn(f'hrnet_zoo.weights.{name} is deprecated; use {new}', DeprecationWarning, stacklevel=2)
    return value


def __dir__():
    return __all__
