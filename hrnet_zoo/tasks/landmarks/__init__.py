"""Facial landmark detection with HRNetV2-W18 (paper Sec. 4.4), in the rooms every task package has:
``specs`` (the four benchmarks and their models, official checkpoints and NME), ``models``
(:class:`FaceHRNet`), ``data`` (the official CSV format), ``metrics`` (NME / failure rate / AUC),
``evaluate``, ``training`` and ``python -m hrnet_zoo.tasks.landmarks train|eval|predict``.

The registered builders (``hrnet_w18_face_wflw``, ...) are attributes of this package and of
:func:`hrnet_zoo.create_model`."""
from __future__ import annotations

from typing import Any, Mapping, Union

from ...checkpoint import unwrap_state_dict
from ..registry import TASK_MODELS, load_checkpoint
from .data import FaceLandmarks
from .evaluate import decode_landmarks, evaluate_landmarks, predict_face, predict_landmarks
from .metrics import auc, failure_rate, landmark_metrics, nme, normalisers
from .models import FaceHRNet
from .specs import (FACE_DATASETS, OFFICIAL_FACE_KEY_MAP, OFFICIAL_KEY_MAP, OUTPUT_KEY, SPECS, FaceDatasetSpec,
                    build_face_model)
from .training import fit_landmarks

__all__ = ['SPECS', 'FACE_DATASETS', 'FaceDatasetSpec', 'FaceHRNet', 'build_face_model', 'load_official_checkpoint',
           'OFFICIAL_KEY_MAP', 'FaceLandmarks', 'landmark_metrics', 'evaluate_landmarks', 'predict_face',
           'fit_landmarks']
# also importable, as before: OFFICIAL_FACE_KEY_MAP, decode_landmarks, predict_landmarks, nme, normalisers,
# failure_rate, auc, convert_official_face_state_dict, load_official_face_checkpoint
_NAMES = tuple(s.name for s in SPECS)


def load_official_checkpoint(model: FaceHRNet, path_or_state_dict: Union[str, Mapping[str, Any]]) -> FaceHRNet:
    """Load an official face checkpoint (``HR18-WFLW.pth``, ...) or a state_dict in that layout
    strictly, through the key map of the model's spec (:data:`OFFICIAL_KEY_MAP`)."""
    return load_checkpoint(model, path_or_state_dict, OFFICIAL_KEY_MAP, OUTPUT_KEY)


load_official_face_checkpoint = load_official_checkpoint  # the name before 0.2


def convert_official_face_state_dict(state_dict: Mapping[str, Any]):
    """An official state_dict in our keys (:data:`OFFICIAL_KEY_MAP` applied)."""
    return OFFICIAL_KEY_MAP.apply(unwrap_state_dict(state_dict))


def __getattr__(name: str):
    if name in _NAMES:  # the registered builders, e.g. landmarks.hrnet_w18_face_wflw(pretrained=True)
        return TASK_MODELS[name]
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
