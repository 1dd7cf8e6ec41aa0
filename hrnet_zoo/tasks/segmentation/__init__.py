"""Semantic segmentation with HRNetV2 (paper Sec. 5.2) and HRNetV2 + OCR.

The named models (:mod:`.specs`, e.g. ``hrnet_w48_seg_cityscapes``) are attributes of this
package and :func:`hrnet_zoo.create_model` names; the ``*_mmseg`` ones are mmsegmentation's
FCN-HRNet and OCRNet-HRNet as mmseg builds and tests them. Rooms: ``specs`` (the model table),
``models`` (+ ``ocr``), ``metainfo`` (each dataset's classes and palette), ``data`` (datasets) and
``transforms`` (paired image/mask transforms), ``loss``, ``metrics`` (mIoU), ``evaluate`` (the
official test protocol and mmseg's: multi-scale, flip, windows), ``training`` (engine glue);
``python -m hrnet_zoo.tasks.segmentation train|eval|predict``.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Mapping, Union

import torch
from torch import nn

from ...checkpoint import unwrap_state_dict
from ..registry import TASK_MODELS, TASK_SPECS, load_checkpoint
from .data import CityscapesList, CityscapesTorchvision, ImageMaskFolder, SyntheticShapes
from .evaluate import evaluate, predict, sliding_window
from .metainfo import DATASETS
from .loss import IGNORE_INDEX, SegmentationLoss
from .metrics import ConfusionMatrix
from .models import HRNetSegmentation
from .ocr import HRNetOCRSegmentation
from .specs import MMSEG_SPECS, OFFICIAL_KEY_MAP, OUTPUT_KEYS, SPECS
from .training import fit
from .transforms import Compose, Normalize, RandomHorizontalFlip, eval_transforms, train_transforms

__all__ = ['HRNetSegmentation', 'HRNetOCRSegmentation', 'SPECS', 'MMSEG_SPECS', 'DATASETS', 'load_official_checkpoint',
           'SegmentationLoss',
           'ConfusionMatrix', 'predict', 'evaluate', 'fit', 'train_transforms', 'eval_transforms']


def load_official_checkpoint(model: nn.Module, path_or_state_dict: Union[str, os.PathLike, Mapping[str, torch.Tensor]]
                             ) -> nn.Module:
    """Load an official HRNet-Semantic-Segmentation checkpoint (a ``.pth`` read with
    ``weights_only=True``, or its state_dict; an engine / safetensors checkpoint also loads)
    strictly through the model's key map (:data:`.specs.OFFICIAL_KEY_MAP`: ``module.`` /
    ``model.`` stripped, ``loss.`` dropped, for every model, the W18-small ones included). A
    head of another size is a :class:`~hrnet_zoo.checkpoint.WeightsError` saying which
    ``num_classes`` to build; other mismatches a :class:`~hrnet_zoo.checkpoint.KeysMismatch`
    (also a ``KeyError``) naming the file and the keys."""
    head = (getattr(model, 'pretrained_cfg', None) or {}).get('head')
    return load_checkpoint(model, path_or_state_dict, OFFICIAL_KEY_MAP, OUTPUT_KEYS.get(head))


def _convert_official_state_dict(state):
    return OFFICIAL_KEY_MAP.apply(unwrap_state_dict(state))


def _load_backbone_weights(model, source):
    from ...checkpoint import load_trunk
    return load_trunk(model, source)


def _build_segmentation_model(name: str, pretrained: Any = False, **kwargs: Any) -> nn.Module:
    if name not in TASK_SPECS or TASK_SPECS[name].task != 'segmentation':
        raise KeyError(f'unknown segmentation model {name!r}; choose one of {[s.name for s in SPECS]}')
    return TASK_MODELS[name](pretrained=pretrained, **kwargs)


def _seg_models():
    from types import SimpleNamespace
    return {s.name: SimpleNamespace(variant=s.trunk, num_classes=s.num_outputs, dataset=s.dataset,
                                    crop_size=s.input_size, reference=s.description, head=s.head,
                                    align_corners=s.options['align_corners']) for s in SPECS}


# deprecated names (one release): name -> (replacement, value factory)
_DEPRECATED = {
    'build_segmentation_model': ('hrnet_zoo.create_model(name, ...)', lambda: _build_segmentation_model),
    'convert_official_state_dict': ('hrnet_zoo.tasks.segmentation.specs.OFFICIAL_KEY_MAP.apply',
                                    lambda: _convert_official_state_dict),
    'load_backbone_weights': ('hrnet_zoo.checkpoint.load_trunk', lambda: _load_backbone_weights),
    'SEG_MODELS': ('hrnet_zoo.get_model_spec(name) / hrnet_zoo.tasks.segmentation.SPECS', _seg_models),
}


def __getattr__(name: str) -> Any:
    """The registered builders by name (``hrnet_w48_seg_cityscapes``), and deprecated aliases."""
    if name in TASK_SPECS and TASK_SPECS[name].task == 'segmentation':
        return TASK_MODELS[name]
    if name in _DEPRECATED:
        replacement, value = _DEPRECATED[name]
        warnings.warn(f'hrnet_zoo.tasks.segmentation.{name} is deprecated; use {replacement}', DeprecationWarning,
                      stacklevel=2)
        return value()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | {s.name for s in SPECS + MMSEG_SPECS} | set(_DEPRECATED))
