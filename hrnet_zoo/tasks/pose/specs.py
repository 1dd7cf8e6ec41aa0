"""The pose model table: HRNetV1 on COCO keypoints (official deep-high-resolution-net.pytorch
models, with their published COCO val2017 figures) and the generic ``hrnet_pose`` (any trunk,
any keypoint set), plus the COCO keypoint set (names, flip pairs, skeleton, body halves).

Every spec names the heatmap codec of its weights (:mod:`hrnet_zoo.tasks.codecs`): ``'msra'``
for the official checkpoints (trained and published under deep-high-resolution-net.pytorch's
conventions), ``'udp'`` for ``hrnet_pose``: it has no official weights; UDP is unbiased (Huang et
al., CVPR 2020: a flipped crop's heatmap is the flipped heatmap, targets at sub-pixel positions)
and every generic model trained here before codecs existed was trained under it. ``codec=``
overrides either when building."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from ...checkpoint import KeyMap
from ..codecs import get_codec
from ..registry import OfficialCheckpoint, TaskModelSpec, register_specs, spec_overrides
from .models import PoseHRNet

__all__ = ['SPECS', 'BUILDERS', 'GENERIC', 'OFFICIAL_KEY_MAP', 'OUTPUT_KEY', 'COCO_KEYPOINT_NAMES',
           'COCO_FLIP_PAIRS', 'COCO_SKELETON', 'COCO_UPPER_BODY_IDS', 'COCO_JOINT_WEIGHTS', 'USAGE', 'build']

# COCO's 17 keypoints pair up left/right as (1,2), (3,4), ..., (15,16) (0-based), as in the
# official COCODataset.flip_pairs.
COCO_KEYPOINT_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
    'right_knee', 'left_ankle', 'right_ankle')
COCO_FLIP_PAIRS: Tuple[Tuple[int, int], ...] = tuple((i, i + 1) for i in range(1, 17, 2))
COCO_SKELETON = (  # 0-based limb pairs, for drawing
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
# half-body augmentation: head, shoulders, elbows, wrists are the upper body (official upper_body_ids)
COCO_UPPER_BODY_IDS = tuple(range(11))
# official per-joint loss weights (COCODataset.joints_weight; used with LOSS.USE_DIFFERENT_JOINTS_WEIGHT)
COCO_JOINT_WEIGHTS = (1., 1., 1., 1., 1., 1., 1., 1.2, 1.2, 1.5, 1.5, 1., 1., 1.2, 1.2, 1.5, 1.5)

OFFICIAL_REPO = 'https://github.com/leoxiaobin/deep-high-resolution-net.pytorch'
MODEL_ZOO = 'https://drive.google.com/drive/folders/1hOTihvbyIxsm5ygDpbUuJ7O_tzv4oXjC'  # README, "model zoo"
OFFICIAL_KEY_MAP = KeyMap(strip=('module.',))  # the official keys are ours
OUTPUT_KEY = 'final_layer.weight'
GENERIC = 'hrnet_pose'
_SOURCE = ('deep-high-resolution-net.pytorch README, "Results on COCO val2017 with detector having human AP '
           'of 56.4 on COCO val2017 dataset" (flip test)')
_STATS = ('AP', 'AP50', 'AP75', 'AP_M', 'AP_L', 'AR', 'AR50', 'AR75', 'AR_M', 'AR_L')


def _coco_val(*stats: float) -> dict:
    return {'dataset': 'coco', 'split': 'val2017, person detector boxes (AP 56.4), flip test',
            **dict(zip(_STATS, stats)), 'source': _SOURCE}


def _official(trunk: str, size: Tuple[int, int], params: str, stats: Sequence[float]) -> TaskModelSpec:
    w = trunk.split('_w')[1]
    return TaskModelSpec(
        name=f'{trunk}_pose_coco_{size[0]}x{size[1]}', task='pose', trunk=trunk, head='v1', num_outputs=17,
        input_size=size, dataset='coco', flip_pairs=COCO_FLIP_PAIRS,
        official=OfficialCheckpoint(f'pose_hrnet_w{w}_{size[0]}x{size[1]}.pth', OFFICIAL_REPO,
                                    MODEL_ZOO, OFFICIAL_KEY_MAP),
        metrics=_coco_val(*stats), codec='msra',
        description=f'HRNetV1-W{w} for COCO keypoints at {size[0]}x{size[1]} ({params} params)')


SPECS: Tuple[TaskModelSpec, ...] = (
    _official('hrnet_w32', (256, 192), '28.5M', (74.4, 90.5, 81.9, 70.8, 81.0, 79.8, 94.2, 86.5, 75.7, 85.8)),
    _official('hrnet_w32', (384, 288), '28.5M', (75.8, 90.6, 82.5, 72.0, 82.7, 80.9, 94.3, 86.9, 76.7, 87.1)),
    _official('hrnet_w48', (256, 192), '63.6M', (75.1, 90.6, 82.2, 71.5, 81.8, 80.4, 94.3, 86.7, 76.2, 86.4)),
    _official('hrnet_w48', (384, 288), '63.6M', (76.3, 90.8, 82.9, 72.3, 83.4, 81.2, 94.2, 87.1, 76.7, 87.6)),
    TaskModelSpec(name=GENERIC, task='pose', trunk='hrnet_w32', head='v1', num_outputs=17, input_size=(256, 192),
                  dataset='coco', flip_pairs=COCO_FLIP_PAIRS, codec='udp',
                  description='Generic HRNetV1 pose model: arch= (any trunk of the variant table, e.g. '
                              "'hrnet_w18_small') or width=, num_keypoints=, input_size=, flip_pairs="),
)


def build(spec: TaskModelSpec, num_keypoints: Optional[int] = None, input_size: Optional[Tuple[int, int]] = None,
          flip_pairs: Optional[Sequence[Tuple[int, int]]] = None, arch: Optional[str] = None,
          width: Optional[int] = None, codec: Optional[str] = None, **kwargs: Any) -> PoseHRNet:
    """The model of ``spec``; ``num_keypoints`` / ``input_size`` / ``flip_pairs`` / ``codec``
    override the spec's (another keypoint count drops the COCO flip pairs unless ``flip_pairs`` is
    given), and for the generic :data:`GENERIC` spec ``arch=`` or ``width=`` picks the trunk."""
    if (arch or width) and spec.name != GENERIC:
        raise TypeError(f'{spec.name} has the {spec.trunk} trunk; build {GENERIC!r} with arch=/width= for another')
    trunk = arch or (f'hrnet_w{width}' if width else spec.trunk)
    given = dict(num_keypoints=num_keypoints, input_size=input_size, flip_pairs=flip_pairs,
                 codec=None if codec is None else get_codec(codec).name)
    changes = spec_overrides(spec, given, 'num_keypoints', 'input_size', 'flip_pairs', 'codec')
    n = changes.get('num_keypoints', spec.num_outputs)
    if flip_pairs is None and n != spec.num_outputs:
        changes['flip_pairs'] = ()
    pairs = changes.get('flip_pairs', spec.flip_pairs)
    size = tuple(changes.get('input_size', spec.input_size))
    cfg = spec.pretrained_cfg(**changes, trunk=trunk)
    return PoseHRNet(trunk, num_keypoints=n, flip_pairs=pairs, input_size=size, pretrained_cfg=cfg, **kwargs)


BUILDERS = register_specs(SPECS, build, output_key=OUTPUT_KEY)

# the one-image call, for model cards and docs (run by tests/test_pose_specs.py)
USAGE = """```python
from hrnet_zoo.tasks.pose import predict
people = predict(model, 'people.jpg', boxes=[[10, 5, 40, 60], [60, 8, 35, 58]])  # [x, y, w, h]; or detector=...
for person in people:  # best first, duplicates removed by OKS-NMS
    print(person['score'], person['keypoints'], person['keypoint_scores'])  # (K, 2) image px, (K,)
```"""
