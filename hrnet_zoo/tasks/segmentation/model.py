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
  ``loss.criterion.weight`` when class weights were used): :func:`convert_official_state_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...backbone import HRNet
from ...configs import HRNetConfig, get_config
from ...layers import BN_MOMENTUM
from ...representations import HRNetV2
from .. import register_task_model

__all__ = ['HRNetSegmentation', 'SegModelSpec', 'SEG_MODELS', 'convert_official_state_dict',
           'load_official_checkpoint', 'load_backbone_weights', 'build_segmentation_model']


class SegmentationTrunk(HRNet):
    """The HRNetV2 trunk shared by the segmentation heads: the fusion switched to bilinear with
    ``align_corners`` (as the official segmentation code), and the V2 concatenation (15C channels)."""

    def __init__(self, cfg: HRNetConfig, num_classes: int, in_chans: int = 3, align_corners: bool = False):
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        super().__init__(cfg.with_upsample('bilinear', align_corners), in_chans=in_chans)
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.v2 = HRNetV2(self.branch_channels, mode='bilinear', align_corners=align_corners)

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
        cfg: trunk variant; its fusion is switched to bilinear with ``align_corners``.
        num_classes: output classes (19 Cityscapes, 59 PASCAL-Context, 20 LIP).
        align_corners: the official ``MODEL.ALIGN_CORNERS`` (False for the HRNetV2 configs).
        final_conv_kernel: kernel of the classifier conv (official ``FINAL_CONV_KERNEL``, 1).
    """

    def __init__(self, cfg: HRNetConfig, num_classes: int, in_chans: int = 3,
                 align_corners: bool = False, final_conv_kernel: int = 1):
        super().__init__(cfg, num_classes, in_chans, align_corners)
        c = self.v2.out_channels
        self.last_layer = nn.Sequential(
            nn.Conv2d(c, c, 1),
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


@dataclass(frozen=True)
class SegModelSpec:
    """A named segmentation model: trunk variant, classes, dataset and the paper/README reference."""
    variant: str
    num_classes: int
    dataset: str
    crop_size: tuple  # (H, W) training crop of the official config
    reference: str = ''
    head: str = 'v2'  # 'v2' (the paper's head, ``last_layer``) or 'ocr' (HRNetV2 + OCR)
    align_corners: bool = False  # the official config's MODEL.ALIGN_CORNERS


SEG_MODELS: Dict[str, SegModelSpec] = {
    'hrnet_w48_seg_cityscapes': SegModelSpec(
        'hrnet_w48', 19, 'cityscapes', (512, 1024),
        'HRNetV2-W48, Cityscapes val 81.1 mIoU (paper); 65.8M params, 696.2 GFLOPs at 1024x2048 (official README)'),
    'hrnet_w48_seg_pascal_context': SegModelSpec(
        'hrnet_w48', 59, 'pascal_context', (480, 480), 'HRNetV2-W48, PASCAL-Context 59 classes'),
    'hrnet_w48_seg_lip': SegModelSpec('hrnet_w48', 20, 'lip', (473, 473), 'HRNetV2-W48, LIP 20 classes'),
    'hrnet_w18_seg_cityscapes': SegModelSpec('hrnet_w18', 19, 'cityscapes', (512, 1024)),
    'hrnet_w18_small_seg_cityscapes': SegModelSpec('hrnet_w18_small', 19, 'cityscapes', (512, 1024)),
    'hrnet_w18_small_v2_seg_cityscapes': SegModelSpec('hrnet_w18_small_v2', 19, 'cityscapes', (512, 1024)),
    'hrnet_w18_seg_pascal_context': SegModelSpec('hrnet_w18', 59, 'pascal_context', (480, 480)),
    'hrnet_w18_seg_lip': SegModelSpec('hrnet_w18', 20, 'lip', (473, 473)),
    'hrnet_w48_ocr_seg_cityscapes': SegModelSpec(
        'hrnet_w48', 19, 'cityscapes', (512, 1024), 'HRNetV2-W48 + OCR, Cityscapes val 81.6 mIoU (official README)',
        head='ocr', align_corners=True),
    'hrnet_w48_ocr_seg_pascal_context': SegModelSpec(
        'hrnet_w48', 59, 'pascal_context', (520, 520), 'HRNetV2-W48 + OCR, PASCAL-Context 59 classes',
        head='ocr', align_corners=True),
    'hrnet_w48_ocr_seg_lip': SegModelSpec('hrnet_w48', 20, 'lip', (473, 473), 'HRNetV2-W48 + OCR, LIP',
                                          head='ocr', align_corners=True),
}


def _strip(key: str, prefixes) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def convert_official_state_dict(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map an official HRNet-Semantic-Segmentation checkpoint to our keys.

    Handles a ``{'state_dict': ...}`` wrapper, the trainer's ``FullModel`` prefix ``model.``
    (``tools/test.py`` strips the first 6 characters), a DataParallel ``module.`` prefix, and drops
    the loss's buffers (``loss.criterion.weight``, the Cityscapes class weights). Trunk and
    ``last_layer`` keys are otherwise identical to ours.
    """
    if 'state_dict' in state and isinstance(state['state_dict'], Mapping):
        state = state['state_dict']
    out = {}
    for k, v in state.items():
        k = _strip(k, ('module.',))
        if k.startswith('loss.'):
            continue
        out[_strip(k, ('model.', 'module.'))] = v
    return out


def load_official_checkpoint(model: nn.Module, path_or_state, strict: bool = True):
    """Load an official segmentation checkpoint (a path to a ``.pth`` read with
    ``weights_only=True``, or a state_dict) into ``model``; a mismatch raises a clear error."""
    state = path_or_state
    if not isinstance(state, Mapping):
        state = torch.load(path_or_state, map_location='cpu', weights_only=True)
    converted = convert_official_state_dict(state)
    result = model.load_state_dict(converted, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise KeyError(
            f'checkpoint does not match {type(model).__name__}: missing {result.missing_keys[:8]}'
            f'{"..." if len(result.missing_keys) > 8 else ""} ({len(result.missing_keys)}), unexpected '
            f'{result.unexpected_keys[:8]} ({len(result.unexpected_keys)}). Is it the right variant / '
            'number of classes?')
    return result


TRUNK_PREFIXES = ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition', 'stage')


def load_backbone_weights(model: HRNet, source) -> List[str]:
    """Initialise the trunk of ``model`` from an ImageNet classifier: ``'imagenet'`` (timm's
    weights for the model's variant, downloaded), a path to a ``.pth``/``.safetensors`` file, or a
    state_dict. Only trunk keys are loaded (the classification head is dropped); returns them."""
    if isinstance(source, str) and source == 'imagenet':
        import timm
        variant = getattr(model, 'variant', None)
        if variant is None:
            raise ValueError("weights_backbone='imagenet' needs model.variant (build with a named builder)")
        state = timm.create_model(variant, pretrained=True).state_dict()
    elif isinstance(source, str):
        if source.endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(source)
        else:
            state = torch.load(source, map_location='cpu', weights_only=True)
    else:
        state = source
    state = convert_official_state_dict(state)
    trunk = {k: v for k, v in state.items() if k.startswith(TRUNK_PREFIXES)}
    own = model.state_dict()
    expected = [k for k in own if k.startswith(TRUNK_PREFIXES)]
    missing = [k for k in expected if k not in trunk]
    bad_shape = [k for k in expected if k in trunk and trunk[k].shape != own[k].shape]
    if missing or bad_shape:
        raise KeyError(f'backbone weights do not fit the trunk: missing {missing[:5]} ({len(missing)}), '
                       f'wrong shape {bad_shape[:5]} ({len(bad_shape)}); is it the same HRNet variant?')
    model.load_state_dict({k: trunk[k] for k in expected}, strict=False)
    return expected


def build_segmentation_model(name: str, pretrained: bool = False, num_classes: Optional[int] = None,
                             align_corners: Optional[bool] = None, weights_backbone=None, **kwargs) -> nn.Module:
    """Build the named model of :data:`SEG_MODELS` (``num_classes`` overrides the dataset's;
    ``align_corners`` None takes the official config's choice)."""
    if name not in SEG_MODELS:
        raise KeyError(f'unknown segmentation model {name!r}; choose one of {sorted(SEG_MODELS)}')
    spec = SEG_MODELS[name]
    if pretrained:
        raise ValueError(
            f'no converted weights are published for {name!r} yet; build it with pretrained=False and '
            'load an official HRNet-Semantic-Segmentation .pth with '
            'hrnet_zoo.tasks.segmentation.load_official_checkpoint(model, path)')
    cls = HRNetSegmentation
    if spec.head == 'ocr':
        from .ocr import HRNetOCRSegmentation as cls
    model = cls(get_config(spec.variant), num_classes or spec.num_classes,
                align_corners=spec.align_corners if align_corners is None else align_corners, **kwargs)
    model.variant = spec.variant
    model.spec = spec
    if weights_backbone is not None:
        load_backbone_weights(model, weights_backbone)
    return model


def _make_builder(name: str):
    def builder(pretrained: bool = False, **kwargs) -> HRNetSegmentation:
        return build_segmentation_model(name, pretrained=pretrained, **kwargs)
    builder.__name__ = builder.__qualname__ = name
    spec = SEG_MODELS[name]
    builder.__doc__ = (f'HRNetV2 segmentation, trunk {spec.variant}, {spec.num_classes} classes ({spec.dataset}). '
                       f'{spec.reference}')
    return builder


for _name in SEG_MODELS:
    globals()[_name] = register_task_model(_make_builder(_name))
__all__ += list(SEG_MODELS)
