"""Human pose estimation with HRNetV1 (paper Sec. 4.1), top-down on COCO keypoints.

``specs`` the model table, ``models`` the network, ``data`` the COCO dataset and the official
augmentation, ``metrics`` COCO OKS AP, ``nms`` OKS-NMS, ``evaluate`` AP on ground-truth or
detection boxes and :func:`predict` (every person of an image), ``training`` the engine's loss /
eval functions; ``python -m hrnet_zoo.tasks.pose train|eval|predict``. Crops, targets, flip test
and decoding follow the heatmap codec each model names (``pretrained_cfg['codec']``: ``'msra'`` for
the official weights), shared with landmarks (:mod:`hrnet_zoo.tasks.codecs`).

Every registered builder is an attribute: ``hrnet_zoo.tasks.pose.hrnet_w32_pose_coco_256x192()``.
"""
from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any, Mapping, Optional, Tuple, Union

from torch import nn

from ...checkpoint import unwrap_state_dict
from ..heatmap import JointsMSELoss, decode_heatmaps, gaussian_heatmaps, predict_heatmaps
from ..registry import TASK_MODELS, TASK_SPECS, load_checkpoint
from .data import COCOKeypoints, read_detections
from .evaluate import evaluate_coco, predict
from .metrics import COCO_OKS_SIGMAS, coco_keypoint_ap, keypoint_results
from .models import PoseHRNet
from .nms import oks_nms, soft_oks_nms
from .specs import (COCO_FLIP_PAIRS, COCO_KEYPOINT_NAMES, COCO_SKELETON, OFFICIAL_KEY_MAP, OUTPUT_KEY, SPECS)
from .training import fit_pose

__all__ = [
    'PoseHRNet', 'SPECS', 'load_official_checkpoint', 'convert_official_pose_state_dict', 'predict',
    'evaluate_coco', 'fit_pose', 'COCOKeypoints', 'read_detections', 'coco_keypoint_ap', 'keypoint_results',
    'oks_nms', 'soft_oks_nms', 'JointsMSELoss', 'gaussian_heatmaps', 'decode_heatmaps', 'predict_heatmaps',
    'COCO_OKS_SIGMAS', 'COCO_FLIP_PAIRS', 'COCO_KEYPOINT_NAMES', 'COCO_SKELETON',
]


def convert_official_pose_state_dict(state_dict: Mapping[str, Any]):
    """An official deep-high-resolution-net.pytorch pose state_dict (or checkpoint dict) -> this
    model's keys: the identity after removing ``module.`` (:data:`~.specs.OFFICIAL_KEY_MAP`)."""
    return OFFICIAL_KEY_MAP.apply(unwrap_state_dict(state_dict))


def load_official_checkpoint(model: PoseHRNet, path_or_state_dict: Union[str, Mapping[str, Any]]) -> PoseHRNet:
    """Load an official pose checkpoint (``pose_hrnet_w32_256x192.pth``, ...), an engine checkpoint
    or a state_dict in that layout into ``model`` strictly, through the key map of the model's
    spec; a head with another keypoint count is a clear error."""
    return load_checkpoint(model, path_or_state_dict, OFFICIAL_KEY_MAP, OUTPUT_KEY)


def build_pose_model(width: int = 32, num_keypoints: int = 17, arch: Optional[str] = None,
                     input_size: Tuple[int, int] = (256, 192), checkpoint_path: Optional[str] = None,
                     **kwargs: Any) -> nn.Module:
    """Deprecated: ``hrnet_zoo.create_model('hrnet_pose', arch=..., num_keypoints=...)``."""
    warnings.warn("build_pose_model is deprecated; use hrnet_zoo.create_model('hrnet_pose', arch=..., ...)",
                  DeprecationWarning, stacklevel=2)
    return TASK_MODELS['hrnet_pose'](arch=arch or f'hrnet_w{width}', num_keypoints=num_keypoints,
                                     input_size=input_size, checkpoint_path=checkpoint_path, **kwargs)


_DEPRECATED = {'load_official_pose_checkpoint': ('load_official_checkpoint', lambda: load_official_checkpoint),
               'POSE_VARIANTS': ('SPECS', lambda: {s.name: (s.trunk, s.input_size, s.official.filename)
                                                   for s in SPECS if s.official})}


# names this package exported before the codec and the crop geometry moved to shared modules
_MOVED = {**{n: 'heatmap' for n in ('get_max_preds', 'quarter_offset', 'dark_refine', 'heatmap_coords', 'flip_back',
                                    'to_image_coords')},
          **{n: 'topdown' for n in ('affine_matrix', 'apply_affine', 'box_to_center_scale', 'clip_box',
                                    'flip_keypoints', 'warp_image')}}
for _name, _module in _MOVED.items():
    _DEPRECATED[_name] = (f'hrnet_zoo.tasks.{_module}.{_name}',
                          lambda n=_name, m=_module: getattr(import_module(f'hrnet_zoo.tasks.{m}'), n))


def __getattr__(name: str) -> Any:
    """The registered builders (``hrnet_w32_pose_coco_256x192``, ``hrnet_pose``, ...) and the
    deprecated names of the previous release."""
    if name in TASK_SPECS and TASK_SPECS[name].task == 'pose':
        return TASK_MODELS[name]
    if name in _DEPRECATED:
        new, value = _DEPRECATED[name]
        warnings.warn(f'hrnet_zoo.tasks.pose.{name} is deprecated; use {new}', DeprecationWarning, stacklevel=2)
        return value()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | {n for n, s in TASK_SPECS.items() if s.task == 'pose'} | set(_DEPRECATED))
