"""HRNetV1 for human pose (paper Sec. 4.1): the trunk whose last stage fuses only into the
high-resolution branch, and a 1x1 conv (``final_layer``) from that branch to K heatmaps at 1/4 of
the input, as in the official deep-high-resolution-net.pytorch ``PoseHighResolutionNet``
(``lib/models/pose_hrnet.py``, ``FINAL_CONV_KERNEL: 1`` in ``experiments/coco/hrnet/*.yaml``).

The official checkpoints' keys (``conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4``,
``final_layer``) are exactly this model's; the key map (:data:`~.specs.OFFICIAL_KEY_MAP`) only
strips ``module.``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig, get_config
from ..codecs import DEFAULT_CODEC
from ..topdown import check_flip_pairs

__all__ = ['PoseHRNet']


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
    """

    def __init__(self, cfg: Union[HRNetConfig, str], num_keypoints: int = 17, in_chans: int = 3,
                 flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                 input_size: Tuple[int, int] = (256, 192), pretrained_cfg: Optional[Dict[str, Any]] = None):
        if num_keypoints < 1:
            raise ValueError(f'num_keypoints must be positive, got {num_keypoints}')
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
        self.final_layer = nn.Conv2d(self.branch_channels[0], num_keypoints, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    @property
    def variant(self) -> Optional[str]:
        """The registered name the model was built as (``pretrained_cfg['architecture']``)."""
        return self.pretrained_cfg.get('architecture')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(super().forward(x)[0])
