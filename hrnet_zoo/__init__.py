"""hrnet-zoo: HRNet backbones (timm-compatible), representation heads and task models.

``import hrnet_zoo`` registers every HRNet variant with ``timm.create_model``.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, List, Optional

import timm
from torch import nn

from . import _timm  # noqa: F401  classifiers: timm registration + their specs (imports the model table and the hub)
from .backbone import HRNet, HighResolutionModule
from .classifier import HighResolutionNet, HighResolutionNetFeatures
from .configs import HRNET_CONFIGS, HRNetConfig, StageConfig, get_config
from .deploy import deploy, export_onnx
from .representations import HRNetV1, HRNetV2, HRNetV2p
from .tasks import TASK_MODELS, TASK_SPECS, get_model_spec
from .tasks.registry import MODEL_BUILDERS, MODEL_SPECS, TASKS, ModelSpec
from . import hub  # noqa: F401  (the weight hub: records, source layouts, convert / verify / publish)
from . import detection  # noqa: F401  (deprecated alias of hrnet_zoo.tasks.detection, kept one release)

__version__ = '0.1.0'

__all__ = [
    'create_model', 'list_models', 'get_config', 'HRNetConfig', 'StageConfig', 'HRNET_CONFIGS',
    'HRNet', 'HighResolutionModule', 'HighResolutionNet', 'HighResolutionNetFeatures',
    'HRNetV1', 'HRNetV2', 'HRNetV2p', '__version__',
    'deploy', 'export_onnx', 'get_model_spec', 'ModelSpec',
]


def list_models(pretrained: bool = False, task: Optional[str] = None) -> List[str]:
    """Names of the model table: the timm backbones/classifiers first, then the task models.

    ``task`` filters by ``'classification'``, ``'pose'``, ``'landmarks'``, ``'segmentation'`` or
    ``'detection'`` (as torchvision's ``list_models(module=...)``). ``pretrained=True`` lists only
    names with published weights: the classifiers' ``arch.tag`` names (timm's pretrained tags and
    the manifest's) and the task models that have a record in the weight manifest."""
    if task is not None and task not in TASKS:
        raise ValueError(f'unknown task {task!r}; choose one of {", ".join(TASKS)}')
    specs = [s for s in MODEL_SPECS.values() if task in (None, s.task)]
    classifiers = sorted(s.name for s in specs if s.task == 'classification')
    if pretrained:
        classifiers = sorted(n for n in timm.list_models(pretrained=True) if n.split('.')[0] in classifiers)
        manifest = hub.records.manifest_or_empty()  # read and validated once, not per name
        specs = [s for s in specs if hub.record_for_model(s.name, manifest)]
    return classifiers + sorted(s.name for s in specs if s.task != 'classification')


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a model by name: a classifier/backbone (``'hrnet_w32'``, ``'hrnet_w32.ms_in1k'``, with
    timm's arguments ``features_only``, ``out_indices``, ``feature_location``, ``num_classes``, ...)
    or a task model (``'hrnet_w32_pose_coco_256x192'``, ...). Every model takes
    ``checkpoint_path=`` (a checkpoint of any known source layout: official, timm, mmpose, mmdet,
    ...; detected from its keys) and ``pretrained=``."""
    if name in MODEL_BUILDERS:
        return MODEL_BUILDERS[name](pretrained=pretrained, **kwargs)
    arch, _, tag = name.partition('.')
    if arch in MODEL_SPECS and tag:  # a weight's arch.tag name
        return MODEL_BUILDERS[arch](pretrained=pretrained, tag=tag, **kwargs)
    raise ValueError(f'unknown model {name!r}; hrnet_zoo.list_models() gives the choices')


def __getattr__(name: str):
    """``hrnet_zoo.weights``: the deprecated alias module, imported on first use."""
    if name == 'weights':
        return import_module('.weights', __name__)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
