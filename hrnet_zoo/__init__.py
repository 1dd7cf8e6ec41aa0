"""hrnet-zoo: HRNet backbones (timm-compatible), representation heads and task models.

``import hrnet_zoo`` registers every HRNet variant with ``timm.create_model``.
"""
from __future__ import annotations

from typing import Any, List, Optional

import timm
from torch import nn

from . import _timm
from .backbone import HRNet, HighResolutionModule
from .classifier import HighResolutionNet, HighResolutionNetFeatures
from .configs import HRNET_CONFIGS, HRNetConfig, StageConfig, get_config
from .deploy import deploy, export_onnx
from .representations import HRNetV1, HRNetV2, HRNetV2p
from .tasks import TASK_MODELS, TASK_SPECS, get_model_spec
from .tasks.registry import TASKS
from . import detection  # noqa: F401  (deprecated alias of hrnet_zoo.tasks.detection, kept one release)

__version__ = '0.1.0'

__all__ = [
    'create_model', 'list_models', 'get_config', 'HRNetConfig', 'StageConfig', 'HRNET_CONFIGS',
    'HRNet', 'HighResolutionModule', 'HighResolutionNet', 'HighResolutionNetFeatures',
    'HRNetV1', 'HRNetV2', 'HRNetV2p', '__version__',
    'deploy', 'export_onnx', 'get_model_spec',
]


def list_models(pretrained: bool = False, task: Optional[str] = None) -> List[str]:
    """Names this package provides: the timm backbones/classifiers and the task models.

    ``task`` filters by ``'classification'``, ``'pose'``, ``'landmarks'``, ``'segmentation'`` or
    ``'detection'`` (as torchvision's ``list_models(module=...)``). ``pretrained=True`` lists only
    names with published weights: the classifiers' ``arch.tag`` names and the task models that
    have a record in the weight manifest."""
    if task is not None and task not in TASKS:
        raise ValueError(f'unknown task {task!r}; choose one of {", ".join(TASKS)}')
    names: List[str] = []
    if task in (None, 'classification'):
        if pretrained:
            names += sorted(n for n in timm.list_models(pretrained=True) if n.split('.')[0] in _timm.MODEL_NAMES)
        else:
            names += sorted(_timm.MODEL_NAMES)
    if task != 'classification':
        from .weights import _manifest_or_empty, record_for_model
        manifest = _manifest_or_empty() if pretrained else {}  # read and validated once, not per name
        names += sorted(n for n, s in TASK_SPECS.items()
                        if (task is None or s.task == task) and (not pretrained or record_for_model(n, manifest)))
    return names


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a model by name: a classifier/backbone (``'hrnet_w32'``, ``'hrnet_w32.ms_in1k'``, with
    timm's arguments ``features_only``, ``out_indices``, ``feature_location``, ``num_classes``, ...)
    or a task model (``'hrnet_w32_pose_coco_256x192'``, ...)."""
    if name in TASK_MODELS:
        return TASK_MODELS[name](pretrained=pretrained, **kwargs)
    if name.split('.')[0] not in _timm.MODEL_NAMES:
        raise ValueError(f'unknown model {name!r}; hrnet_zoo.list_models() gives the choices')
    return timm.create_model(name, pretrained=pretrained, **kwargs)
