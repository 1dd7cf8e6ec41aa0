"""HRNetV1 for human pose (paper Sec. 4.1): the trunk whose last stage fuses only into the
high-resolution branch, and a 1x1 conv (``final_layer``) from that branch to K heatmaps at 1/4 of
the input, as in the official deep-high-resolution-net.pytorch ``PoseHighResolutionNet``
(``lib/models/pose_hrnet.py``, ``FINAL_CONV_KERNEL: 1`` in ``experiments/coco/hrnet/*.yaml``).

The official checkpoints' keys (``conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4``,
``final_layer``) are exactly this model's; the key map (:data:`~.specs.OFFICIAL_KEY_MAP`) only
strips ``module.``. mmpose's body / animal HRNets are the same network (``TopdownHeatmapSimpleHead`` /
``HeatmapHead`` with no deconvolution: one 1x1 conv), its ``udp_regress`` models with three maps
per keypoint (``maps_per_keypoint=3``: disc, x and y offset).

:class:`PoseHRNetV2` is mmpose's hand model (HRNetV2-W18, ``hand_2d_keypoint/topdown_heatmap``):
the landmark network of :class:`~hrnet_zoo.tasks.landmarks.FaceHRNet` (bilinear fusions, the V2
concat of 270 channels, 1x1 conv + BN + ReLU, 1x1 conv to K heatmaps) with the pose interface.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig, get_config
from ..codecs import DEFAULT_CODEC
from ..landmarks.models import FaceHRNet
from ..topdown import check_flip_pairs

__all__ = ['PoseHRNet', 'PoseHRNetV2']


def _default_flip_pairs(num_keypoints: int) -> Tuple[Tuple[int, int], ...]:
    from .specs import COCO_FLIP_PAIRS  # COCO's left/right pairs for 17 keypoints, else none known
    return COCO_FLIP_PAIRS if num_keypoints == 17 else ()


class PoseHRNet(HRNet):
    """HRNetV1 keypoint model: ``forward(x)`` -> heatmaps (N, K, ceil(H/4), ceil(W/4)).

    Args:
        cfg: the trunk, an :class:`~hrnet_zoo.HRNetConfig` or a variant name (``'hrnet_w32'``).
        num_keypoints: K, the heatmaps predicted.
        flip_pairs: left/right keypoint pairs for flip test / flip augmentation (default COCO's
            for 17 keypoints, else none).
        input_size: the (height, width) crop the model is configured for.
        pretrained_cfg: the timm-style config of a named model (its spec's); without one a
            default config describing this construction is made (heatmap codec ``'udp'``, the
            default of generic models: see :mod:`~hrnet_zoo.tasks.pose.specs`).
        maps_per_keypoint: heatmaps per keypoint: 1, or 3 for mmpose's combined targets (a disc
            and the x / y offsets, decoded by the ``mmpose_udp_combined`` codecs).
    """

    def __init__(self, cfg: Union[HRNetConfig, str], num_keypoints: int = 17, in_chans: int = 3,
                 flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                 input_size: Tuple[int, int] = (256, 192), pretrained_cfg: Optional[Dict[str, Any]] = None,
                 maps_per_keypoint: int = 1):
        if num_keypoints < 1 or maps_per_keypoint not in (1, 3):
            raise ValueError(f'num_keypoints must be positive and maps_per_keypoint 1 or 3, got {num_keypoints}, '
                             f'{maps_per_keypoint}')
        trunk = cfg if isinstance(cfg, str) else None
        super().__init__(get_config(cfg) if isinstance(cfg, str) else cfg, in_chans=in_chans,
                         multi_scale_output=False)
        self.num_keypoints = num_keypoints
        flip_pairs = _default_flip_pairs(num_keypoints) if flip_pairs is None else flip_pairs
        check_flip_pairs(flip_pairs, num_keypoints)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.input_size = tuple(input_size)  # (height, width) the model was configured for
        self.pretrained_cfg = dict(pretrained_cfg) if pretrained_cfg else {
            'architecture': type(self).__name__, 'task': 'pose', 'trunk': trunk, 'head': 'v1',
            'input_size': (in_chans, *self.input_size), 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
            'num_keypoints': num_keypoints, 'num_outputs': num_keypoints,
            'flip_pairs': [list(p) for p in self.flip_pairs], 'license': None, 'hf_hub_id': None,
            'codec': DEFAULT_CODEC}
        self.maps_per_keypoint = maps_per_keypoint
        self.final_layer = nn.Conv2d(self.branch_channels[0], num_keypoints * maps_per_keypoint, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    @property
    def variant(self) -> Optional[str]:
        """The registered name the model was built as (``pretrained_cfg['architecture']``)."""
        return self.pretrained_cfg.get('architecture')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(super().forward(x)[0])


class PoseHRNetV2(FaceHRNet):
    """HRNetV2 keypoint model (mmpose's hand HRNetV2-W18): ``forward(x)`` -> heatmaps (N, K,
    ceil(H/4), ceil(W/4)); the network of :class:`~hrnet_zoo.tasks.landmarks.FaceHRNet` (its keys
    ``representation.mix.{0,1}``, ``final_layer``), with ``num_keypoints`` and the pose defaults
    (BatchNorm momentum 0.1, mmpose's; no flip pairs unless given)."""

    def __init__(self, cfg: Union[HRNetConfig, str], num_keypoints: int = 21, in_chans: int = 3,
                 flip_pairs: Sequence[Tuple[int, int]] = (), input_size: Tuple[int, int] = (256, 256),
                 bn_momentum: float = 0.1, align_corners: bool = False,
                 pretrained_cfg: Optional[Dict[str, Any]] = None):
        check_flip_pairs(flip_pairs, num_keypoints)
        super().__init__(cfg, num_landmarks=num_keypoints, in_chans=in_chans, flip_pairs=flip_pairs,
                         input_size=input_size, bn_momentum=bn_momentum, align_corners=align_corners,
                         pretrained_cfg=pretrained_cfg)
        self.num_keypoints = num_keypoints
        if pretrained_cfg is None:
            cfg_ = dict(self.pretrained_cfg, task='pose', num_keypoints=num_keypoints)
            cfg_.pop('num_landmarks', None)
            self.pretrained_cfg = cfg_
