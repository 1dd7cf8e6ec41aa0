"""HRNetV2 + OCR (object-contextual representations, Yuan et al., ECCV 2020), the segmentation
head of the same authors' ``HRNet-OCR`` code (``lib/models/seg_hrnet_ocr.py``), with its module
names so official checkpoints map with the ``model.`` prefix only:

- ``aux_head``: 1x1 conv (+bias) -> BN -> ReLU -> 1x1 conv to classes: soft object regions;
- ``conv3x3_ocr``: 3x3 conv (+bias) 15C -> 512, BN, ReLU: pixel representations;
- ``ocr_gather_head`` (no weights): object-region representations = softmax-over-pixels(regions) @ pixels;
- ``ocr_distri_head``: pixel-region attention (``object_context_block``: ``f_pixel``, ``f_object``,
  ``f_down``, ``f_up``, key width 256) and ``conv_bn_dropout`` on [context, pixels] -> 512;
- ``cls_head``: 1x1 conv to classes.

In training mode ``forward`` returns ``{'out': logits, 'aux': aux_logits}`` (both at the input size;
the official loss weights them 1 and 0.4, ``LOSS.BALANCE_WEIGHTS``); in eval mode the logits only.
The official OCR configs use ``ALIGN_CORNERS=True``.

mmsegmentation's OCRNet (``configs/_base_/models/ocrnet_hr18.py``: ``decode_head.0`` an ``FCNHead``,
``decode_head.1`` an ``OCRHead``, ``mmseg/models/decode_heads/ocr_head.py``) is the same network with
``align_corners=False``, ``head_bias=False`` (its ``bottleneck`` 3x3 conv and the auxiliary head's
first conv have no bias), ``dropout=0`` (``dropout_ratio=-1``: no dropout anywhere) and the fusion
``fuse_upsample='factor'`` of :mod:`.models`; its query / key / value / out projections and the
``object_context_block.bottleneck`` are ours (``f_pixel`` / ``f_object`` / ``f_down`` / ``f_up``,
``conv_bn_dropout``) under other names: the ``mmseg`` key map of :mod:`hrnet_zoo.hub.layouts`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...configs import HRNetConfig
from ...layers import BN_MOMENTUM
from .models import SegmentationTrunk

OCR_MID_CHANNELS = 512
OCR_KEY_CHANNELS = 256
AUX_WEIGHT = 0.4


def bn_relu(channels: int) -> nn.Sequential:
    """``BatchNorm2d -> ReLU`` as one block (the official ``ModuleHelper.BNReLU``: keys ``0``)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def conv1x1_bn_relu(c_in: int, c_out: int) -> list:
    return [nn.Conv2d(c_in, c_out, 1, bias=False), bn_relu(c_out)]


def key_transform(c_in: int, c_key: int) -> nn.Sequential:
    """Two 1x1 conv-BN-ReLU layers (the query / key transforms ``f_pixel`` and ``f_object``)."""
    return nn.Sequential(*conv1x1_bn_relu(c_in, c_key), *conv1x1_bn_relu(c_key, c_key))


def gather_regions(pixels: torch.Tensor, regions: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Object-region representations ``(N, C, K, 1)``: each region's pixels weighted by the
    region map's softmax over all positions (``SpatialGather_Module``)."""
    weights = F.softmax(scale * regions.flatten(2), dim=2)  # (N, K, HW)
    return torch.bmm(weights, pixels.flatten(2).transpose(1, 2)).transpose(1, 2).unsqueeze(3)


class ObjectContextBlock(nn.Module):
    """Pixel-region relation: each pixel attends to the K region representations."""

    def __init__(self, channels: int, key_channels: int):
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = key_transform(channels, key_channels)
        self.f_object = key_transform(channels, key_channels)
        self.f_down = nn.Sequential(*conv1x1_bn_relu(channels, key_channels))
        self.f_up = nn.Sequential(*conv1x1_bn_relu(key_channels, channels))

    def forward(self, pixels: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        n, _, h, w = pixels.shape
        query = self.f_pixel(pixels).flatten(2).transpose(1, 2)   # (N, HW, key)
        key = self.f_object(regions).flatten(2)                    # (N, key, K)
        value = self.f_down(regions).flatten(2).transpose(1, 2)   # (N, K, key)
        attn = F.softmax(torch.bmm(query, key) * self.key_channels ** -0.5, dim=-1)
        context = torch.bmm(attn, value).transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    """Augment every pixel with its object context: concat [context, pixels] -> 1x1 conv, BN, ReLU, dropout."""

    def __init__(self, channels: int, key_channels: int, out_channels: int, dropout: float = 0.05):
        super().__init__()
        self.object_context_block = ObjectContextBlock(channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * channels, out_channels, 1, bias=False), bn_relu(out_channels), nn.Dropout2d(dropout))

    def forward(self, pixels: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return self.conv_bn_dropout(torch.cat([self.object_context_block(pixels, regions), pixels], 1))


class HRNetOCRSegmentation(SegmentationTrunk):
    """HRNetV2 + OCR. ``forward(x)``: eval -> logits ``(N, K, H, W)`` at the input size; training ->
    ``{'out', 'aux'}``. Any input of at least 32x32 px."""

    head_type = 'v2_ocr'

    def __init__(self, cfg: Union[HRNetConfig, str], num_classes: int, in_chans: int = 3, align_corners: bool = True,
                 mid_channels: int = OCR_MID_CHANNELS, key_channels: int = OCR_KEY_CHANNELS, dropout: float = 0.05,
                 pretrained_cfg: Optional[Dict[str, Any]] = None, head_bias: bool = True, fuse_upsample: str = 'size'):
        super().__init__(cfg, num_classes, in_chans, align_corners, pretrained_cfg, fuse_upsample)
        c = self.v2.out_channels
        self.conv3x3_ocr = nn.Sequential(nn.Conv2d(c, mid_channels, 3, padding=1, bias=head_bias),
                                         nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True))
        self.ocr_distri_head = SpatialOCR(mid_channels, key_channels, mid_channels, dropout)
        self.cls_head = nn.Conv2d(mid_channels, num_classes, 1)
        self.aux_head = nn.Sequential(nn.Conv2d(c, c, 1, bias=head_bias), nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
                                      nn.ReLU(inplace=True), nn.Conv2d(c, num_classes, 1))

    def forward_low_res(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{'out', 'aux'}`` logits at stride 4."""
        feats = self.forward_features(x)
        aux = self.aux_head(feats)
        pixels = self.conv3x3_ocr(feats)
        regions = gather_regions(pixels, aux)
        return {'out': self.cls_head(self.ocr_distri_head(pixels, regions)), 'aux': aux}

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        outs = {k: self.to_input_size(v, x) for k, v in self.forward_low_res(x).items()}
        return outs if self.training else outs['out']
