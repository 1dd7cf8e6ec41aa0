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
  takes these files as they are.
- mmdetection HRFPN (``mmdet/models/necks/hrfpn.py``): ``neck.reduction_conv.conv.*`` and
  ``neck.fpn_convs.{0-4}.conv.*`` (v1 code: ``neck.fpn_conv.{k}.*``; HRNet-Object-Detection's own:
  ``neck.reduction_conv.0.*``), then mmdetection's RPN / RoI / FCOS heads, which have another
  layout than torchvision's: the file fills our detectors' ``backbone`` (trunk + HRFPN) only.
- mmsegmentation (``decode_head.*``) and mmpretrain (``neck.increase_layers`` /
  ``downsample_layers`` / ``final_layer``, ``head.fc``) are recognised; their key maps come with
  the models they need (bilinear fusion, bias-free convs).

Adding a source is adding data here: a :class:`Layout` in :data:`LAYOUTS` (or renames in an
existing key map, most specific prefix first: the first matching rename wins).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from ..checkpoint import KeyMap, WeightsError, strip_prefixes
from ..configs import HRNET_CONFIGS

__all__ = ['Layout', 'LAYOUTS', 'LAYOUT_NAMES', 'MMPOSE_KEY_MAP', 'MMDET_KEY_MAP', 'detect_layout', 'get_layout',
           'trunk_variants', 'WRAPPER_PREFIXES']

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
    """
    name: str
    holds: str
    generation: str = ''
    requires: Tuple[str, ...] = ()
    any_of: Tuple[str, ...] = ()
    key_map: Optional[KeyMap] = None
    tasks: Optional[Tuple[str, ...]] = None
    part: str = ''

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


# mmpose top-down heatmap models, both generations: the trunk under backbone., the 1x1 head conv
# (0.x keypoint_head.final_layer, 1.x head.final_layer) -> PoseHRNet's final_layer.
MMPOSE_KEY_MAP = KeyMap(strip=('module.',), drop=('data_preprocessor.',), rename=(
    ('backbone.', ''),
    ('keypoint_head.final_layer.', 'final_layer.'),  # 0.x TopdownHeatmapSimpleHead
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
           requires=('backbone.', 'decode_head.'), tasks=()),
    Layout('mmpretrain', 'backbone.* + neck.* HRFuseScales + head.fc.*: an mmpretrain classifier',
           requires=('backbone.', 'head.fc.'), tasks=()),
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


def trunk_variants(state: Mapping[str, object]) -> List[str]:
    """The HRNet variants of :data:`hrnet_zoo.HRNET_CONFIGS` whose trunk has the keys and widths of
    ``state`` (our key names): the width C of ``transition1.0.0.weight`` (C x 256 x 3 x 3 for the
    standard variants), the stage-1 units, and per stage 2-4 the modules and the units of branch 0;
    a classifier head's conv bias tells the SSLD variants (no bias) apart. ``[]`` if not a trunk."""
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
    if 'final_layer.0.weight' in state:  # the classifier head: SSLD variants have bias-free head convs
        names = [n for n in names if HRNET_CONFIGS[n].head_conv_bias == ('final_layer.0.bias' in state)]
    return names
