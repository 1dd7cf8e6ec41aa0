"""Detectors with the HRNetV2p backbone: thin subclasses of torchvision's ``FasterRCNN``,
``MaskRCNN``, ``RetinaNet`` and ``FCOS`` (their RPN, RoI heads, box coding, losses, post-processing,
``forward`` outputs and state_dict keys are torchvision's as they are) whose constructors build the
:class:`~.backbone.HRNetV2pBackbone` of a trunk and take the model's ``pretrained_cfg``.

Settings follow the paper / HRNet-Object-Detection (mmdetection) configs: five 256-channel levels
at strides 4-64 for the R-CNNs, one anchor size per level (32, 64, 128, 256, 512; ratios 0.5, 1, 2),
RoIAlign over the levels at strides 4-32; RetinaNet and FCOS use the pyramid at strides 8-128 (the
HRFPN ``stride=2`` option of mmdetection's configs). Images are padded to multiples of 64 so every
level's stride is exact.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ...configs import get_config
from .backbone import HRNetV2pBackbone, load_backbone_weights

__all__ = ['HRNetFasterRCNN', 'HRNetMaskRCNN', 'HRNetRetinaNet', 'HRNetFCOS', 'DETECTORS', 'build_detector',
           'detector_cfg']

RCNN_ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
SIZE_DIVISIBLE = 64


def detector_cfg(kind: str, trunk: str, num_classes: int, min_size: int, max_size: int) -> Dict[str, Any]:
    """The ``pretrained_cfg`` of a detector built without a spec (``build_detector``, the classes)."""
    return {'architecture': f'{kind}_hrnetv2p', 'task': 'detection', 'trunk': trunk, 'head': f'v2p_{kind}',
            'detector': kind, 'input_size': (3, min_size, max_size), 'num_classes': num_classes,
            'num_outputs': num_classes, 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
            'flip_pairs': [], 'first_conv': 'backbone.conv1'}


class HRNetDetectorMixin:
    """The constructor the four detector classes share: the HRNetV2p backbone of ``trunk``, then
    the torchvision detector with the class's :meth:`head_parts`, then ``pretrained_cfg`` and
    ``weights_backbone``.

    Args:
        trunk: HRNet variant of the backbone (``'hrnet_w32'``).
        num_classes: classes with the background (torchvision's convention: 91 for COCO).
        min_size, max_size: the detector's resize (short side, long side cap).
        weights_backbone: ``'imagenet'`` (timm's weights of ``trunk``), a classifier checkpoint, or an
            official HRNet-Object-Detection / mmdetection checkpoint (trunk and HRFPN neck), as a
            path or a state_dict (:func:`~.backbone.load_backbone_weights`).
        norm_eval: keep the trunk's BatchNorms in eval mode while training (default: when
            ``weights_backbone`` is given, as the official ``norm_eval=True``).
        pretrained_cfg: the model's timm-style config (the registered builders pass their spec's).
        kwargs: for the torchvision class (``box_score_thresh``, ``rpn_*``, ``topk_candidates``, ...).
    """

    kind: str = ''
    conv_stride: int = 1  # 1: levels at strides 4-64 (R-CNNs); 2: strides 8-128 (RetinaNet, FCOS)

    def __init__(self, trunk: str = 'hrnet_w32', num_classes: int = 91, min_size: int = 800, max_size: int = 1333,
                 weights_backbone: Any = None, norm_eval: Optional[bool] = None,
                 pretrained_cfg: Optional[Dict[str, Any]] = None, **kwargs: Any):
        if num_classes < 2:
            raise ValueError(f'num_classes must count the background too (>= 2), got {num_classes}')
        norm_eval = weights_backbone is not None if norm_eval is None else norm_eval
        backbone = HRNetV2pBackbone(get_config(trunk), conv_stride=self.conv_stride, norm_eval=norm_eval)
        super().__init__(backbone, num_classes, min_size=min_size, max_size=max_size,  # type: ignore[call-arg]
                         size_divisible=SIZE_DIVISIBLE, **self.head_parts(backbone), **kwargs)
        self.pretrained_cfg = dict(pretrained_cfg or detector_cfg(self.kind, trunk, num_classes, min_size, max_size))
        if weights_backbone is not None:
            load_backbone_weights(self, weights_backbone)

    @staticmethod
    def head_parts(backbone: HRNetV2pBackbone) -> Dict[str, Any]:
        """The torchvision constructor's anchor generator / RoI pools for this backbone."""
        return {}

    @property
    def variant(self) -> str:
        """The HRNet trunk (``'hrnet_w32'``)."""
        return self.pretrained_cfg['trunk']

    @property
    def detector_kind(self) -> str:
        return self.kind

    @property
    def num_classes(self) -> int:
        """Classes with the background (torchvision's convention: 91 for COCO)."""
        return int(self.pretrained_cfg['num_classes'])

    @property
    def input_size(self) -> Tuple[int, int]:
        """(min_size, max_size) of the detector's resize."""
        return tuple(self.pretrained_cfg['input_size'][1:])


def _rcnn_parts(backbone: HRNetV2pBackbone) -> Dict[str, Any]:
    return dict(rpn_anchor_generator=AnchorGenerator(RCNN_ANCHOR_SIZES, (ASPECT_RATIOS,) * len(RCNN_ANCHOR_SIZES)),
                box_roi_pool=MultiScaleRoIAlign(backbone.level_names[:4], output_size=7, sampling_ratio=2))


class HRNetFasterRCNN(HRNetDetectorMixin, FasterRCNN):
    """torchvision's ``FasterRCNN`` on HRNetV2p (paper Table VIII); arguments: :class:`HRNetDetectorMixin`."""

    kind = 'fasterrcnn'
    head_parts = staticmethod(_rcnn_parts)


class HRNetMaskRCNN(HRNetDetectorMixin, MaskRCNN):
    """torchvision's ``MaskRCNN`` on HRNetV2p (paper Table X); arguments: :class:`HRNetDetectorMixin`."""

    kind = 'maskrcnn'

    @staticmethod
    def head_parts(backbone: HRNetV2pBackbone) -> Dict[str, Any]:
        mask_pool = MultiScaleRoIAlign(backbone.level_names[:4], output_size=14, sampling_ratio=2)
        return dict(_rcnn_parts(backbone), mask_roi_pool=mask_pool)


class HRNetRetinaNet(HRNetDetectorMixin, RetinaNet):
    """torchvision's ``RetinaNet`` on HRNetV2p at strides 8-128 (3 scales x 3 ratios per level)."""

    kind, conv_stride = 'retinanet', 2

    @staticmethod
    def head_parts(backbone: HRNetV2pBackbone) -> Dict[str, Any]:
        sizes = tuple(tuple(int(s * 4 * 2 ** (k / 3)) for k in range(3)) for s in backbone.strides)
        return dict(anchor_generator=AnchorGenerator(sizes, (ASPECT_RATIOS,) * len(sizes)))


class HRNetFCOS(HRNetDetectorMixin, FCOS):
    """torchvision's ``FCOS`` on HRNetV2p at strides 8-128 (paper Table IX; one location per stride)."""

    kind, conv_stride = 'fcos', 2

    @staticmethod
    def head_parts(backbone: HRNetV2pBackbone) -> Dict[str, Any]:
        strides = backbone.strides
        return dict(anchor_generator=AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides)))


DETECTORS: Dict[str, type] = {cls.kind: cls for cls in (HRNetFasterRCNN, HRNetMaskRCNN, HRNetRetinaNet, HRNetFCOS)}


def build_detector(kind: str, variant: str = 'hrnet_w32', num_classes: int = 91, weights_backbone: Any = None,
                   norm_eval: Optional[bool] = None, min_size: int = 800, max_size: int = 1333,
                   **kwargs: Any) -> nn.Module:
    """A detector (``kind`` in ``DETECTORS``: fasterrcnn, maskrcnn, retinanet, fcos) on the HRNetV2p
    backbone of ``variant``; the registered builders (``fasterrcnn_hrnetv2p_w32``, ...) are the
    named entries. ``num_classes`` counts the background (torchvision's convention: 91 for COCO);
    extra ``kwargs`` go to the torchvision class (e.g. ``box_score_thresh``)."""
    if kind not in DETECTORS:
        raise ValueError(f'unknown detector {kind!r}; choose one of {tuple(DETECTORS)}')
    return DETECTORS[kind](variant, num_classes, min_size=min_size, max_size=max_size,
                           weights_backbone=weights_backbone, norm_eval=norm_eval, **kwargs)
