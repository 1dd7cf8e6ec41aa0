"""Deprecated alias of :mod:`hrnet_zoo.tasks.detection` (kept for one release): every name is
looked up there, with a ``DeprecationWarning``. Use ``hrnet_zoo.tasks.detection`` or
``hrnet_zoo.create_model('fasterrcnn_hrnetv2p_w32', ...)``."""
from __future__ import annotations

import warnings

__all__ = ['HRNetV2pBackbone', 'CocoEvaluator', 'build_detector', 'fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32',
           'fasterrcnn_hrnetv2p_w40', 'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32']


def __getattr__(name: str):
    from .tasks import detection
    if name.startswith('__'):
        raise AttributeError(name)
    value = getattr(detection, name)  # AttributeError for unknown names
    warnings.warn(f'hrnet_zoo.detection.{name} is deprecated; use hrnet_zoo.tasks.detection.{name} '
                  '(the alias goes in the next release)', DeprecationWarning, stacklevel=2)
    return value
