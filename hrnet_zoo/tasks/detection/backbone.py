"""HRNetV2p as a torchvision detection backbone: the HRNet trunk (nearest-neighbour fusion, as
the official HRNet-Object-Detection backbone and the ImageNet weights) followed by the HRFPN neck
(:class:`~hrnet_zoo.representations.HRNetV2p`). ``forward`` returns the ``OrderedDict`` of levels
``'0'..'4'`` that torchvision's detectors expect, and ``out_channels`` (256) tells their heads.
:func:`load_backbone_weights` initialises it from ImageNet, a classifier or an official
mmdetection checkpoint (trunk + neck, :data:`MMDET_KEY_MAP`).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Union

import torch
from torch import nn

from ...backbone import HRNet
from ...checkpoint import WeightsError, load_strict, load_trunk, read_state_dict, unwrap_state_dict
from ...configs import HRNetConfig
from ...hub.layouts import get_layout
from ...representations import HRNetV2p

__all__ = ['HRNetV2pBackbone', 'MMDET_KEY_MAP', 'load_backbone_weights', 'convert_official_detection_state_dict']


class HRNetV2pBackbone(HRNet):
    """Trunk + V2p pyramid. Level ``k`` has stride ``4 * conv_stride * 2**k`` and ``out_channels``.

    Args:
        cfg: trunk variant (``get_config('hrnet_w32')``).
        out_channels: pyramid width (256 as in the paper).
        num_levels: pyramid levels (5).
        conv_stride: 1 (strides 4..64, Faster/Mask R-CNN) or 2 (strides 8..128, RetinaNet/FCOS).
        norm_eval: keep the trunk's BatchNorms in eval mode while training (the official
            ``norm_eval=True``; sensible with ImageNet weights and small detection batches).
    """

    def __init__(self, cfg: HRNetConfig, out_channels: int = 256, num_levels: int = 5, conv_stride: int = 1,
                 norm_eval: bool = False, in_chans: int = 3):
        super().__init__(cfg, in_chans=in_chans)
        self.neck = HRNetV2p(self.branch_channels, out_channels, num_levels, conv_stride=conv_stride)
        self.out_channels = out_channels
        self.level_names = [str(k) for k in range(num_levels)]
        self.strides = list(self.neck.strides)
        self.norm_eval = norm_eval

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        levels = self.neck(self.forward_stages(self.forward_stem(x)))
        return OrderedDict(zip(self.level_names, levels))


# An official HRNet-Object-Detection / mmdetection checkpoint -> our detectors: the ``mmdet`` source
# layout of the weight hub (trunk under ``backbone.``, the HRFPN neck moved under ``backbone.neck.``,
# mmdetection's RPN / RoI heads dropped), whose key map is data in :mod:`hrnet_zoo.hub.layouts`.
MMDET_KEY_MAP = get_layout('mmdet').key_map


def convert_official_detection_state_dict(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The trunk + neck keys of an official mmdetection checkpoint (bare or under ``state_dict``)
    in our detectors' layout: :data:`MMDET_KEY_MAP` applied."""
    return MMDET_KEY_MAP.apply(unwrap_state_dict(state))


def load_backbone_weights(model: nn.Module, source: Union[str, os.PathLike, Mapping[str, torch.Tensor]]) -> List[str]:
    """Initialise a detector's backbone (keys ``backbone.*``) from ``source``: ``'imagenet'``
    (timm's weights of ``model.pretrained_cfg['trunk']``) or a classifier checkpoint initialise
    the trunk (the neck stays new); an official HRNet-Object-Detection / mmdetection checkpoint
    (``backbone.*`` + ``neck.*``) initialises the trunk and the HRFPN neck (:data:`MMDET_KEY_MAP`).
    A path or a state_dict; returns the keys loaded. Errors name the file and the keys."""
    if isinstance(source, (str, os.PathLike)) and str(source) == 'imagenet':
        return load_trunk(model, 'imagenet', prefix='backbone.')
    is_path = isinstance(source, (str, os.PathLike))
    state, where = (read_state_dict(source), str(source)) if is_path else (unwrap_state_dict(source), '<state_dict>')
    if not any(k.startswith(('neck.', 'module.neck.')) for k in state):  # a classifier (trunk keys only)
        return _with_source(where, load_trunk, model, state, prefix='backbone.')
    state = MMDET_KEY_MAP.apply(state)
    loaded = _with_source(where, load_trunk, model, state, prefix='backbone.')
    neck = {k[len('backbone.neck.'):]: v for k, v in state.items() if k.startswith('backbone.neck.')}
    load_strict(model.backbone.neck, neck, f'{where} (HRFPN neck, neck.* keys)')
    return loaded + ['backbone.neck.' + k for k in neck]


def _with_source(where: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its :class:`WeightsError` naming the file ``where`` (read once and
    passed on as a state_dict) instead of ``<state_dict>``."""
    try:
        return fn(*args, **kwargs)
    except WeightsError as e:
        raise type(e)(str(e).replace('<state_dict>', where, 1)) from None
