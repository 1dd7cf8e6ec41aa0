"""HRNetV2 for semantic segmentation (paper Sec. 5.2): the trunk, the V2 representation (all four
branches upsampled bilinearly to 1/4 and concatenated, 15C channels), then the official head
``last_layer`` = 1x1 conv (+bias) -> BN -> ReLU -> 1x1 conv to the classes; the logits are
upsampled bilinearly to the input size.

Facts from the official HRNet-Semantic-Segmentation code (``lib/models/seg_hrnet.py``,
``lib/config/default.py``, ``experiments/cityscapes/seg_hrnet_w48_*.yaml``):
- every bilinear resize (fusion, V2 concat, loss/inference upsampling) uses
  ``config.MODEL.ALIGN_CORNERS``; its default is True (used by the OCR configs), the HRNetV2-W48
  Cityscapes configs set it to False. Our default is False (``align_corners`` chooses).
- the head is ``last_layer`` (keys ``last_layer.0`` conv 15C->15C with bias, ``last_layer.1`` BN,
  ``last_layer.3`` conv 15C->classes with bias, ``FINAL_CONV_KERNEL: 1``).
- checkpoints saved by their trainer hold the ``FullModel`` (``model.`` + our keys, and
  ``loss.criterion.weight`` when class weights were used): the key map of :mod:`.specs`.

mmsegmentation builds the same network (its ``FCNHead`` with ``input_transform='resize_concat'``,
``configs/_base_/models/fcn_hr18.py``) with two differences, both options here:

- ``head_bias=False``: its head conv before the BN (``ConvModule``, ``bias='auto'``) has no bias;
  the official ``last_layer.0`` has one. A bias right before a BN only shifts what the BN's mean
  removes, so the choice matters for the keys (and for exactness in eval mode), not for accuracy.
- ``fuse_upsample='factor'``: mmseg's fusion (``mmseg/models/backbones/hrnet.py`` ``HRModule``)
  upsamples a lower branch by ``2 ** (j - i)`` (bilinear, ``align_corners=False``) and then resizes
  the result to the target branch's exact size; the official code (``'size'``) resizes straight to
  that size. The two agree on inputs whose sides are multiples of 32 and differ elsewhere
  (a 13-row branch becomes 26 rows, then 25, instead of 25 directly).

The named models of :mod:`.specs` pass their ``pretrained_cfg``; a model built directly from a
config gets a default one (trunk, classes, ``align_corners``, ImageNet mean/std).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ...backbone import HRNet
from ...configs import HRNET_CONFIGS, HRNetConfig, get_config
from ...layers import BN_MOMENTUM
from ...representations import HRNetV2

__all__ = ['SegmentationTrunk', 'HRNetSegmentation', 'default_pretrained_cfg', 'FUSE_UPSAMPLE']

DEFAULT_INPUT_SIZE = (512, 1024)  # the Cityscapes training crop
# how a fusion brings a lower branch to a higher one's size: straight to it (official) | by 2**k, then to it (mmseg)
FUSE_UPSAMPLE = ('size', 'factor')


def trunk_name(cfg: HRNetConfig) -> Optional[str]:
    """The variant name of a trunk config (None for a custom one)."""
    return next((name for name, c in HRNET_CONFIGS.items() if c == cfg), None)


def default_pretrained_cfg(cfg: HRNetConfig, num_classes: int, head: str, align_corners: bool) -> Dict[str, Any]:
    """The ``pretrained_cfg`` of a model built from a config rather than a named spec."""
    trunk = trunk_name(cfg)
    return {'architecture': f'{trunk or "hrnet"}_seg_{head}', 'task': 'segmentation', 'trunk': trunk, 'head': head,
            'input_size': (3, *DEFAULT_INPUT_SIZE), 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
            'num_classes': num_classes, 'num_outputs': num_classes, 'flip_pairs': [], 'align_corners': align_corners,
            'official_checkpoint': None, 'metrics': {}, 'first_conv': 'conv1'}


class SegmentationTrunk(HRNet):
    """The HRNetV2 trunk shared by the segmentation heads: the fusion switched to bilinear with
    ``align_corners`` (as the official segmentation code), and the V2 concatenation (15C channels).

    ``cfg`` is a trunk config or a variant name (``'hrnet_w48'``); ``fuse_upsample`` one of
    :data:`FUSE_UPSAMPLE` (module docstring)."""

    head_type = 'v2'

    def __init__(self, cfg: Union[HRNetConfig, str], num_classes: int, in_chans: int = 3, align_corners: bool = False,
                 pretrained_cfg: Optional[Dict[str, Any]] = None, fuse_upsample: str = 'size'):
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if fuse_upsample not in FUSE_UPSAMPLE:
            raise ValueError(f'fuse_upsample must be one of {FUSE_UPSAMPLE}, got {fuse_upsample!r}')
        cfg = get_config(cfg) if isinstance(cfg, str) else cfg
        super().__init__(cfg.with_upsample('bilinear', align_corners), in_chans=in_chans)
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.fuse_upsample = fuse_upsample
        if fuse_upsample == 'factor':
            self._upsample_by_factor()
        default = pretrained_cfg or default_pretrained_cfg(cfg, num_classes, self.head_type, align_corners)
        self.pretrained_cfg = dict(default)
        self.v2 = HRNetV2(self.branch_channels, mode='bilinear', align_corners=align_corners)

    def _upsample_by_factor(self) -> None:
        """mmseg's fusion: every lower-branch path (1x1 conv + BN) of every fusion ends in an
        upsampling by ``2 ** (j - i)``; the fusion's own resize to the exact size follows. The
        parameter-free module appended to ``fuse_layers.{i}.{j}`` leaves the keys as they are."""
        for k in (2, 3, 4):
            for module in getattr(self, f'stage{k}'):
                for i, row in enumerate(module.fuse_layers):
                    for j in range(i + 1, len(row)):
                        row[j].append(nn.Upsample(scale_factor=2 ** (j - i), mode='bilinear',
                                                  align_corners=self.align_corners))

    @property
    def variant(self) -> Optional[str]:
        """The trunk variant (``'hrnet_w48'``)."""
        return self.pretrained_cfg.get('trunk')

    @property
    def input_size(self) -> Tuple[int, int]:
        """(H, W) the model is configured for (the official training crop)."""
        return tuple(self.pretrained_cfg['input_size'][-2:])

    @property
    def spec(self):
        """The :class:`~hrnet_zoo.tasks.TaskModelSpec` of a named model (None when built from a config)."""
        from ..registry import TASK_SPECS
        return TASK_SPECS.get(self.pretrained_cfg.get('architecture'))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> the HRNetV2 representation (15C channels at stride 4)."""
        return self.v2(self.forward_stages(self.forward_stem(x)))

    def to_input_size(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Stride-4 logits upsampled bilinearly to the input's size."""
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=self.align_corners)


class HRNetSegmentation(SegmentationTrunk):
    """HRNetV2 segmentation model. ``forward(x)`` returns logits ``(N, num_classes, H, W)`` at the
    input's size, for any input of at least 32x32 px (odd sizes too).

    Args:
        cfg: trunk variant (config or name); its fusion is switched to bilinear with ``align_corners``.
        num_classes: output classes (19 Cityscapes, 59 PASCAL-Context, 20 LIP).
        align_corners: the official ``MODEL.ALIGN_CORNERS`` (False for the HRNetV2 configs).
        final_conv_kernel: kernel of the classifier conv (official ``FINAL_CONV_KERNEL``, 1).
        pretrained_cfg: the timm-style config of a named model (set by its builder).
        head_bias: a bias in the head's first conv (official: yes; mmseg's ``decode_head.convs.0``: no).
        fuse_upsample: ``'size'`` (official) or ``'factor'`` (mmseg), see the module docstring.
    """

    def __init__(self, cfg: Union[HRNetConfig, str], num_classes: int, in_chans: int = 3,
                 align_corners: bool = False, final_conv_kernel: int = 1,
                 pretrained_cfg: Optional[Dict[str, Any]] = None, head_bias: bool = True, fuse_upsample: str = 'size'):
        super().__init__(cfg, num_classes, in_chans, align_corners, pretrained_cfg, fuse_upsample)
        c = self.v2.out_channels
        self.last_layer = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=head_bias),
            nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, num_classes, final_conv_kernel, padding=final_conv_kernel // 2),
        )
        nn.init.normal_(self.last_layer[3].weight, std=0.001)
        nn.init.zeros_(self.last_layer[3].bias)

    def forward_low_res(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at stride 4 (what the official model returns before the loss upsamples)."""
        return self.last_layer(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_input_size(self.forward_low_res(x), x)
