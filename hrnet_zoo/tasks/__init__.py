"""Task models built on the HRNet trunk: pose, landmarks, segmentation, detection.

Every task package has the same rooms (``specs.py`` the model table, ``models.py``, ``data.py``,
``metrics.py``, ``evaluate.py``, ``training.py``, ``__main__.py``) and registers its models from
its spec table (:mod:`hrnet_zoo.tasks.registry`); they are reachable through
:func:`hrnet_zoo.create_model`, :func:`hrnet_zoo.list_models` and ``hubconf.py``.
"""
from __future__ import annotations

from .registry import (TASK_MODELS, TASK_SPECS, OfficialCheckpoint, TaskModelSpec, get_model_spec,  # noqa: F401
                       register_specs, register_task_model)

# Task packages register their models on import (one line each below).
from . import pose  # noqa: E402,F401  (HRNetV1 human pose)
from . import landmarks  # noqa: E402,F401  (HRNetV2-W18 facial landmarks)
from . import segmentation  # noqa: E402,F401  (HRNetV2 semantic segmentation)
from . import detection  # noqa: E402,F401  (HRNetV2p detectors on torchvision)
