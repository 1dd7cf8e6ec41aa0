"""Detectors with the HRNetV2p backbone, built from torchvision's detection machinery
(``FasterRCNN``, ``MaskRCNN``, ``RetinaNet``, ``FCOS``: their RPN, RoI heads, box coding, losses
and post-processing are used as they are).

Settings follow the paper / HRNet-Object-Detection (mmdetection) configs: five 256-channel levels
at strides 4-64 for the R-CNNs, one anchor size per level (32, 64, 128, 256, 512; ratios 0.5, 1, 2),
RoIAlign over the levels at strides 4-32; RetinaNet and FCOS use the pyramid at strides 8-128 (the
HRFPN ``stride=2`` option of mmdetection's configs). Images are padded to multiples of 64 so every
level's stride is exact.
"""
from __future__ import annotations

from typing import Optional

from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ...configs import get_config
from ..segmentation.model import load_backbone_weights
from .. import register_task_model
from .backbone import HRNetV2pBackbone

__all__ = ['build_detector', 'fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32', 'fasterrcnn_hrnetv2p_w40',
           'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32']

RCNN_ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
DETECTORS = ('fasterrcnn', 'maskrcnn', 'retinanet', 'fcos')


def make_backbone(variant: str, weights_backbone=None, conv_stride: int = 1,
                  norm_eval: Optional[bool] = None) -> HRNetV2pBackbone:
    """The HRNetV2p backbone of ``variant``; ``weights_backbone`` = ``'imagenet'`` (timm's weights,
    downloaded), a checkpoint path or a state_dict initialises the trunk (the neck is new)."""
    if norm_eval is None:
        norm_eval = weights_backbone is not None
    backbone = HRNetV2pBackbone(get_config(variant), conv_stride=conv_stride, norm_eval=norm_eval)
    backbone.variant = variant
    if weights_backbone is not None:
        load_backbone_weights(backbone, weights_backbone)
    return backbone


def build_detector(kind: str, variant: str = 'hrnet_w32', num_classes: int = 91, weights_backbone=None,
                   norm_eval: Optional[bool] = None, min_size: int = 800, max_size: int = 1333,
                   **kwargs) -> nn.Module:
    """A torchvision detector (``kind`` in ``DETECTORS``) on the HRNetV2p backbone of ``variant``.

    ``num_classes`` counts the background for the R-CNNs (torchvision's convention: 91 for COCO);
    extra ``kwargs`` go to the torchvision class (e.g. ``box_score_thresh``).
    """
    if kind not in DETECTORS:
        raise ValueError(f'unknown detector {kind!r}; choose one of {DETECTORS}')
    if num_classes < 2:
        raise ValueError(f'num_classes must count the background too (>= 2), got {num_classes}')
    common = dict(min_size=min_size, max_size=max_size, size_divisible=64, **kwargs)
    if kind in ('fasterrcnn', 'maskrcnn'):
        backbone = make_backbone(variant, weights_backbone, 1, norm_eval)
        anchors = AnchorGenerator(RCNN_ANCHOR_SIZES, (ASPECT_RATIOS,) * len(RCNN_ANCHOR_SIZES))
        box_pool = MultiScaleRoIAlign(backbone.level_names[:4], output_size=7, sampling_ratio=2)
        if kind == 'fasterrcnn':
            model = FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors, box_roi_pool=box_pool, **common)
        else:
            mask_pool = MultiScaleRoIAlign(backbone.level_names[:4], output_size=14, sampling_ratio=2)
            model = MaskRCNN(backbone, num_classes, rpn_anchor_generator=anchors, box_roi_pool=box_pool,
                             mask_roi_pool=mask_pool, **common)
    elif kind == 'retinanet':
        backbone = make_backbone(variant, weights_backbone, 2, norm_eval)
        sizes = tuple(tuple(int(s * 4 * 2 ** (k / 3)) for k in range(3)) for s in backbone.strides)
        anchors = AnchorGenerator(sizes, (ASPECT_RATIOS,) * len(sizes))
        model = RetinaNet(backbone, num_classes, anchor_generator=anchors, **common)
    else:
        backbone = make_backbone(variant, weights_backbone, 2, norm_eval)
        anchors = AnchorGenerator(tuple((s,) for s in backbone.strides), ((1.0,),) * len(backbone.strides))
        model = FCOS(backbone, num_classes, anchor_generator=anchors, **common)
    model.variant = variant
    model.detector_kind = kind
    return model


def _check_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(f'no detection weights are published for {name!r}; use pretrained=False with '
                         "weights_backbone='imagenet' (or a path) to start from ImageNet weights")


@register_task_model
def fasterrcnn_hrnetv2p_w18(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """Faster R-CNN, HRNetV2p-W18 (paper Table VIII)."""
    _check_pretrained('fasterrcnn_hrnetv2p_w18', pretrained)
    return build_detector('fasterrcnn', 'hrnet_w18', num_classes, weights_backbone, **kwargs)


@register_task_model
def fasterrcnn_hrnetv2p_w32(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """Faster R-CNN, HRNetV2p-W32 (paper Table VIII)."""
    _check_pretrained('fasterrcnn_hrnetv2p_w32', pretrained)
    return build_detector('fasterrcnn', 'hrnet_w32', num_classes, weights_backbone, **kwargs)


@register_task_model
def fasterrcnn_hrnetv2p_w40(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """Faster R-CNN, HRNetV2p-W40 (paper Table VIII)."""
    _check_pretrained('fasterrcnn_hrnetv2p_w40', pretrained)
    return build_detector('fasterrcnn', 'hrnet_w40', num_classes, weights_backbone, **kwargs)


@register_task_model
def maskrcnn_hrnetv2p_w32(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """Mask R-CNN, HRNetV2p-W32 (paper Table X)."""
    _check_pretrained('maskrcnn_hrnetv2p_w32', pretrained)
    return build_detector('maskrcnn', 'hrnet_w32', num_classes, weights_backbone, **kwargs)


@register_task_model
def retinanet_hrnetv2p_w32(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """RetinaNet, HRNetV2p-W32 (pyramid at strides 8-128)."""
    _check_pretrained('retinanet_hrnetv2p_w32', pretrained)
    return build_detector('retinanet', 'hrnet_w32', num_classes, weights_backbone, **kwargs)


@register_task_model
def fcos_hrnetv2p_w32(pretrained: bool = False, num_classes: int = 91, weights_backbone=None, **kwargs):
    """FCOS, HRNetV2p-W32 (paper Table IX; pyramid at strides 8-128)."""
    _check_pretrained('fcos_hrnetv2p_w32', pretrained)
    return build_detector('fcos', 'hrnet_w32', num_classes, weights_backbone, **kwargs)
