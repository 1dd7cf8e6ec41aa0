"""Representation heads (paper Sec. 3.3, Fig. 4) on the trunk's four branch outputs.

- :class:`HRNetV1`: the highest-resolution branch only (pose estimation).
- :class:`HRNetV2`: all branches upsampled to 1/4 and concatenated (15C channels), optionally mixed
  by a 1x1 conv (segmentation, landmarks).
- :class:`HRNetV2p`: the V2 representation reduced to ``out_channels`` and average-pooled to several
  levels, a 3x3 conv per level (detection; the official ``HRFPN``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import upsample_to
from .layers import conv_bn


class HRNetV1(nn.Module):
    """Keep the high-resolution representation, ignore the others."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        self.out_channels = in_channels[0]

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        return xs[0]


class HRNetV2(nn.Module):
    """Upsample every branch to the highest resolution and concatenate (``sum(in_channels)``
    channels, 15C for a standard HRNet). With ``mix_channels``, a 1x1 conv + BN + ReLU mixes them.
    """

    def __init__(self, in_channels: Sequence[int], mix_channels: Optional[int] = None,
                 mode: str = 'bilinear', align_corners: bool = False):
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners
        cat_channels = int(sum(in_channels))
        self.mix = conv_bn(cat_channels, mix_channels, kernel_size=1, bias=True) if mix_channels else None
        self.out_channels = mix_channels or cat_channels

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        ref = xs[0]
        y = torch.cat([ref] + [upsample_to(x, ref, self.mode, self.align_corners) for x in xs[1:]], dim=1)
        return y if self.mix is None else self.mix(y)


class HRNetV2p(nn.Module):
    """Multi-level pyramid from the V2 representation (the official ``HRFPN`` of
    HRNet-Object-Detection, ``mmdet/models/necks/hrfpn.py``): concat -> 1x1 conv (with bias, no
    norm) to ``out_channels`` -> average pooling with kernel = stride = 2**k -> a 3x3 conv (with
    bias) per level. Level ``k`` has stride ``4 * 2**k``. Keys as the official checkpoints:
    ``reduction_conv.0``, ``fpn_conv.{k}``; convs start kaiming-normal (a=1) with zero bias.

    One deliberate difference: pooling uses ``ceil_mode`` so a side that is not a multiple of the
    level's stride gives ``ceil(H / stride)`` (the official floor drops the border); on sides that
    are multiples of 64 (the detectors here pad to 64) the two are identical.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_levels: int = 5,
                 mode: str = 'bilinear', align_corners: bool = False, conv_stride: int = 1):
        super().__init__()
        self.concat = HRNetV2(in_channels, mode=mode, align_corners=align_corners)
        self.reduction_conv = nn.Sequential(nn.Conv2d(self.concat.out_channels, out_channels, 1))
        # conv_stride=2 (mmdetection's HRFPN ``stride`` option, used by its RetinaNet/FCOS configs)
        # makes the per-level 3x3 convs stride 2: levels at strides 8..128 instead of 4..64.
        self.fpn_conv = nn.ModuleList([
            nn.Conv2d(out_channels, out_channels, 3, stride=conv_stride, padding=1) for _ in range(num_levels)])
        self.out_channels = out_channels
        self.num_levels = num_levels
        self.strides = [4 * conv_stride * 2 ** k for k in range(num_levels)]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official HRFPN initialisation: kaiming-normal (a=1) weights, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        y = self.reduction_conv(self.concat(xs))
        levels = [y] + [F.avg_pool2d(y, 2 ** k, stride=2 ** k, ceil_mode=True) for k in range(1, self.num_levels)]
        return [conv(level) for conv, level in zip(self.fpn_conv, levels)]
