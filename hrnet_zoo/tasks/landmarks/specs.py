"""The landmark model table: the four face-alignment benchmarks and one HRNetV2-W18 model each.

:data:`FACE_DATASETS`: landmark count, left/right flip pairs (0-based) and the NME normaliser, from
the official HRNet-Facial-Landmark-Detection code (``lib/utils/transforms.py`` MATCHED_PARTS;
``lib/core/evaluation.py`` compute_nme): inter-ocular distance (outer eye corners) for 300W
(36, 45), WFLW (60, 72) and COFW (8, 9); the face box size for AFLW.

:data:`SPECS`: ``hrnet_w18_face_<dataset>``, 256x256 crops, with the official checkpoint
(``HR18-<DATASET>.pth``), its key map :data:`OFFICIAL_KEY_MAP` and the official NME (in %, from the
repository's README) and the heatmap codec of the official weights, ``'face'``
(:mod:`hrnet_zoo.tasks.codecs`: the official crop, targets and ``decode_preds`` as published).
``arch=`` builds the same head on another trunk (then ``pretrained_cfg['trunk']`` names it and the
official figures no longer apply), ``codec=`` another codec. A :class:`FaceHRNet` built without a
spec (``build_face_model(num_landmarks=...)``) decodes under ``'udp'``, the convention of every
landmark model trained here before codecs existed.

:data:`MMPOSE_SPECS`: mmpose's face HRNetV2-W18 models (``face_2d_keypoint/topdown_heatmap``), the
same network, trained and decoded under mmpose's heatmap codecs rather than the official face
crop: ``hrnet_w18_face_<set>_msra`` (``MSRAHeatmap``; the AWing-loss WFLW file is a record of it,
``hrnet_w18_face_wflw_msra.mmpose_awing``: same targets and decoding) and ``..._dark``, for WFLW,
300W, 300W-LP (the 300W landmarks), AFLW, COFW and COCO-WholeBody-Face; landmark names, flip pairs
and the NME normaliser from :mod:`hrnet_zoo.tasks.keypoints`. Their files are the manifest's
records (``docs/openmmlab.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ...checkpoint import KeyMap, load_trunk, load_weights
from ..codecs import get_codec, set_codec
from ..keypoints import get_keypoint_set
from ..registry import OfficialCheckpoint, TaskModelSpec, register_specs, spec_overrides
from .models import FACE_BN_MOMENTUM, FaceHRNet

__all__ = ['FaceDatasetSpec', 'FACE_DATASETS', 'OFFICIAL_KEY_MAP', 'OFFICIAL_FACE_KEY_MAP', 'OFFICIAL_REPO',
           'SPECS', 'MMPOSE_SPECS', 'BUILDERS', 'OUTPUT_KEY', 'build', 'build_face_model', 'spec_for',
           'face_dataset_spec']


@dataclass(frozen=True)
class FaceDatasetSpec:
    name: str
    num_landmarks: int
    flip_pairs: Tuple[Tuple[int, int], ...]
    eye_corners: Optional[Tuple[int, int]]   # None: normalise by the box size (AFLW)


def _zero_based(pairs):
    return tuple((a - 1, b - 1) for a, b in pairs)


FACE_DATASETS: Dict[str, FaceDatasetSpec] = {
    '300w': FaceDatasetSpec('300w', 68, _zero_based((
        (1, 17), (2, 16), (3, 15), (4, 14), (5, 13), (6, 12), (7, 11), (8, 10), (18, 27), (19, 26),
        (20, 25), (21, 24), (22, 23), (32, 36), (33, 35), (37, 46), (38, 45), (39, 44), (40, 43),
        (41, 48), (42, 47), (49, 55), (50, 54), (51, 53), (62, 64), (61, 65), (68, 66), (59, 57),
        (60, 56))), (36, 45)),
    'aflw': FaceDatasetSpec('aflw', 19, _zero_based((
        (1, 6), (2, 5), (3, 4), (7, 12), (8, 11), (9, 10), (13, 15), (16, 18))), None),
    'cofw': FaceDatasetSpec('cofw', 29, _zero_based((
        (1, 2), (5, 7), (3, 4), (6, 8), (9, 10), (11, 12), (13, 15), (17, 18), (14, 16), (19, 20),
        (23, 24))), (8, 9)),
    'wflw': FaceDatasetSpec('wflw', 98, tuple(
        [(i, 32 - i) for i in range(16)]
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
           (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
           (55, 59), (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84),
           (88, 92), (89, 91), (95, 93), (96, 97)]), (60, 72)),
}


def face_dataset_spec(model_or_name: Any) -> FaceDatasetSpec:
    """The benchmark of a model (its ``pretrained_cfg``) or of a dataset / keypoint-set name:
    :data:`FACE_DATASETS` for the official four, else from the keypoint set (its flip pairs; its
    NME's ``norm_keypoints``, None for a box-normalised set)."""
    cfg = getattr(model_or_name, 'pretrained_cfg', None)
    names = (model_or_name,) if cfg is None else (cfg.get('dataset'), cfg.get('keypoint_set'))
    for name in names:
        if name in FACE_DATASETS:
            return FACE_DATASETS[name]
    name = next((n for n in reversed(names) if n), None)
    if name is None:  # a model built without a dataset: the benchmark of its landmark count, if any
        found = spec_for((cfg or {}).get('num_outputs', 0))
        if found is None:
            raise ValueError('the model names no dataset or keypoint set: pass spec=FaceDatasetSpec(...)')
        return found
    kps = get_keypoint_set(name)
    nme = next((m for m in kps.metrics if m.metric == 'NME'), None)
    eyes = nme.norm_keypoints if nme is not None and nme.normalizer == 'keypoints' else None
    return FaceDatasetSpec(kps.name, kps.num_keypoints, kps.flip_pairs, eyes)


def spec_for(num_landmarks: int) -> Optional[FaceDatasetSpec]:
    """The benchmark with this many landmarks, if any."""
    return next((s for s in FACE_DATASETS.values() if s.num_landmarks == num_landmarks), None)


OFFICIAL_REPO = 'https://github.com/HRNet/HRNet-Facial-Landmark-Detection'
# Official checkpoints: DataParallel's 'module.', trunk keys as ours, the head as head.0 / head.1 / head.3.
OFFICIAL_KEY_MAP = KeyMap(strip=('module.',), rename=(
    ('head.0.', 'representation.mix.0.'),
    ('head.1.', 'representation.mix.1.'),
    ('head.3.', 'final_layer.'),
))
OFFICIAL_FACE_KEY_MAP: Tuple[Tuple[str, str], ...] = OFFICIAL_KEY_MAP.rename  # (official, ours) head prefixes
OUTPUT_KEY = 'final_layer.weight'
_SOURCE = 'HRNet-Facial-Landmark-Detection README (HRNetV2-W18; NME and FR in %)'
# README tables: (split, official figures, OneDrive link of HR18-<DATASET>.pth)
_OFFICIAL = {
    'wflw': ('test', {'nme': 4.60}, 'https://1drv.ms/u/s!AiWjZ1LamlxzdTsr_9QZCwJsn5U'),
    '300w': ('full', {'nme': 3.34, 'nme_common': 2.91, 'nme_challenge': 5.11, 'nme_test': 3.85},
             'https://1drv.ms/u/s!AiWjZ1LamlxzeYLmza1XU-4WhnQ'),
    'aflw': ('full', {'nme': 1.57, 'nme_frontal': 1.46}, 'https://1drv.ms/u/s!AiWjZ1Lamlxzc7xumEw810iBLTc'),
    'cofw': ('test', {'nme': 3.45, 'fr': 0.20}, 'https://1drv.ms/u/s!AiWjZ1LamlxzdFIsEUQl8jgUaMk'),
}


def _face_spec(dataset: str) -> TaskModelSpec:
    data = FACE_DATASETS[dataset]
    split, figures, link = _OFFICIAL[dataset]
    label = dataset.upper()
    return TaskModelSpec(
        name=f'hrnet_w18_face_{dataset}', task='landmarks', trunk='hrnet_w18', head='v2', num_outputs=data.num_landmarks,
        input_size=(256, 256), dataset=dataset, flip_pairs=data.flip_pairs,
        official=OfficialCheckpoint(f'HR18-{label}.pth', OFFICIAL_REPO, link, OFFICIAL_KEY_MAP),
        metrics={'dataset': label, 'split': split, **figures, 'source': _SOURCE},
        options={'align_corners': False, 'bn_momentum': FACE_BN_MOMENTUM}, codec='face',
        description=f'HRNetV2-W18, {data.num_landmarks} {label} landmarks, 256x256 face crops')


# mmpose's face models: (set of the name, keypoint set, codec); 300W-LP is labelled with the 300W landmarks
_MMPOSE = (('wflw', 'wflw', 'mmpose0x_msra'), ('wflw', 'wflw', 'mmpose0x_dark'), ('300w', '300w', 'mmpose0x_msra'),
           ('300wlp', '300w', 'mmpose_msra'), ('aflw', 'aflw', 'mmpose0x_msra'), ('aflw', 'aflw', 'mmpose0x_dark'),
           ('cofw', 'cofw', 'mmpose0x_msra'), ('coco_wholebody_face', 'coco_wholebody_face', 'mmpose0x_msra'),
           ('coco_wholebody_face', 'coco_wholebody_face', 'mmpose0x_dark'))


def _mmpose_spec(label: str, set_name: str, codec: str) -> TaskModelSpec:
    kps = get_keypoint_set(set_name)
    kind = 'dark' if 'dark' in codec else 'msra'
    return TaskModelSpec(
        name=f'hrnet_w18_face_{label}_{kind}', task='landmarks', trunk='hrnet_w18', head='v2',
        num_outputs=kps.num_keypoints, input_size=(256, 256), dataset=label, flip_pairs=kps.flip_pairs,
        options={'align_corners': False, 'bn_momentum': 0.1, 'keypoint_set': kps.name}, codec=codec,
        license='apache-2.0', key_map=KeyMap(strip=('module.',)),
        description=f'mmpose HRNetV2-W18, {kps.num_keypoints} {label.upper()} landmarks, 256x256 ({codec})')


MMPOSE_SPECS: Tuple[TaskModelSpec, ...] = tuple(_mmpose_spec(*row) for row in _MMPOSE)
SPECS: Tuple[TaskModelSpec, ...] = tuple(_face_spec(d) for d in ('wflw', '300w', 'aflw', 'cofw')) + MMPOSE_SPECS
_BUILD_OPTIONS = ('align_corners', 'bn_momentum')  # the options FaceHRNet takes (keypoint_set only describes)


def build(spec: TaskModelSpec, arch: Optional[str] = None, weights_backbone: Any = None, **kwargs: Any) -> FaceHRNet:
    """The model of ``spec``; ``arch`` another trunk, ``num_landmarks`` / ``flip_pairs`` /
    ``input_size`` / ``bn_momentum`` / ``align_corners`` / ``in_chans`` override the spec (and its
    ``pretrained_cfg`` says so), as does ``codec``; ``weights_backbone`` (``'imagenet'``, a
    classifier checkpoint or state_dict) initialises the trunk (:func:`hrnet_zoo.checkpoint.load_trunk`)."""
    if kwargs.get('codec') is not None:
        kwargs['codec'] = get_codec(kwargs['codec']).name
    changes = spec_overrides(spec, kwargs, 'num_landmarks', 'flip_pairs', 'input_size', 'codec')
    for unset in ('num_landmarks', 'flip_pairs', 'input_size', 'codec'):
        kwargs.pop(unset, None)
    num = changes.get('num_landmarks', spec.num_outputs)
    if num != spec.num_outputs:  # the spec's flip pairs and dataset belong to its landmark set
        changes.setdefault('flip_pairs', ())
        changes['dataset'] = None
        if 'keypoint_set' in spec.options:
            changes['keypoint_set'] = None
    options = {k: kwargs.pop(k, v) for k, v in spec.options.items() if k in _BUILD_OPTIONS}
    changes.update({k: v for k, v in options.items() if v != spec.options[k]})
    if arch not in (None, spec.trunk):
        changes['trunk'] = arch
    if num != spec.num_outputs or 'trunk' in changes:  # the official figures are of the spec's model
        changes.update(metrics={}, official_checkpoint=None)
    model = FaceHRNet(arch or spec.trunk, num_landmarks=num, flip_pairs=changes.get('flip_pairs', spec.flip_pairs),
                      input_size=changes.get('input_size', spec.input_size), **options, **kwargs,
                      pretrained_cfg=spec.pretrained_cfg(**changes))
    if weights_backbone is not None:
        load_trunk(model, weights_backbone)
    return model


BUILDERS = register_specs(SPECS, build, output_key=OUTPUT_KEY)
_BY_DATASET = {s.dataset: s for s in SPECS if s.official is not None}


def build_face_model(num_landmarks: int = 98, arch: str = 'hrnet_w18', dataset: Optional[str] = None,
                     checkpoint_path: Optional[str] = None, weights_backbone: Any = None, **kwargs: Any) -> FaceHRNet:
    """HRNetV2 landmark model on trunk ``arch``: the registered model of ``dataset`` ('wflw', '300w',
    'aflw', 'cofw': its landmark count and flip pairs), or a :class:`FaceHRNet` of ``num_landmarks``
    heatmaps (no flip pairs unless given) described by its own ``pretrained_cfg`` (codec ``'udp'``
    unless ``codec=``). ``checkpoint_path``: an official ``HR18-*.pth``, an engine checkpoint or a
    safetensors file."""
    if dataset is not None:
        if dataset not in _BY_DATASET:
            raise ValueError(f'unknown face dataset {dataset!r}; choose one of {sorted(_BY_DATASET)}')
        return BUILDERS[_BY_DATASET[dataset].name](checkpoint_path=checkpoint_path, arch=arch,
                                                   weights_backbone=weights_backbone, **kwargs)
    codec = kwargs.pop('codec', None)
    model = FaceHRNet(arch, num_landmarks=num_landmarks, **kwargs)
    if codec is not None:
        set_codec(model, codec)
    if weights_backbone is not None:
        load_trunk(model, weights_backbone)
    if checkpoint_path:
        load_weights(model, checkpoint_path, OFFICIAL_KEY_MAP, OUTPUT_KEY, 'landmarks')
    return model
