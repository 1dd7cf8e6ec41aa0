"""Object detection with HRNetV2p (paper Sec. 5.3) on torchvision's detectors: the model table
(``specs``), the detector classes (``models``), the backbone (``backbone``), COCO data (``data``),
COCO AP (``metrics``, ``evaluate``) and the engine's loss / eval (``training``).
``python -m hrnet_zoo.tasks.detection train|eval|predict``."""
from __future__ import annotations

import os
from typing import Mapping, Union

import torch
from torch import nn

from ...checkpoint import WeightsError, read_state_dict, unwrap_state_dict
from ..registry import TASK_MODELS, load_checkpoint
from .backbone import (MMDET_KEY_MAP, HRNetV2pBackbone, _with_source, convert_official_detection_state_dict,
                       load_backbone_weights)
from .data import CocoDetectionDataset, SyntheticBoxes, check_target, collate, train_transform
from .evaluate import evaluate_dataset, evaluate_detector
from .metrics import CocoEvaluator
from .models import DETECTORS, HRNetFasterRCNN, HRNetFCOS, HRNetMaskRCNN, HRNetRetinaNet, build_detector
from .specs import OUTPUT_KEYS, SPECS
from .training import eval_fn, fit_detector, loss_fn

__all__ = ['SPECS', 'build_detector', 'HRNetFasterRCNN', 'HRNetMaskRCNN', 'HRNetRetinaNet', 'HRNetFCOS',
           'HRNetV2pBackbone', 'load_backbone_weights', 'load_official_checkpoint', 'CocoDetectionDataset',
           'SyntheticBoxes', 'CocoEvaluator', 'evaluate_detector', 'fit_detector'] + [s.name for s in SPECS]

_SPEC_NAMES = frozenset(s.name for s in SPECS)


def __getattr__(name: str):
    """The registered builders (``fasterrcnn_hrnetv2p_w32``, ...) as attributes of the package."""
    if name in _SPEC_NAMES:
        return TASK_MODELS[name]
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | _SPEC_NAMES)


def load_official_checkpoint(model: nn.Module, path_or_state_dict: Union[str, os.PathLike, Mapping[str, torch.Tensor]]):
    """Load a full checkpoint of one of our detectors strictly (:func:`hrnet_zoo.tasks.registry.load_checkpoint`:
    the spec's key map, the class count checked). No official checkpoint of these torchvision
    heads exists: an official HRNet-Object-Detection / mmdetection checkpoint is refused with a
    pointer to ``weights_backbone=`` / :func:`load_backbone_weights`, which take its trunk and
    HRFPN neck."""
    is_path = not isinstance(path_or_state_dict, Mapping)
    state = read_state_dict(path_or_state_dict) if is_path else unwrap_state_dict(path_or_state_dict)
    where = str(path_or_state_dict) if is_path else '<state_dict>'
    if any(k.startswith(('neck.', 'rpn_head.', 'roi_head.', 'bbox_head.')) for k in state):
        raise WeightsError(f'{where} is an mmdetection checkpoint: its RPN / RoI heads have another layout than '
                           "torchvision's and are not converted. Initialise the trunk and HRFPN neck from it with "
                           'weights_backbone=<file> (or load_backbone_weights(model, <file>)) and fine-tune the heads.')
    kind = (getattr(model, 'pretrained_cfg', None) or {}).get('detector', '')
    return _with_source(where, load_checkpoint, model, state, fallback_output_key=OUTPUT_KEYS.get(kind))
