"""The detection model table: torchvision detectors on HRNetV2p, COCO (91 ids with the background),
resized to short side 800 / long side <= 1333 as the official configs.

No checkpoint of these torchvision heads is published (``official=None``); the official
HRNet-Object-Detection models are mmdetection's, with the same trunk and HRFPN neck but other
heads: their checkpoint initialises our trunk and neck (``weights_backbone=``), and their COCO
figures are recorded as the reference the trunk + neck reached, saying so in ``source``.
Every builder takes ``arch=`` to build another trunk (``pretrained_cfg['trunk']`` says which).

mmdetection's 28 HRNetV2p checkpoints (``configs/hrnet/metafile.yml``: Faster / Mask / Cascade /
Cascade Mask R-CNN, HTC and FCOS on W18 / W32 / W40) are the manifest's records of the detector of
that kind and width (Cascade -> Faster R-CNN, Cascade Mask and HTC -> Mask R-CNN: the nearest
torchvision detector), with mmdetection's figures: their trunk + HRFPN neck fill our ``backbone``
(the ``mmdet`` layout); their heads are mmdetection's and are not loaded. Hence the Mask R-CNN and
FCOS specs of every width mmdetection published.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import nn

from ..registry import TaskModelSpec, register_specs
from .models import DETECTORS, SIZE_DIVISIBLE

__all__ = ['SPECS', 'BUILDERS', 'OUTPUT_KEYS', 'build']

# The head tensor whose first dimension is the class count (None: RetinaNet's holds anchors x classes).
OUTPUT_KEYS = {'fasterrcnn': 'roi_heads.box_predictor.cls_score.weight',
               'maskrcnn': 'roi_heads.box_predictor.cls_score.weight',
               'retinanet': None,
               'fcos': 'head.classification_head.cls_logits.weight'}
MMDET_SOURCE = ('HRNet-Object-Detection README (mmdetection Faster R-CNN HRNetV2p, 1x schedule): the same trunk '
                '+ HRFPN neck with mmdetection heads; no checkpoint of these torchvision heads is published')


def _detector(name: str, kind: str, trunk: str, description: str, box_ap: Optional[float] = None) -> TaskModelSpec:
    metrics = {} if box_ap is None else {'dataset': 'coco', 'split': 'val2017', 'bbox_AP': box_ap,
                                         'source': MMDET_SOURCE}
    return TaskModelSpec(name=name, task='detection', trunk=trunk, head=f'v2p_{kind}', num_outputs=91,
                         input_size=(800, 1333), dataset='coco', metrics=metrics,
                         options={'detector': kind, 'conv_stride': DETECTORS[kind].conv_stride,
                                  'size_divisible': SIZE_DIVISIBLE},
                         description=description)


SPECS = (
    _detector('fasterrcnn_hrnetv2p_w18', 'fasterrcnn', 'hrnet_w18', 'Faster R-CNN, HRNetV2p-W18 (paper Table VIII)', 36.1),
    _detector('fasterrcnn_hrnetv2p_w32', 'fasterrcnn', 'hrnet_w32', 'Faster R-CNN, HRNetV2p-W32 (paper Table VIII)', 39.5),
    _detector('fasterrcnn_hrnetv2p_w40', 'fasterrcnn', 'hrnet_w40', 'Faster R-CNN, HRNetV2p-W40 (paper Table VIII)', 40.4),
    _detector('maskrcnn_hrnetv2p_w32', 'maskrcnn', 'hrnet_w32', 'Mask R-CNN, HRNetV2p-W32 (paper Table X)'),
    _detector('retinanet_hrnetv2p_w32', 'retinanet', 'hrnet_w32', 'RetinaNet, HRNetV2p-W32 (pyramid at strides 8-128)'),
    _detector('fcos_hrnetv2p_w32', 'fcos', 'hrnet_w32', 'FCOS, HRNetV2p-W32 (paper Table IX; pyramid at strides 8-128)'),
    # the other widths of mmdetection's checkpoints (configs/hrnet/metafile.yml)
    _detector('maskrcnn_hrnetv2p_w18', 'maskrcnn', 'hrnet_w18', 'Mask R-CNN, HRNetV2p-W18'),
    _detector('maskrcnn_hrnetv2p_w40', 'maskrcnn', 'hrnet_w40', 'Mask R-CNN, HRNetV2p-W40'),
    _detector('fcos_hrnetv2p_w18', 'fcos', 'hrnet_w18', 'FCOS, HRNetV2p-W18 (pyramid at strides 8-128)'),
    _detector('fcos_hrnetv2p_w40', 'fcos', 'hrnet_w40', 'FCOS, HRNetV2p-W40 (pyramid at strides 8-128)'),
)


def build(spec: TaskModelSpec, arch: Optional[str] = None, num_classes: Optional[int] = None,
          input_size: Optional[tuple] = None, min_size: Optional[int] = None, max_size: Optional[int] = None,
          **kwargs: Any) -> nn.Module:
    """The detector of ``spec``: ``arch`` overrides the trunk, ``num_classes`` the classes (with the
    background), ``input_size=(min_size, max_size)`` or ``min_size`` / ``max_size`` the resize;
    other ``kwargs`` go to the detector class (``weights_backbone``, ``norm_eval``, torchvision's)."""
    trunk = arch or spec.trunk
    n = spec.num_outputs if num_classes is None else num_classes
    lo, hi = input_size or spec.input_size
    lo, hi = min_size or lo, max_size or hi
    changes = {} if (trunk, n) == (spec.trunk, spec.num_outputs) else {'metrics': {}}  # not the spec's figures
    cfg = spec.pretrained_cfg(num_classes=n, input_size=(lo, hi), trunk=trunk, first_conv='backbone.conv1', **changes)
    return DETECTORS[spec.options['detector']](trunk, n, min_size=lo, max_size=hi, pretrained_cfg=cfg, **kwargs)


def _register() -> Dict[str, Any]:
    builders: Dict[str, Any] = {}
    for kind, output_key in OUTPUT_KEYS.items():
        builders.update(register_specs([s for s in SPECS if s.options['detector'] == kind], build, output_key))
    return {s.name: builders[s.name] for s in SPECS}


BUILDERS = _register()
