"""HRNetV2-W18 for facial landmarks (paper Sec. 4.4): the trunk with bilinear fusion upsampling
(the official HRNet-Facial-Landmark-Detection code interpolates bilinearly, align_corners=False,
in every fusion), the V2 representation (all branches bilinearly upsampled to 1/4 and concatenated,
270 channels for W18) mixed by a 1x1 conv + BN + ReLU, and a 1x1 conv to one heatmap per landmark
(``FINAL_CONV_KERNEL: 1`` in ``experiments/*/face_alignment_*_hrnet_w18.yaml``), 64x64 for a
256x256 face crop. BatchNorm momentum is 0.01 as in the official face code.

Official key layout: trunk keys as ours; the head is ``head.0`` (1x1 conv 270->270, with bias),
``head.1`` (BN), ``head.3`` (1x1 conv to landmarks), mapped by the key map of
:mod:`hrnet_zoo.tasks.landmarks.specs` to ``representation.mix.0/1`` and ``final_layer``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ...backbone import HRNet
from ...configs import HRNET_CONFIGS, HRNetConfig, get_config
from ...representations import HRNetV2
from ..codecs import DEFAULT_CODEC

__all__ = ['FACE_BN_MOMENTUM', 'FaceHRNet']

FACE_BN_MOMENTUM = 0.01


class FaceHRNet(HRNet):
    """HRNetV2 landmark model: ``forward(x)`` -> heatmaps (N, L, ceil(H/4), ceil(W/4)).

    Args:
        cfg: the trunk, an :class:`HRNetConfig` or a variant name (``'hrnet_w18'``); its fusions
            are made bilinear.
        num_landmarks: heatmaps (L).
        flip_pairs: left/right landmark pairs (flip test and flip augmentation).
        input_size: (H, W) face crop the model is configured for.
        bn_momentum: 0.01 is the official face setting (made for 60-epoch schedules); for runs of a
            few hundred steps use 0.1, or the BatchNorm running statistics lag far behind the weights.
        align_corners: of the bilinear fusions and of the V2 upsampling (official: False).
        pretrained_cfg: the timm-style config (the named builders pass their spec's); without one
            the model gets a config describing what was built (heatmap codec ``'udp'``).
    """

    def __init__(self, cfg: Union[str, HRNetConfig], num_landmarks: int = 98, in_chans: int = 3,
                 flip_pairs: Sequence[Tuple[int, int]] = (), input_size: Tuple[int, int] = (256, 256),
                 bn_momentum: float = FACE_BN_MOMENTUM, align_corners: bool = False,
                 pretrained_cfg: Optional[Dict[str, Any]] = None):
        if num_landmarks < 1:
            raise ValueError(f'num_landmarks must be positive, got {num_landmarks}')
        trunk = cfg if isinstance(cfg, str) else _variant_name(cfg)
        cfg = get_config(cfg) if isinstance(cfg, str) else cfg
        super().__init__(cfg.with_upsample('bilinear', align_corners), in_chans=in_chans, multi_scale_output=True)
        self.num_landmarks = num_landmarks
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.input_size = tuple(input_size)
        self.align_corners = align_corners
        cat = sum(self.branch_channels)
        self.representation = HRNetV2(self.branch_channels, mix_channels=cat, mode='bilinear',
                                      align_corners=align_corners)
        self.final_layer = nn.Conv2d(cat, num_landmarks, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum
        self.pretrained_cfg = dict(pretrained_cfg) if pretrained_cfg is not None else {
            'architecture': type(self).__name__, 'task': 'landmarks', 'trunk': trunk, 'head': 'v2',
            'input_size': (in_chans, *self.input_size), 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
            'num_landmarks': num_landmarks, 'num_outputs': num_landmarks,
            'flip_pairs': [list(p) for p in self.flip_pairs], 'align_corners': align_corners,
            'bn_momentum': bn_momentum, 'first_conv': 'conv1', 'codec': DEFAULT_CODEC}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.representation(super().forward(x)))


def _variant_name(cfg: HRNetConfig) -> Optional[str]:
    """The registered variant whose trunk ``cfg`` is (fusion upsampling aside), if any."""
    return next((n for n, c in HRNET_CONFIGS.items()
                 if c == cfg.with_upsample(c.upsample_mode, c.align_corners)), None)
