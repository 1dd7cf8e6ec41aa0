"""HRNetV2-W18 for facial landmarks (paper Sec. 4.4): the trunk with bilinear fusion upsampling
(the official HRNet-Facial-Landmark-Detection code interpolates bilinearly, align_corners=False,
in every fusion), the V2 representation (all branches bilinearly upsampled to 1/4 and concatenated,
270 channels for W18) mixed by a 1x1 conv + BN + ReLU, and a 1x1 conv to one heatmap per landmark
(``FINAL_CONV_KERNEL: 1`` in ``experiments/*/face_alignment_*_hrnet_w18.yaml``), 64x64 for a
256x256 face crop. BatchNorm momentum is 0.01 as in the official face code.

Official key layout: trunk keys as ours; the head is ``head.0`` (1x1 conv 270->270, with bias),
``head.1`` (BN), ``head.3`` (1x1 conv to landmarks). :data:`OFFICIAL_FACE_KEY_MAP` maps them to
``representation.mix.0``, ``representation.mix.1`` and ``final_layer``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig, get_config
from ...representations import HRNetV2
from .. import register_task_model
from ..pose.model import (check_num_outputs, load_strict, no_weights_error, read_state_dict, strip_prefix,
                          unwrap_checkpoint)
from .datasets import FACE_DATASETS

FACE_BN_MOMENTUM = 0.01
OFFICIAL_FACE_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    ('head.0.', 'representation.mix.0.'),
    ('head.1.', 'representation.mix.1.'),
    ('head.3.', 'final_layer.'),
)


class FaceHRNet(HRNet):
    """HRNetV2 landmark model: ``forward(x)`` -> heatmaps (N, L, ceil(H/4), ceil(W/4)).

    ``bn_momentum`` 0.01 is the official face setting (made for 60-epoch schedules); for runs of a
    few hundred steps use 0.1, or the BatchNorm running statistics lag far behind the weights.
    """

    def __init__(self, cfg: HRNetConfig, num_landmarks: int = 98, in_chans: int = 3,
                 flip_pairs: Sequence[Tuple[int, int]] = (), input_size: Tuple[int, int] = (256, 256),
                 bn_momentum: float = FACE_BN_MOMENTUM):
        if num_landmarks < 1:
            raise ValueError(f'num_landmarks must be positive, got {num_landmarks}')
        super().__init__(cfg.with_upsample('bilinear', False), in_chans=in_chans, multi_scale_output=True)
        self.num_landmarks = num_landmarks
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.input_size = tuple(input_size)
        cat = sum(self.branch_channels)
        self.representation = HRNetV2(self.branch_channels, mix_channels=cat, mode='bilinear', align_corners=False)
        self.final_layer = nn.Conv2d(cat, num_landmarks, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.representation(super().forward(x)))


def convert_official_face_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official HRNet-Facial-Landmark-Detection state_dict -> this model's keys: drop ``module.``,
    keep trunk keys, rename the head by :data:`OFFICIAL_FACE_KEY_MAP`."""
    out = {}
    for k, v in strip_prefix(unwrap_checkpoint(state_dict)).items():
        for old, new in OFFICIAL_FACE_KEY_MAP:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def load_official_face_checkpoint(model: FaceHRNet, path_or_state_dict) -> FaceHRNet:
    """Load an official face checkpoint (``HR18-WFLW.pth``, ...) or a state_dict in that layout
    strictly through :func:`convert_official_face_state_dict`."""
    path = path_or_state_dict if isinstance(path_or_state_dict, str) else '<state_dict>'
    sd = read_state_dict(path) if isinstance(path_or_state_dict, str) else path_or_state_dict
    sd = convert_official_face_state_dict(sd)
    check_num_outputs(sd, 'final_layer.weight', model.num_landmarks, 'landmarks')
    return load_strict(model, sd, path)


def build_face_model(num_landmarks: int = 98, arch: str = 'hrnet_w18', dataset: Optional[str] = None,
                     checkpoint_path: Optional[str] = None, **kwargs) -> FaceHRNet:
    """HRNetV2 landmark model on trunk ``arch``; ``dataset`` ('wflw', '300w', 'aflw', 'cofw')
    sets the landmark count and flip pairs."""
    if dataset is not None:
        spec = FACE_DATASETS[dataset]
        num_landmarks = spec.num_landmarks
        kwargs.setdefault('flip_pairs', spec.flip_pairs)
    model = FaceHRNet(get_config(arch), num_landmarks=num_landmarks, **kwargs)
    if checkpoint_path:
        load_official_face_checkpoint(model, checkpoint_path)
    return model


def _build(dataset: str, official: str, pretrained: bool, checkpoint_path: Optional[str], **kwargs):
    if pretrained and not checkpoint_path:
        raise no_weights_error(f'hrnet_w18_face_{dataset}', official,
                               'hrnet_zoo.tasks.landmarks.convert_official_face_state_dict')
    return build_face_model(dataset=dataset, checkpoint_path=checkpoint_path, **kwargs)


@register_task_model
def hrnet_w18_face_wflw(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV2-W18, 98 WFLW landmarks, 256x256 input (official HR18-WFLW.pth layout)."""
    return _build('wflw', 'HR18-WFLW.pth', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w18_face_300w(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV2-W18, 68 300W landmarks, 256x256 input (official HR18-300W.pth layout)."""
    return _build('300w', 'HR18-300W.pth', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w18_face_aflw(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV2-W18, 19 AFLW landmarks, 256x256 input (official HR18-AFLW.pth layout)."""
    return _build('aflw', 'HR18-AFLW.pth', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w18_face_cofw(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV2-W18, 29 COFW landmarks, 256x256 input (official HR18-COFW.pth layout)."""
    return _build('cofw', 'HR18-COFW.pth', pretrained, checkpoint_path, **kwargs)
