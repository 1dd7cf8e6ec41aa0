"""The pose model table: HRNetV1 on COCO keypoints (official deep-high-resolution-net.pytorch
models, with their published COCO val2017 figures), the generic ``hrnet_pose`` (any trunk, any
keypoint set), mmpose's top-down HRNets (:data:`MMPOSE_SPECS`: body, whole-body, fashion, hand,
animal), plus the COCO keypoint set (names, flip pairs, skeleton, body halves).

Every spec names the heatmap codec of its weights (:mod:`hrnet_zoo.tasks.codecs`): ``'msra'``
for the official checkpoints (trained and published under deep-high-resolution-net.pytorch's
conventions), ``'udp'`` for ``hrnet_pose``: it has no official weights; UDP is unbiased (Huang et
al., CVPR 2020: a flipped crop's heatmap is the flipped heatmap, targets at sub-pixel positions)
and every generic model trained here before codecs existed was trained under it. ``codec=``
overrides either when building.

mmpose's checkpoints (open-mmlab/mmpose 0.x and 1.x, ``docs/openmmlab.md``) are the manifest's
records of these specs (``name.tag``; each record names the codec its file was trained with):

* the same network as a spec of the table: the official COCO specs take mmpose's plain COCO files
  (``hrnet_w32_pose_coco_256x192.mmpose`` (0.x), ``.mmpose_v1`` (1.x), ``.mmpose_fp16``, ...);
* otherwise one spec per (trunk, keypoint set, input size, codec family): ``hrnet_<w>_pose_<set>_
  <HxW>[_dark|_udp|_udp_regress]`` for body / whole-body / fashion, ``hrnet_w18_hand_<set>_256x256
  [...]`` (HRNetV2, :class:`~.models.PoseHRNetV2`), ``hrnet_<w>_animal_<set>_<HxW>``. Keypoint
  names, flip pairs and the field's metric come from :mod:`hrnet_zoo.tasks.keypoints`
  (``pretrained_cfg['keypoint_set']``); the spec's codec is that of mmpose 1.x when 1.x released
  the model, else 0.x's.
* Bottom-up models (HigherHRNet, associative embedding, DEKR, CID), PoseWarper's stage-2 video
  model and LiteHRNet are other networks: not here.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from ...checkpoint import KeyMap
from ..codecs import get_codec
from ..keypoints import get_keypoint_set
from ..registry import OfficialCheckpoint, TaskModelSpec, register_specs, spec_overrides
from .models import PoseHRNet, PoseHRNetV2

__all__ = ['SPECS', 'MMPOSE_SPECS', 'BUILDERS', 'GENERIC', 'OFFICIAL_KEY_MAP', 'OUTPUT_KEY', 'COCO_KEYPOINT_NAMES',
           'COCO_FLIP_PAIRS', 'COCO_SKELETON', 'COCO_UPPER_BODY_IDS', 'COCO_JOINT_WEIGHTS', 'USAGE', 'build',
           'keypoint_set_of']

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


MMPOSE_REPO = 'https://github.com/open-mmlab/mmpose'
# mmpose's top-down models: (name, trunk, keypoint set, input (H, W), codec, dataset label when not the
# set's). The head is HRNetV1's 1x1 conv for the HRNet-W32 / W48 trunks, HRNetV2's for HRNetV2-W18.
_MMPOSE: Tuple[Tuple[Any, ...], ...] = (
    # COCO: the official specs above take mmpose's plain MSRA files; DARK, UDP and UDP + regression here
    *((f'hrnet_w{w}_pose_coco_{h}x{wd}_{kind}', f'hrnet_w{w}', 'coco', (h, wd), codec, None)
      for kind, codec in (('dark', 'mmpose_dark'), ('udp', 'mmpose_udp'))
      for w in (32, 48) for h, wd in ((256, 192), (384, 288))),
    ('hrnet_w32_pose_coco_256x192_udp_regress', 'hrnet_w32', 'coco', (256, 192), 'mmpose_udp_combined', None),
    ('hrnet_w32_pose_coco_aic_merge_256x192', 'hrnet_w32', 'coco', (256, 192), 'mmpose_msra', 'coco_aic_merge'),
    ('hrnet_w32_pose_coco_aic_256x192', 'hrnet_w32', 'coco_aic', (256, 192), 'mmpose_msra', None),
    ('hrnet_w32_pose_aic_256x192', 'hrnet_w32', 'aic', (256, 192), 'mmpose0x_msra', None),
    ('hrnet_w32_pose_crowdpose_256x192', 'hrnet_w32', 'crowdpose', (256, 192), 'mmpose0x_msra', None),
    ('hrnet_w32_pose_exlpose_256x192', 'hrnet_w32', 'exlpose', (256, 192), 'mmpose_msra', None),
    *((f'hrnet_w{w}_pose_humanart_256x192', f'hrnet_w{w}', 'coco', (256, 192), 'mmpose_msra', 'humanart')
      for w in (32, 48)),
    *((f'hrnet_w{w}_pose_{s}_256x256{sfx}', f'hrnet_w{w}', s, (256, 256), codec, None)
      for s, sfx, codec in (('mpii', '', 'mmpose0x_msra'), ('mpii', '_dark', 'mmpose0x_dark'),
                            ('h36m', '', 'mmpose0x_msra')) for w in (32, 48)),
    *((f'hrnet_w{w}_pose_posetrack18_{h}x{wd}', f'hrnet_w{w}', 'posetrack18', (h, wd), 'mmpose0x_msra', None)
      for w in (32, 48) for h, wd in ((256, 192), (384, 288))),
    *((f'hrnet_w{w}_pose_coco_wholebody_{h}x{wd}', f'hrnet_w{w}', 'coco_wholebody', (h, wd), 'mmpose0x_msra', None)
      for w in (32, 48) for h, wd in ((256, 192), (384, 288))),
    ('hrnet_w32_pose_coco_wholebody_256x192_dark', 'hrnet_w32', 'coco_wholebody', (256, 192), 'mmpose0x_dark', None),
    ('hrnet_w48_pose_coco_wholebody_384x288_dark', 'hrnet_w48', 'coco_wholebody', (384, 288), 'mmpose0x_dark_k17',
     None),
    ('hrnet_w32_pose_ubody_256x192', 'hrnet_w32', 'coco_wholebody', (256, 192), 'mmpose_msra', 'ubody'),
    ('hrnet_w48_pose_halpe_384x288_dark', 'hrnet_w48', 'halpe', (384, 288), 'mmpose0x_dark_k17', None),
    *((f'hrnet_w48_pose_deepfashion_{part}_256x192_udp', 'hrnet_w48', f'deepfashion_{part}', (256, 192), 'mmpose_udp',
       None) for part in ('upper', 'lower', 'full')),
    # hands: HRNetV2-W18
    *((f'hrnet_w18_hand_{label}_256x256{sfx}', 'hrnet_w18', s, (256, 256), codec, None)
      for label, s in (('onehand10k', 'onehand10k'), ('rhd2d', 'rhd2d'), ('panoptic', 'panoptic_hand2d'),
                       ('coco_wholebody_hand', 'coco_wholebody_hand'))
      for sfx, codec in (('', 'mmpose0x_msra'), ('_dark', 'mmpose0x_dark'), ('_udp', 'mmpose0x_udp'))
      if not (label == 'coco_wholebody_hand' and sfx == '_udp')),
    # animals
    *((f'hrnet_w{w}_animal_{label}_{h}x{wd}', f'hrnet_w{w}', s, (h, wd), 'mmpose0x_msra', None)
      for label, s, (h, wd) in (('ap10k', 'ap10k', (256, 256)), ('animalpose', 'animalpose', (256, 256)),
                                ('macaque', 'macaque', (256, 192)), ('horse10', 'horse10', (256, 256)),
                                ('atrw', 'atrw', (256, 256)))
      for w in (32, 48)),
    ('hrnet_w32_animal_animalkingdom_256x256', 'hrnet_w32', 'animal_kingdom', (256, 256), 'mmpose_msra', None),
)


def _mmpose_spec(name: str, trunk: str, set_name: str, size: Tuple[int, int], codec: str,
                 dataset: Optional[str]) -> TaskModelSpec:
    kps = get_keypoint_set(set_name)
    v2 = trunk == 'hrnet_w18'
    options: dict = {'keypoint_set': kps.name}
    if v2:
        options.update(align_corners=False, bn_momentum=0.1)
    if get_codec(codec).maps_per_keypoint != 1:
        options['maps_per_keypoint'] = get_codec(codec).maps_per_keypoint
    net = 'HRNetV2-W18' if v2 else f'HRNet-W{trunk.split("_w")[1]}'
    return TaskModelSpec(
        name=name, task='pose', trunk=trunk, head='v2' if v2 else 'v1', num_outputs=kps.num_keypoints,
        input_size=size, dataset=dataset or kps.name, flip_pairs=kps.flip_pairs, options=options, codec=codec,
        license='apache-2.0', key_map=KeyMap(strip=('module.',)),
        description=f'mmpose {net}, {kps.num_keypoints} {kps.mmpose_name or kps.name} keypoints at '
                    f'{size[0]}x{size[1]} ({codec})')


MMPOSE_SPECS: Tuple[TaskModelSpec, ...] = tuple(_mmpose_spec(*row) for row in _MMPOSE)

SPECS: Tuple[TaskModelSpec, ...] = (
    _official('hrnet_w32', (256, 192), '28.5M', (74.4, 90.5, 81.9, 70.8, 81.0, 79.8, 94.2, 86.5, 75.7, 85.8)),
    _official('hrnet_w32', (384, 288), '28.5M', (75.8, 90.6, 82.5, 72.0, 82.7, 80.9, 94.3, 86.9, 76.7, 87.1)),
    _official('hrnet_w48', (256, 192), '63.6M', (75.1, 90.6, 82.2, 71.5, 81.8, 80.4, 94.3, 86.7, 76.2, 86.4)),
    _official('hrnet_w48', (384, 288), '63.6M', (76.3, 90.8, 82.9, 72.3, 83.4, 81.2, 94.2, 87.1, 76.7, 87.6)),
    TaskModelSpec(name=GENERIC, task='pose', trunk='hrnet_w32', head='v1', num_outputs=17, input_size=(256, 192),
                  dataset='coco', flip_pairs=COCO_FLIP_PAIRS, codec='udp',
                  description='Generic HRNetV1 pose model: arch= (any trunk of the variant table, e.g. '
                              "'hrnet_w18_small') or width=, num_keypoints=, input_size=, flip_pairs="),
    *MMPOSE_SPECS,
)
# the constructor options a spec may carry (the rest, e.g. keypoint_set, only describe the model)
_BUILD_OPTIONS = ('maps_per_keypoint', 'bn_momentum', 'align_corners')


def keypoint_set_of(model_or_cfg: Any):
    """The :class:`~hrnet_zoo.tasks.keypoints.KeypointSet` of a model (its ``pretrained_cfg``, or
    the config itself): ``keypoint_set``, else its ``dataset`` when that is a set's name; None when
    neither is (a generic model trained on a set of its own)."""
    cfg = getattr(model_or_cfg, 'pretrained_cfg', model_or_cfg) or {}
    from ..keypoints import KeypointSetError
    for name in (cfg.get('keypoint_set'), cfg.get('dataset')):
        if name:
            try:
                kps = get_keypoint_set(name)
            except KeypointSetError:
                continue
            if kps.num_keypoints == cfg.get('num_outputs', kps.num_keypoints):
                return kps
    return None


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
    if n != spec.num_outputs:  # another keypoint set: the spec's no longer describes the model
        changes.setdefault('keypoint_set', None)
    cfg = spec.pretrained_cfg(**changes, trunk=trunk)
    explicit_maps = 'maps_per_keypoint' in kwargs
    options = {k: kwargs.pop(k, v) for k, v in spec.options.items() if k in _BUILD_OPTIONS}
    if spec.head != 'v2' and not explicit_maps:  # the codec decides the maps per keypoint (codec= included)
        options['maps_per_keypoint'] = get_codec(cfg['codec']).maps_per_keypoint
    net = PoseHRNetV2 if spec.head == 'v2' else PoseHRNet
    return net(trunk, num_keypoints=n, flip_pairs=pairs, input_size=size, pretrained_cfg=cfg, **options, **kwargs)


BUILDERS = register_specs(SPECS, build, output_key=OUTPUT_KEY)

# the one-image call, for model cards and docs (run by tests/test_pose_specs.py)
USAGE = """```python
from hrnet_zoo.tasks.pose import predict
people = predict(model, 'people.jpg', boxes=[[10, 5, 40, 60], [60, 8, 35, 58]])  # [x, y, w, h]; or detector=...
for person in people:  # best first, duplicates removed by OKS-NMS
    print(person['score'], person['keypoints'], person['keypoint_scores'])  # (K, 2) image px, (K,)
```"""
