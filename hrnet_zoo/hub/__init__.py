"""The weight hub: one path for every model of the table (classifiers and task models alike).

Small modules, each one concept:

* :mod:`.records`: :class:`WeightRecord` and the manifest (``weights/manifest.json``), sha256.
* :mod:`.layouts`: source layouts as data (``official``, ``timm``, ``mmpose``, ``mmdet``,
  ``mmseg``, ``mmpretrain``): key maps and the rules that detect them from a file's keys.
* :mod:`.loading`: a checkpoint of any layout into a model, with errors that say which model it fits.
* :mod:`.fetch`: pretrained loading (timm's path for classifiers; ``huggingface_hub`` for tasks).
* :mod:`.convert`, :mod:`.config`, :mod:`.cards`, :mod:`.verify`, :mod:`.publish`: checkpoint ->
  Hub folder (``model.safetensors`` + ``config.json`` + model card), its checks, the upload.
* :mod:`.measure`: params / GMACs and a task model's record from its spec.

The hub reads the model table (:mod:`hrnet_zoo.tasks.registry`); the table never imports the hub:
this package plugs its loader in with :func:`~hrnet_zoo.tasks.registry.connect_hub` on import.
"""
from __future__ import annotations

from ..checkpoint import WeightsError
from ..tasks.registry import connect_hub
from .cards import model_card
from .config import TASK_CONFIG_FIELDS, task_config, write_config
from .convert import build_model, convert, require_spec
from .fetch import (PretrainedWeightsUnavailable, fetch_pretrained, hub_location, load_into, load_pretrained,
                    merge_into_default_cfgs, model_of_repo, resolve_weights)
from .layouts import LAYOUT_NAMES, LAYOUTS, Layout, detect_layout, get_layout, trunk_variants
from .loading import load_source, models_that_fit, read_source
from .measure import count_gmacs, count_params, measure_model, task_record
from .publish import publish, publish_plan
from .records import (DEFAULT_MANIFEST, MANIFEST_ENV, TASK_METRICS, WEIGHTS_FILE, WeightRecord, get_weight,
                      list_records, load_manifest, manifest_path, record_as_json, record_for_file, record_for_model,
                      sha256_file)
from .verify import Report, verify

__all__ = [
    'WeightRecord', 'WeightsError', 'PretrainedWeightsUnavailable', 'load_manifest', 'get_weight', 'list_records',
    'record_for_model', 'record_for_file', 'record_as_json', 'manifest_path', 'sha256_file', 'MANIFEST_ENV',
    'DEFAULT_MANIFEST', 'WEIGHTS_FILE', 'TASK_METRICS', 'TASK_CONFIG_FIELDS',
    'Layout', 'LAYOUTS', 'LAYOUT_NAMES', 'detect_layout', 'get_layout', 'trunk_variants',
    'read_source', 'load_source', 'models_that_fit',
    'convert', 'build_model', 'require_spec', 'verify', 'Report', 'model_card', 'task_config', 'write_config',
    'publish', 'publish_plan', 'fetch_pretrained', 'merge_into_default_cfgs', 'resolve_weights', 'load_pretrained',
    'load_into', 'model_of_repo', 'count_params', 'count_gmacs', 'measure_model', 'task_record',
]

connect_hub(load_into, hub_location)
