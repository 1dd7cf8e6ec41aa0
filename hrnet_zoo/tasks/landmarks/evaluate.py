"""Model + faces -> landmarks and metrics: heatmaps (optionally flip-test averaged) decoded by the
heatmap codec the model was trained with (``model.pretrained_cfg['codec']``: ``'face'`` for the
official weights, :mod:`hrnet_zoo.tasks.codecs`; ``codec=`` overrides it, ``method=`` replaces
only its refinement) and back-projected through the face crop; NME / failure rate / AUC over a
dataset; landmarks of one face in an image."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..codecs import HeatmapCodec, dataset_with_codec, get_codec, resolve_codec
from ..topdown import normalize
from .data import FACE_PADDING
from .metrics import landmark_metrics

__all__ = ['decode_landmarks', 'predict_landmarks', 'evaluate_landmarks', 'predict_face']

CodecLike = Union[None, str, HeatmapCodec]


def decode_landmarks(heatmaps: torch.Tensor, centers, scales, method: Optional[str] = None,
                     rotations=None, codec: CodecLike = None) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, L, h, w) -> landmarks (N, L, 2) in image pixels and peak scores (N, L) under
    ``codec`` (default ``'udp'``; ``method`` replaces its refinement). ``scales`` (N,) or (N, 2)
    are the crops' sizes in units of 200 px."""
    return get_codec(codec, method).decode(heatmaps, centers, scales, rotations)


@torch.no_grad()
def predict_landmarks(model: nn.Module, dataset, batch_size: int = 16, flip_test: bool = False,
                      method: Optional[str] = None, num_workers: int = 0,
                      codec: CodecLike = None) -> Dict[str, np.ndarray]:
    """Landmarks in image pixels for every face: ``pred`` (N, L, 2), ``gt``, ``scores``, ``box_size``.
    The dataset crops under the model's codec (``codec``) when its own is unset."""
    codec = resolve_codec(model, codec, method)
    dataset = dataset_with_codec(dataset, codec)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {'pred': [], 'gt': [], 'scores': [], 'box_size': [], 'visible': []}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers):
        heatmaps = codec.predict_heatmaps(model, batch['image'].to(device), dataset.flip_pairs, flip_test)
        pts, conf = codec.decode(heatmaps.float().cpu(), batch['center'].numpy(), batch['scale'].numpy())
        out['pred'].append(pts)
        out['scores'].append(conf)
        out['gt'].append(batch['landmarks'].numpy())
        out['box_size'].append(batch['box_size'].numpy())
        out['visible'].append(batch['visible'].numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_landmarks(model: nn.Module, dataset, batch_size: int = 16, flip_test: bool = False,
                       method: Optional[str] = None, num_workers: int = 0,
                       codec: CodecLike = None) -> Dict[str, float]:
    """NME, failure rate at 0.1 (and 0.08) and AUC@0.1 of ``model`` on ``dataset``; AFLW-style
    files (with ``box_size``) are normalised by the box size, the others inter-ocularly."""
    p = predict_landmarks(model, dataset, batch_size, flip_test, method, num_workers, codec)
    box = p['box_size'] if (p['box_size'] > 0).all() and dataset.spec.eye_corners is None else None
    return landmark_metrics(p['pred'], p['gt'], dataset.spec, box, visible=p['visible'])


@torch.no_grad()
def predict_face(model: nn.Module, image: torch.Tensor, box: Optional[Sequence[float]] = None,
                 flip_test: bool = False, method: Optional[str] = None,
                 codec: CodecLike = None) -> Tuple[np.ndarray, np.ndarray]:
    """Landmarks (L, 2) in image pixels and scores (L,) of the face in ``box`` ``[x, y, w, h]``
    (default: the whole image) of ``image`` (3, H, W) in [0, 1], cropped as in training (the box
    centre, its longer side grown to the input's aspect ratio, padded by 1.25) at
    ``model.input_size`` under the model's codec (``codec``)."""
    codec = resolve_codec(model, codec, method)
    h, w = image.shape[-2:]
    box = box if box is not None else (0.0, 0.0, float(w), float(h))
    crop, center, scale = codec.crop_box(image, box, tuple(model.input_size), FACE_PADDING)
    model.eval()
    device = next(model.parameters()).device
    heatmaps = codec.predict_heatmaps(model, normalize(crop)[None].to(device), model.flip_pairs, flip_test)
    pts, conf = codec.decode(heatmaps.float().cpu(), center[None], scale[None])
    return pts[0], conf[0]
