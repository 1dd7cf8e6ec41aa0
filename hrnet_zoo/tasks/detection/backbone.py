"""HRNetV2p as a torchvision detection backbone: the HRNet trunk (nearest-neighbour fusion, as
the official HRNet-Object-Detection backbone and the ImageNet weights) followed by the HRFPN neck
(:class:`~hrnet_zoo.representations.HRNetV2p`). ``forward`` returns the ``OrderedDict`` of levels
``'0'..'4'`` that torchvision's detectors expect, and ``out_channels`` (256) tells their heads.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Mapping

import torch
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig
from ...representations import HRNetV2p

__all__ = ['HRNetV2pBackbone', 'convert_official_detection_state_dict']


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


def convert_official_detection_state_dict(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keys of an official HRNet-Object-Detection (mmdetection) checkpoint that fit our detectors:
    ``backbone.*`` -> ``backbone.*`` (the trunk), ``neck.*`` -> ``backbone.neck.*`` (HRFPN:
    ``reduction_conv.0``, ``fpn_conv.k``). mmdetection's RPN / RoI heads have another layout than
    torchvision's and are not converted (they start from scratch)."""
    if 'state_dict' in state and isinstance(state['state_dict'], Mapping):
        state = state['state_dict']
    out = {}
    for k, v in state.items():
        if k.startswith('module.'):
            k = k[len('module.'):]
        if k.startswith('backbone.'):
            out[k] = v
        elif k.startswith('neck.'):
            out['backbone.' + k] = v
    return out
