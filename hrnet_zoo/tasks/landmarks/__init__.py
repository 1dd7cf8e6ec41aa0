"""Facial landmark detection with HRNetV2-W18 (paper Sec. 4.4): model and official key map,
decoding, NME / failure rate / AUC, the official CSV dataset format. ``python -m
hrnet_zoo.tasks.landmarks`` trains, evaluates and draws predictions."""
from .datasets import FACE_DATASETS, FaceDatasetSpec
from .decode import decode_landmarks
from .metrics import auc, failure_rate, landmark_metrics, nme, normalisers
from .model import (OFFICIAL_FACE_KEY_MAP, FaceHRNet, build_face_model, convert_official_face_state_dict,
                    load_official_face_checkpoint)

__all__ = ['FACE_DATASETS', 'FaceDatasetSpec', 'decode_landmarks', 'auc', 'failure_rate', 'landmark_metrics',
           'nme', 'normalisers', 'OFFICIAL_FACE_KEY_MAP', 'FaceHRNet', 'build_face_model',
           'convert_official_face_state_dict', 'load_official_face_checkpoint']
