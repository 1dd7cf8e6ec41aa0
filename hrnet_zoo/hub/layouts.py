"""Source layouts: how each codebase names the tensors of an HRNet checkpoint, as data.

A :class:`Layout` is a name, a rule that recognises it from a file's keys (key prefixes that must
occur), a :class:`~hrnet_zoo.checkpoint.KeyMap` to our keys, the tasks whose models take it, and
the part of our model it fills. :func:`detect_layout` tries :data:`LAYOUTS` in order (the
unprefixed ones first, then OpenMMLab's, most specific first) and returns the first that matches.
A leaf module: it imports nothing of the model table or the rest of the hub, so a task package may
read its key maps.

Facts (read from the codebases, see ``catalogue/openmmlab-hrnet-checkpoints.md`` sections 1.3,
2.3, 3, 4.1): every OpenMMLab file is ``{'meta': ..., 'state_dict': ...}`` with the HRNet trunk
under ``backbone.`` and the official suffixes (``conv1, bn1, conv2, bn2, layer1, transition1..3,
stage2..4``; mmpose ``mmpose/models/backbones/hrnet.py``, mmseg ``mmseg/models/backbones/hrnet.py``);
the heads differ:

- mmpose 0.x top-down (``TopdownHeatmapSimpleHead``, ``num_deconv_layers=0``):
  ``keypoint_head.final_layer.*``; mmpose 1.x (``HeatmapHead``): ``head.final_layer.*``, plus
  ``data_preprocessor.{mean,std}`` that mmpose's own load hook drops
  (``mmpose/models/pose_estimators/base.py``). Body HRNet has ``multiscale_output=False`` and
  nearest fuse upsampling, as the official pose HRNet: :class:`~hrnet_zoo.tasks.pose.PoseHRNet`
  takes these files as they are. The HRNetV2-W18 face / hand heads are 0.x
  ``keypoint_head.final_layer.{0,1,3}`` = 1.x ``head.conv_layers.{0,1}`` + ``head.final_layer``
  (conv 270 -> 270 + BN, conv 270 -> K) on bilinear fusions: the landmark network
  (:class:`~hrnet_zoo.tasks.landmarks.FaceHRNet`, ``representation.mix.{0,1}``, ``final_layer``)
  and the hand models (:class:`~hrnet_zoo.tasks.pose.models.PoseHRNetV2`).
- mmdetection HRFPN (``mmdet/models/necks/hrfpn.py``): ``neck.reduction_conv.conv.*`` and
  ``neck.fpn_convs.{0-4}.conv.*`` (v1 code: ``neck.fpn_conv.{k}.*``; HRNet-Object-Detection's own:
  ``neck.reduction_conv.0.*``), then mmdetection's RPN / RoI / FCOS heads, which have another
  layout than torchvision's: the file fills our detectors' ``backbone`` (trunk + HRFPN) only.
- mmsegmentation (``mmseg/models/decode_heads/fcn_head.py``, ``ocr_head.py``,
  ``mmseg/models/utils/self_attention_block.py``): FCN ``decode_head.convs.0.{conv,bn}`` +
  ``decode_head.conv_seg``; OCRNet ``decode_head.0.*`` (the auxiliary FCN) + ``decode_head.1.*``
  (``bottleneck``, ``object_context_block.{query,key}_project.{0,1}``, ``value_project``,
  ``out_project``, ``bottleneck``, ``conv_seg``): :data:`MMSEG_KEY_MAP` onto the ``*_mmseg`` models
  of :mod:`hrnet_zoo.tasks.segmentation.specs` (bias-free head convs, mmseg's fusion).
- mmpretrain (``mmpretrain/models/necks/hr_fuse.py`` ``HRFuseScales``, ``LinearClsHead``):
  ``neck.0.increase_layers`` (``neck.`` when the config's neck is not a list) / ``downsample_layers``
  / ``final_layer`` + ``head.fc``: :data:`MMPRETRAIN_KEY_MAP` onto the classifier's
  ``incre_modules`` / ``downsamp_modules`` / ``final_layer`` / ``classifier``. Its head convs have no
  bias (``ConvModule(bias=False)``) where HRNet-Image-Classification's (and timm's) have one: those
  biases are filled with zeros (``zero_fill``), which computes exactly what mmpretrain does and keeps
  the timm model (and its keys) of the variant; the SSLD variants have no bias to fill.

Adding a source is adding data here: a :class:`Layout` in :data:`LAYOUTS` (or renames in an
existing key map, most specific prefix first: the first matching rename wins).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from ..checkpoint import KeyMap, WeightsError, strip_prefixes
from ..configs import HRNET_CONFIGS

__all__ = ['Layout', 'LAYOUTS', 'LAYOUT_NAMES', 'MMPOSE_KEY_MAP', 'MMDET_KEY_MAP', 'MMSEG_KEY_MAP', 'MMPRETRAIN_KEY_MAP',
           'detect_layout', 'get_layout', 'trunk_variants', 'WRAPPER_PREFIXES']

# prefixes a training wrapper puts in front of every key (DataParallel / DDP, the official
# segmentation trainer's FullModel): ignored when recognising a layout
WRAPPER_PREFIXES = ('module.', 'model.')


@dataclass(frozen=True)
class Layout:
    """A checkpoint layout, as data.

    Args:
        name: ``official``, ``timm``, ``mmpose``, ``mmseg``, ``mmdet`` or ``mmpretrain`` (what a
            record's ``source.layout`` says).
        holds: what such a file holds, for messages (``'backbone.* + head.final_layer.*'``).
        generation: the codebase generation when it changed the names (mmpose ``'0.x'`` / ``'1.x'``).
        requires: key prefixes that must all occur (after :data:`WRAPPER_PREFIXES`): the rule
            that recognises the layout.
        any_of: of these, at least one must occur too.
        key_map: the file's keys -> ours; ``None`` for ``official``: each model's own official key
            map (``hrnet_zoo.get_model_spec(name).official.key_map``).
        tasks: the tasks whose models take the layout; ``None`` every task; ``()`` recognised,
            but no model of the zoo takes it yet.
        part: the sub-module of our model that the file fills (``'backbone.'``); ``''`` the whole model.
        zero_fill: patterns (regular expressions, whole key) of our keys that such a file leaves out
            because its convs have no bias where ours have one: filled with zeros where the model
            has them (:meth:`fill_zeros`).
    """
    name: str
    holds: str
    generation: str = ''
    requires: Tuple[str, ...] = ()
    any_of: Tuple[str, ...] = ()
    key_map: Optional[KeyMap] = None
    tasks: Optional[Tuple[str, ...]] = None
    part: str = ''
    zero_fill: Tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``'mmpose 1.x'``, ``'official'``: the name and generation, for messages."""
        return f'{self.name} {self.generation}'.strip()

    def matches(self, keys: Iterable[str]) -> bool:
        """Whether a file with these keys is in this layout (the rule: ``requires`` and ``any_of``)."""
        keys = [strip_prefixes(k, WRAPPER_PREFIXES) for k in keys]
        found = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
        return all(found(p) for p in self.requires) and (not self.any_of or any(found(p) for p in self.any_of))

    def takes(self, task: str) -> bool:
        """Whether models of ``task`` take files of this layout."""
        return self.tasks is None or task in self.tasks

    def fill_zeros(self, state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                   ) -> Dict[str, torch.Tensor]:
        """``state`` (our keys) plus a zero tensor for every key of ``expected`` (the target's
        state_dict) that it lacks and that matches a :attr:`zero_fill` pattern: a zero bias adds
        nothing, so the model computes what the bias-free source did."""
        filled = dict(state)
        for k, v in expected.items():
            if k not in filled and any(re.fullmatch(p, k) for p in self.zero_fill):
                filled[k] = torch.zeros(v.shape, dtype=v.dtype)
        return filled


# mmpose top-down heatmap models, both generations: the trunk under backbone., the 1x1 head conv
# (0.x keypoint_head.final_layer, 1.x head.final_layer) -> PoseHRNet's final_layer. The HRNetV2
# face / hand head (0.x TopdownHeatmapSimpleHead(num_conv_layers=1): final_layer = Sequential(conv,
# BN, ReLU, conv); 1.x HeatmapHead: conv_layers.{0,1} + final_layer, the renames of its
# _load_state_dict_pre_hook) -> FaceHRNet / PoseHRNetV2's representation.mix.{0,1} + final_layer.
MMPOSE_KEY_MAP = KeyMap(strip=('module.',), drop=('data_preprocessor.',), rename=(
    ('backbone.', ''),
    ('keypoint_head.final_layer.0.', 'representation.mix.0.'),  # 0.x HRNetV2 head: conv 270 -> 270
    ('keypoint_head.final_layer.1.', 'representation.mix.1.'),  # its BN
    ('keypoint_head.final_layer.3.', 'final_layer.'),           # its conv 270 -> K
    ('keypoint_head.final_layer.', 'final_layer.'),  # 0.x TopdownHeatmapSimpleHead
    ('head.conv_layers.0.', 'representation.mix.0.'),  # 1.x HRNetV2 head
    ('head.conv_layers.1.', 'representation.mix.1.'),
    ('head.final_layer.', 'final_layer.'),           # 1.x HeatmapHead
))

# mmdetection (and HRNet-Object-Detection) -> our detectors: the trunk stays under ``backbone.``,
# the HRFPN neck moves under ``backbone.neck.`` (ours: reduction_conv.0, fpn_conv.k); mmdetection
# wraps the same convs in ConvModules (v1: reduction_conv.conv, fpn_conv.k; v2/v3:
# reduction_conv.conv, fpn_convs.k.conv). Its RPN / RoI / FCOS heads are not kept.
MMDET_KEY_MAP = KeyMap(
    strip=('module.',),
    rename=(('neck.reduction_conv.conv.', 'backbone.neck.reduction_conv.0.'),)
    + tuple((f'neck.fpn_convs.{k}.conv.', f'backbone.neck.fpn_conv.{k}.') for k in range(5))
    + (('neck.', 'backbone.neck.'),),
    keep=('backbone.',))

# mmsegmentation -> the *_mmseg segmentation models: the trunk under backbone., FCN's decode_head
# (EncoderDecoder) or OCRNet's decode_head.0 (auxiliary FCNHead) + decode_head.1 (OCRHead, its
# ObjectAttentionBlock's ConvModules) -> our official module names (HRNetSegmentation.last_layer;
# HRNetOCRSegmentation.aux_head / conv3x3_ocr / ocr_distri_head / cls_head).
_OCB, _OURS = 'decode_head.1.object_context_block.', 'ocr_distri_head.object_context_block.'
MMSEG_KEY_MAP = KeyMap(strip=('module.',), drop=('data_preprocessor.',), rename=(
    ('backbone.', ''),
    ('decode_head.convs.0.conv.', 'last_layer.0.'), ('decode_head.convs.0.bn.', 'last_layer.1.'),
    ('decode_head.conv_seg.', 'last_layer.3.'),
    ('decode_head.0.convs.0.conv.', 'aux_head.0.'), ('decode_head.0.convs.0.bn.', 'aux_head.1.'),
    ('decode_head.0.conv_seg.', 'aux_head.3.'),
    ('decode_head.1.bottleneck.conv.', 'conv3x3_ocr.0.'), ('decode_head.1.bottleneck.bn.', 'conv3x3_ocr.1.'),
    *((f'{_OCB}{theirs}.{i}.{part}.', f'{_OURS}{ours}.{2 * i + (part == "bn")}.{"0." if part == "bn" else ""}')
      for theirs, ours in (('query_project', 'f_pixel'), ('key_project', 'f_object'))
      for i in (0, 1) for part in ('conv', 'bn')),
    (f'{_OCB}value_project.conv.', f'{_OURS}f_down.0.'), (f'{_OCB}value_project.bn.', f'{_OURS}f_down.1.0.'),
    (f'{_OCB}out_project.conv.', f'{_OURS}f_up.0.'), (f'{_OCB}out_project.bn.', f'{_OURS}f_up.1.0.'),
    (f'{_OCB}bottleneck.conv.', 'ocr_distri_head.conv_bn_dropout.0.'),
    (f'{_OCB}bottleneck.bn.', 'ocr_distri_head.conv_bn_dropout.1.0.'),
    ('decode_head.1.conv_seg.', 'cls_head.'),
))


def _hr_fuse_scales(neck: str) -> Tuple[Tuple[str, str], ...]:
    """mmpretrain's ``HRFuseScales`` under ``neck`` -> the classifier head's official names."""
    return ((f'{neck}increase_layers.', 'incre_modules.'),
            *((f'{neck}downsample_layers.{i}.{part}.', f'downsamp_modules.{i}.{int(part == "bn")}.')
              for i in range(3) for part in ('conv', 'bn')),
            (f'{neck}final_layer.conv.', 'final_layer.0.'), (f'{neck}final_layer.bn.', 'final_layer.1.'))


# mmpretrain -> the classifiers (timm's keys): neck.0. when the config's neck is a list (HRFuseScales,
# GlobalAveragePooling), as in configs/_base_/models/hrnet/*.py; head.fc (LinearClsHead) -> classifier.
MMPRETRAIN_KEY_MAP = KeyMap(strip=('module.',), drop=('data_preprocessor.',), rename=(
    ('backbone.', ''), *_hr_fuse_scales('neck.0.'), *_hr_fuse_scales('neck.'), ('head.fc.', 'classifier.')))
MMPRETRAIN_ZERO_BIASES = (r'downsamp_modules\.\d+\.0\.bias', r'final_layer\.0\.bias')

# In the order they are tried: the unprefixed layouts (the zoo's own detectors keep their neck
# under backbone.neck.), then OpenMMLab's, whose keys all sit under backbone.: the most specific
# rule first (mmpose 1.x's bare head. last).
LAYOUTS: Tuple[Layout, ...] = (
    Layout('timm', 'conv1 ... incre_modules ... classifier: an HRNet-Image-Classification classifier, whose keys timm uses too',
           requires=('conv1.', 'incre_modules.', 'classifier.'), key_map=KeyMap(), tasks=('classification',)),
    Layout('official', "the official repositories' keys (or hrnet-zoo's own: the same trunk names)",
           any_of=('conv1.', 'backbone.neck.')),
    Layout('mmpose', 'backbone.* + keypoint_head.*: an mmpose 0.x top-down heatmap model', generation='0.x',
           requires=('backbone.', 'keypoint_head.'), key_map=MMPOSE_KEY_MAP, tasks=('pose', 'landmarks')),
    Layout('mmdet', 'backbone.* + neck.* HRFPN + mmdetection heads: the trunk and the neck are taken',
           requires=('backbone.', 'neck.reduction_conv.'), key_map=MMDET_KEY_MAP, tasks=('detection',),
           part='backbone.'),
    Layout('mmseg', 'backbone.* + decode_head.*: an mmsegmentation FCN / OCRNet',
           requires=('backbone.', 'decode_head.'), key_map=MMSEG_KEY_MAP, tasks=('segmentation',)),
    Layout('mmpretrain', 'backbone.* + neck.* HRFuseScales + head.fc.*: an mmpretrain classifier',
           requires=('backbone.', 'head.fc.'), key_map=MMPRETRAIN_KEY_MAP, tasks=('classification',),
           zero_fill=MMPRETRAIN_ZERO_BIASES),
    Layout('mmpose', 'backbone.* + head.*: an mmpose 1.x top-down heatmap model', generation='1.x',
           requires=('backbone.', 'head.'), key_map=MMPOSE_KEY_MAP, tasks=('pose', 'landmarks')),
)
LAYOUT_NAMES: Tuple[str, ...] = tuple(dict.fromkeys(layout.name for layout in LAYOUTS))


def get_layout(name: str, generation: str = '') -> Layout:
    """The layout called ``name`` (its last generation unless ``generation`` is given)."""
    found = [layout for layout in LAYOUTS if layout.name == name and generation in ('', layout.generation)]
    if not found:
        raise KeyError(f'unknown layout {name!r}; choose one of {", ".join(LAYOUT_NAMES)}')
    return found[-1]


def detect_layout(keys: Iterable[str], where: str = 'checkpoint') -> Layout:
    """The first layout of :data:`LAYOUTS` whose rule matches ``keys``; a :class:`WeightsError`
    that names the file and shows its key prefixes when none does."""
    keys = list(keys)
    for layout in LAYOUTS:
        if layout.matches(keys):
            return layout
    heads = sorted({strip_prefixes(k, WRAPPER_PREFIXES).split('.', 1)[0] for k in keys})
    raise WeightsError(f'{where}: not an HRNet checkpoint of a known layout (its keys start with '
                       f'{", ".join(heads[:12]) or "nothing"}); known layouts: {", ".join(LAYOUT_NAMES)}')


def trunk_variants(state: Mapping[str, object], head_bias_known: bool = True) -> List[str]:
    """The HRNet variants of :data:`hrnet_zoo.HRNET_CONFIGS` whose trunk has the keys and widths of
    ``state`` (our key names): the width C of ``transition1.0.0.weight`` (C x 256 x 3 x 3 for the
    standard variants), the stage-1 units, and per stage 2-4 the modules and the units of branch 0;
    a classifier head's conv bias tells the SSLD variants (no bias) apart, unless the layout leaves
    those biases out (``head_bias_known=False``: mmpretrain). ``[]`` if not a trunk."""
    first = state.get('transition1.0.0.weight')
    if first is None:
        return []
    keys = list(state)

    def count(prefix: str) -> int:
        return len({k[len(prefix):].split('.', 1)[0] for k in keys if k.startswith(prefix)})

    found: Dict[str, int] = {'layer1': count('layer1.')}
    for s in (2, 3, 4):
        found[f'modules{s}'], found[f'units{s}'] = count(f'stage{s}.'), count(f'stage{s}.0.branches.0.')
    names = []
    for name, cfg in HRNET_CONFIGS.items():
        stages = cfg.stages
        want = {'layer1': stages[0].num_blocks[0],
                **{f'modules{s}': stages[s - 1].num_modules for s in (2, 3, 4)},
                **{f'units{s}': stages[s - 1].num_blocks[0] for s in (2, 3, 4)}}
        if cfg.width == first.shape[0] and want == found:
            names.append(name)
    if 'final_layer.0.weight' in state and head_bias_known:  # the classifier head: SSLD variants have no bias
        names = [n for n in names if HRNET_CONFIGS[n].head_conv_bias == ('final_layer.0.bias' in state)]
    return names
