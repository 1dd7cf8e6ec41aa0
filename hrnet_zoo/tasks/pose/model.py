"""HRNetV1 for human pose (paper Sec. 4.1): the trunk whose last stage fuses only into the
high-resolution branch, and a 1x1 conv (``final_layer``) from that branch to K heatmaps at 1/4 of
the input, as in the official deep-high-resolution-net.pytorch ``PoseHighResolutionNet``
(``lib/models/pose_hrnet.py``, ``FINAL_CONV_KERNEL: 1`` in ``experiments/coco/hrnet/*.yaml``).

Official checkpoints: their state_dict keys are the trunk's (``conv1, bn1, conv2, bn2, layer1,
transition1..3, stage2..4``) plus ``final_layer.weight/bias``, which are exactly this model's
keys; :func:`convert_official_pose_state_dict` only removes a ``module.`` (DataParallel) prefix.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig, get_config
from .. import register_task_model
from ..topdown import COCO_FLIP_PAIRS, check_flip_pairs


class PoseHRNet(HRNet):
    """HRNetV1 keypoint model: ``forward(x)`` -> heatmaps (N, K, ceil(H/4), ceil(W/4))."""

    def __init__(self, cfg: HRNetConfig, num_keypoints: int = 17, in_chans: int = 3,
                 flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                 input_size: Tuple[int, int] = (256, 192)):
        if num_keypoints < 1:
            raise ValueError(f'num_keypoints must be positive, got {num_keypoints}')
        super().__init__(cfg, in_chans=in_chans, multi_scale_output=False)
        self.num_keypoints = num_keypoints
        if flip_pairs is None:  # COCO's left/right pairs for 17 keypoints, else none known
            flip_pairs = COCO_FLIP_PAIRS if num_keypoints == 17 else ()
        check_flip_pairs(flip_pairs, num_keypoints)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.input_size = tuple(input_size)  # (height, width) the model was configured for
        self.final_layer = nn.Conv2d(self.branch_channels[0], num_keypoints, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(super().forward(x)[0])


def strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str = 'module.') -> Dict[str, torch.Tensor]:
    """Drop a leading ``prefix`` (``module.`` from DataParallel/DDP) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def unwrap_checkpoint(obj) -> Dict[str, torch.Tensor]:
    """A state_dict from a loaded checkpoint: the dict itself or its ``state_dict`` / ``model``."""
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'best_state_dict'):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    raise ValueError(f'expected a state_dict (a dict of tensors), got {type(obj).__name__}')


def convert_official_pose_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official deep-high-resolution-net.pytorch pose state_dict -> this model's keys.

    The key map is the identity after removing ``module.``: ``conv1.*, bn1.*, conv2.*, bn2.*,
    layer1.*, transition{1,2,3}.*, stage{2,3,4}.*`` and ``final_layer.*`` keep their names.
    """
    return strip_prefix(unwrap_checkpoint(state_dict))


def check_num_outputs(state_dict: Dict[str, torch.Tensor], key: str, expected: int, what: str) -> None:
    """Clear error when a checkpoint's head predicts a different number of keypoints/landmarks."""
    if key not in state_dict:
        raise KeyError(f'checkpoint has no {key!r}; is it an official {what} checkpoint?')
    got = state_dict[key].shape[0]
    if got != expected:
        raise ValueError(f'the checkpoint predicts {got} {what} ({key} has shape {tuple(state_dict[key].shape)}) '
                         f'but the model was built for {expected}; build it with num_{what}={got}')


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Load tensors from a ``.safetensors`` file or a legacy ``.pth`` (``weights_only=True``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        return unwrap_checkpoint(torch.load(path, map_location='cpu', weights_only=True))
    except Exception as e:  # truncated / not a torch file
        raise ValueError(f'could not read checkpoint {path!r}: {e}') from e


def load_strict(model: nn.Module, state_dict: Dict[str, torch.Tensor], path: str = '<state_dict>') -> nn.Module:
    """``load_state_dict(strict=True)`` with an error naming the file and the mismatched keys.
    BatchNorm ``num_batches_tracked`` buffers absent from old checkpoints are filled in."""
    own = model.state_dict()
    state_dict = dict(state_dict)
    for k, v in own.items():
        if k.endswith('num_batches_tracked') and k not in state_dict:
            state_dict[k] = v
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise KeyError(f'{path}: state_dict does not match {type(model).__name__}: missing keys '
                       f'{missing[:8]}{"..." if len(missing) > 8 else ""}, unexpected keys '
                       f'{unexpected[:8]}{"..." if len(unexpected) > 8 else ""}')
    bad = [k for k in own if own[k].shape != state_dict[k].shape]
    if bad:
        raise ValueError(f'{path}: shape mismatch for {bad[:8]} (e.g. {bad[0]}: checkpoint '
                         f'{tuple(state_dict[bad[0]].shape)} vs model {tuple(own[bad[0]].shape)}); wrong width?')
    model.load_state_dict(state_dict, strict=True)
    return model


def load_official_pose_checkpoint(model: PoseHRNet, path_or_state_dict) -> PoseHRNet:
    """Load an official pose checkpoint (``pose_hrnet_w32_256x192.pth``, ...) or a state_dict in
    that layout into ``model`` strictly, through :func:`convert_official_pose_state_dict`."""
    path = path_or_state_dict if isinstance(path_or_state_dict, str) else '<state_dict>'
    sd = read_state_dict(path) if isinstance(path_or_state_dict, str) else path_or_state_dict
    sd = convert_official_pose_state_dict(sd)
    check_num_outputs(sd, 'final_layer.weight', model.num_keypoints, 'keypoints')
    return load_strict(model, sd, path)


def no_weights_error(name: str, official_file: str, loader: str) -> RuntimeError:
    return RuntimeError(
        f'hrnet-zoo publishes no weights for {name!r} yet. Download the official checkpoint '
        f'({official_file}) yourself and pass checkpoint_path=<file> (loaded offline through the '
        f'documented key map, see {loader}), or use pretrained=False.')


POSE_VARIANTS = {
    # name: (trunk, input (H, W), official checkpoint file name)
    'hrnet_w32_pose_coco_256x192': ('hrnet_w32', (256, 192), 'pose_hrnet_w32_256x192.pth'),
    'hrnet_w32_pose_coco_384x288': ('hrnet_w32', (384, 288), 'pose_hrnet_w32_384x288.pth'),
    'hrnet_w48_pose_coco_256x192': ('hrnet_w48', (256, 192), 'pose_hrnet_w48_256x192.pth'),
    'hrnet_w48_pose_coco_384x288': ('hrnet_w48', (384, 288), 'pose_hrnet_w48_384x288.pth'),
}


def build_pose_model(width: int = 32, num_keypoints: int = 17, arch: Optional[str] = None,
               input_size: Tuple[int, int] = (256, 192), checkpoint_path: Optional[str] = None,
               **kwargs) -> PoseHRNet:
    """Generic HRNetV1 pose model on trunk ``arch`` (default ``f'hrnet_w{width}'``, any entry of
    the variant table, e.g. ``'hrnet_w18_small'``), optionally loading an official checkpoint."""
    model = PoseHRNet(get_config(arch or f'hrnet_w{width}'), num_keypoints=num_keypoints,
                      input_size=input_size, **kwargs)
    if checkpoint_path:
        load_official_pose_checkpoint(model, checkpoint_path)
    return model


def _build(name: str, pretrained: bool, checkpoint_path: Optional[str], **kwargs) -> PoseHRNet:
    arch, size, official = POSE_VARIANTS[name]
    if pretrained and not checkpoint_path:
        raise no_weights_error(name, official, 'hrnet_zoo.tasks.pose.convert_official_pose_state_dict')
    kwargs.setdefault('input_size', size)
    return build_pose_model(arch=arch, checkpoint_path=checkpoint_path, **kwargs)


@register_task_model
def hrnet_w32_pose_coco_256x192(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV1-W32 for COCO keypoints at 256x192 (28.5M params; paper: 73.4 AP / 74.4 ImageNet-init)."""
    return _build('hrnet_w32_pose_coco_256x192', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w32_pose_coco_384x288(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV1-W32 for COCO keypoints at 384x288 (28.5M params)."""
    return _build('hrnet_w32_pose_coco_384x288', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w48_pose_coco_256x192(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV1-W48 for COCO keypoints at 256x192 (63.6M params)."""
    return _build('hrnet_w48_pose_coco_256x192', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_w48_pose_coco_384x288(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """HRNetV1-W48 for COCO keypoints at 384x288 (63.6M params; paper: 76.3 AP on val)."""
    return _build('hrnet_w48_pose_coco_384x288', pretrained, checkpoint_path, **kwargs)


@register_task_model
def hrnet_pose(pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs):
    """Generic builder: ``create_model('hrnet_pose', width=32, num_keypoints=17)``; ``arch`` picks
    any trunk of the variant table (``arch='hrnet_w18_small'``)."""
    if pretrained and not checkpoint_path:
        raise no_weights_error('hrnet_pose', 'pose_hrnet_w*_*.pth', 'convert_official_pose_state_dict')
    return build_pose_model(checkpoint_path=checkpoint_path, **kwargs)
