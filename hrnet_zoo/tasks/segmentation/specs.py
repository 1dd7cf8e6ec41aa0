"""The segmentation model table: one :class:`~hrnet_zoo.tasks.TaskModelSpec` per named model, as
data, and the builders generated from it.

Official checkpoints and figures: HRNet-Semantic-Segmentation README (``HRNet-OCR`` branch for
the W48 models, with their GitHub-release files; ``pytorch-v1.1`` branch for the W18-small
models, published on OneDrive / BaiduYun without a file name, hence ``official=None``). Every
official file is the trainer's ``FullModel``: ``model.`` + our keys and the loss's class weights
``loss.criterion.weight``, so :data:`OFFICIAL_KEY_MAP` strips and drops those.

mmsegmentation's FCN-HRNet and OCRNet-HRNet (``configs/hrnet``, ``configs/ocrnet``; trunks ``hr18s`` =
``hrnet_w18_small_v2``, ``hr18``, ``hr48``) are the ``*_mmseg`` models (:data:`MMSEG_SPECS`): one per
trunk, head and dataset that mmseg published a checkpoint of, built as mmseg builds them
(:data:`MMSEG_OPTIONS`, see :mod:`.models` / :mod:`.ocr`) and tested by mmseg's protocol
(``test_protocol='mmseg'``: :data:`.evaluate.MMSEG_TESTS` of the model's dataset). Their checkpoints
(several training schedules of one model) are the manifest's records ``<name>.<schedule>``
(``hrnet_w48_seg_cityscapes_mmseg.160k``) with mmseg's figures; they load through the ``mmseg``
layout of :mod:`hrnet_zoo.hub.layouts`.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import nn

from ...checkpoint import KeyMap, load_trunk
from ..registry import OfficialCheckpoint, TaskModelSpec, register_specs, spec_overrides
from .metainfo import get_dataset
from .models import HRNetSegmentation
from .ocr import HRNetOCRSegmentation

__all__ = ['OFFICIAL_KEY_MAP', 'SPECS', 'MMSEG_SPECS', 'MMSEG_OPTIONS', 'BUILDERS', 'OUTPUT_KEYS', 'build']

OFFICIAL_KEY_MAP = KeyMap(strip=('module.', 'model.'), drop=('loss.',))
OUTPUT_KEYS = {'v2': 'last_layer.3.weight', 'v2_ocr': 'cls_head.weight'}  # the classifier of each head
REPO = 'https://github.com/HRNet/HRNet-Semantic-Segmentation'
RELEASE = 'https://github.com/hsfzxjy/models.storage/releases/download/HRNet-OCR/'
README_OCR = 'HRNet-Semantic-Segmentation README (HRNet-OCR branch)'
README_SMALL = 'HRNet-Semantic-Segmentation README (pytorch-v1.1 branch), small models'
CROPS = {'cityscapes': (512, 1024), 'pascal_context': (520, 520), 'lip': (473, 473)}
CLASSES = {'cityscapes': 19, 'pascal_context': 59, 'lip': 20}
# LIP's left/right parts (arms 14/15, legs 16/17, shoes 18/19), swapped by the official lip.py on flips
FLIP_PAIRS = {'lip': ((14, 15), (16, 17), (18, 19))}
# the official test windows of each dataset (evaluate.WINDOWS): Cityscapes overrides
# BaseDataset.multi_scale_inference (whole image at scales <= 1, full-crop steps above)
TEST_WINDOWS = {'cityscapes': 'cityscapes'}


def official(filename: str) -> OfficialCheckpoint:
    return OfficialCheckpoint(filename, REPO, RELEASE + filename, OFFICIAL_KEY_MAP)


def miou(dataset: str, value: float, evaluation: str, source: str = README_OCR) -> dict:
    return {'dataset': dataset, 'split': 'val', 'miou': value, 'eval': evaluation, 'source': source}


def seg_spec(trunk: str, dataset: str, head: str = 'v2', file: Optional[str] = None, metrics: Optional[dict] = None,
             input_size: Optional[Tuple[int, int]] = None, description: str = '') -> TaskModelSpec:
    """One named model: ``<trunk>[_ocr]_seg_<dataset>``; OCR uses the official OCR configs'
    ``ALIGN_CORNERS: True``, the HRNetV2 configs ``False``; ``test_windows`` (in ``pretrained_cfg``)
    is the dataset's official multi-scale window rule (:data:`TEST_WINDOWS`, else ``'base'``)."""
    ocr = head == 'v2_ocr'
    return TaskModelSpec(
        name=f'{trunk}{"_ocr" if ocr else ""}_seg_{dataset}', task='segmentation', trunk=trunk, head=head,
        num_outputs=CLASSES[dataset], input_size=input_size or CROPS[dataset], dataset=dataset,
        flip_pairs=FLIP_PAIRS.get(dataset, ()), official=official(file) if file else None, key_map=OFFICIAL_KEY_MAP, metrics=metrics or {},
        options={'align_corners': ocr, 'test_windows': TEST_WINDOWS.get(dataset, 'base')},
        description=description or f'HRNetV2{"+OCR" if ocr else ""}-{trunk[len("hrnet_"):].upper()} semantic '
                                   f'segmentation, {dataset} {CLASSES[dataset]} classes')


SPECS: Tuple[TaskModelSpec, ...] = (
    seg_spec('hrnet_w48', 'cityscapes', file='hrnet_cs_8090_torch11.pth',
             metrics=miou('cityscapes', 80.9, 'single scale, no flip'),
             description='HRNetV2-W48 semantic segmentation, Cityscapes 19 classes (paper: val 81.1 mIoU; '
                         '65.8M params, 696.2 GFLOPs at 1024x2048)'),
    seg_spec('hrnet_w48', 'pascal_context', file='hrnet_pascal_ctx_5410_torch11.pth',
             metrics=miou('pascal_context', 54.1, 'multi-scale + flip, 59 classes')),
    seg_spec('hrnet_w48', 'lip', file='hrnet_lip_5583_torch04.pth', metrics=miou('lip', 55.83, 'flip')),
    seg_spec('hrnet_w18', 'cityscapes'),
    seg_spec('hrnet_w18_small', 'cityscapes', metrics=miou('cityscapes', 70.3, 'single scale, no flip', README_SMALL),
             description='HRNetV2-W18-Small-v1 semantic segmentation, Cityscapes 19 classes'),
    seg_spec('hrnet_w18_small_v2', 'cityscapes',
             metrics=miou('cityscapes', 76.2, 'single scale, no flip', README_SMALL),
             description='HRNetV2-W18-Small-v2 semantic segmentation, Cityscapes 19 classes'),
    seg_spec('hrnet_w18', 'pascal_context'),
    seg_spec('hrnet_w18', 'lip'),
    seg_spec('hrnet_w48', 'cityscapes', 'v2_ocr', 'hrnet_ocr_cs_8162_torch11.pth',
             miou('cityscapes', 81.6, 'single scale, no flip')),
    seg_spec('hrnet_w48', 'pascal_context', 'v2_ocr', 'hrnet_ocr_pascal_ctx_5618_torch11.pth',
             miou('pascal_context', 56.2, 'multi-scale + flip, 59 classes')),
    seg_spec('hrnet_w48', 'lip', 'v2_ocr', 'hrnet_ocr_lip_5648_torch04.pth', miou('lip', 56.48, 'flip')),
)

# mmseg's network (module docstrings of .models / .ocr) and test protocol; OCR also has no dropout
MMSEG_OPTIONS = {'align_corners': False, 'head_bias': False, 'fuse_upsample': 'factor', 'test_protocol': 'mmseg'}
MMSEG_TRUNKS = {'hr18s': 'hrnet_w18_small_v2', 'hr18': 'hrnet_w18', 'hr48': 'hrnet_w48'}
# each dataset's training crop (the configs' crop_size) and the trunks mmseg published checkpoints for
# (configs/hrnet/metafile.yaml, configs/ocrnet/metafile.yaml)
MMSEG_CROPS = {'cityscapes': (512, 1024), 'ade20k': (512, 512), 'voc12aug': (512, 512), 'pascal_context': (480, 480),
               'pascal_context_60': (480, 480), 'loveda': (512, 512), 'potsdam': (512, 512), 'vaihingen': (512, 512),
               'isaid': (896, 896)}
MMSEG_PUBLISHED = {'v2': {d: ('hr48',) if d.startswith('pascal_context') else tuple(MMSEG_TRUNKS) for d in MMSEG_CROPS},
                   'v2_ocr': {d: tuple(MMSEG_TRUNKS) for d in ('cityscapes', 'ade20k', 'voc12aug')}}


def mmseg_spec(short: str, dataset: str, head: str = 'v2') -> TaskModelSpec:
    """mmseg's ``fcn_<short>`` / ``ocrnet_<short>`` (``short``: hr18s, hr18, hr48) trained on
    ``dataset``: ``<trunk>[_ocr]_seg_<dataset>_mmseg``, its classes from :mod:`.metainfo`."""
    ocr, trunk, info = head == 'v2_ocr', MMSEG_TRUNKS[short], get_dataset(dataset)
    return TaskModelSpec(
        name=f'{trunk}{"_ocr" if ocr else ""}_seg_{dataset}_mmseg', task='segmentation', trunk=trunk, head=head,
        num_outputs=info.num_classes, input_size=MMSEG_CROPS[dataset], dataset=dataset, license='apache-2.0',
        options={**MMSEG_OPTIONS, **({'dropout': 0.0} if ocr else {})},
        description=f'mmsegmentation {"OCRNet" if ocr else "FCN"}-HRNetV2 ({"ocrnet" if ocr else "fcn"}_{short}), '
                    f'{dataset} {info.num_classes} classes')


MMSEG_SPECS: Tuple[TaskModelSpec, ...] = tuple(
    mmseg_spec(short, dataset, head) for head, published in MMSEG_PUBLISHED.items()
    for dataset, shorts in published.items() for short in shorts)
# the constructor options a spec may set (the rest of its options is protocol: pretrained_cfg only)
MODEL_OPTIONS = ('head_bias', 'fuse_upsample', 'dropout')


def build(spec: TaskModelSpec, num_classes: Optional[int] = None, align_corners: Optional[bool] = None,
          input_size: Optional[Tuple[int, int]] = None, arch: Optional[str] = None, weights_backbone: Any = None,
          **kwargs: Any) -> nn.Module:
    """The model of ``spec``: ``num_classes`` / ``input_size`` / ``align_corners`` override the
    spec's, ``arch`` its trunk (e.g. ``'hrnet_w18_small'`` for a smoke run); ``weights_backbone``
    (``'imagenet'`` or a classifier checkpoint) initialises the trunk; other keywords go to the
    constructor (``in_chans``, OCR's ``mid_channels`` ...)."""
    given = dict(num_classes=num_classes, align_corners=align_corners, input_size=input_size, trunk=arch)
    changes = spec_overrides(spec, given, *given)
    cls = HRNetOCRSegmentation if spec.head == 'v2_ocr' else HRNetSegmentation
    options = {k: v for k, v in spec.options.items() if k in MODEL_OPTIONS}
    model = cls(changes.get('trunk', spec.trunk), changes.get('num_classes', spec.num_outputs),
                align_corners=changes.get('align_corners', spec.options['align_corners']),
                pretrained_cfg=spec.pretrained_cfg(**changes), **{**options, **kwargs})
    if weights_backbone is not None:
        load_trunk(model, weights_backbone)
    return model


BUILDERS = {name: builder for head, key in OUTPUT_KEYS.items()
            for name, builder in register_specs([s for s in SPECS + MMSEG_SPECS if s.head == head], build, key).items()}
