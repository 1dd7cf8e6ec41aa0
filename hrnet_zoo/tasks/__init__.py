"""Task models built on the HRNet trunk (pose, landmarks, segmentation, detection).

Each task module registers its named builders with :func:`register_task_model`; they are then
reachable through :func:`hrnet_zoo.create_model` and :func:`hrnet_zoo.list_models`.
"""
from __future__ import annotations

from typing import Callable, Dict

from torch import nn

TASK_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_task_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a task-model builder under its function name."""
    if fn.__name__ in TASK_MODELS:
        raise ValueError(f'task model {fn.__name__!r} is registered twice')
    TASK_MODELS[fn.__name__] = fn
    return fn


# Task modules register their builders on import (one line each below).
from . import pose  # noqa: E402,F401  (HRNetV1 human pose)
from . import landmarks  # noqa: E402,F401  (HRNetV2-W18 facial landmarks)
from . import segmentation  # noqa: E402,F401  (HRNetV2 semantic segmentation)
from . import detection  # noqa: E402,F401  (HRNetV2p detectors on torchvision)
