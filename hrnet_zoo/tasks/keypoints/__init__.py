"""Keypoint sets as data: the datasets mmpose's HRNet checkpoints were trained on.

One YAML file per set in ``data/`` holds what a model of that set needs: keypoint names, left/right
flip pairs, OKS sigmas, skeleton, joint (loss) weights, upper/lower body ids, colours, and how the
field evaluates it (:class:`Metric`), each file citing the mmpose file it was read from
(``open-mmlab/mmpose`` @ 759b39c, ``configs/_base_/datasets/<set>.py``, ``dataset_info``) and the
dataset's paper.

Conventions (those of mmpose's ``parse_pose_metainfo``, ``mmpose/datasets/datasets/utils.py``):

- every index is 0-based into ``keypoint_names``;
- ``flip_pairs`` lists each left/right pair once, ``(i, j)`` with ``i < j``, from mmpose's ``swap``
  names; keypoints on the symmetry axis (nose, hand keypoints: one hand flips into the other
  hand's set) have none. ``flip_indices[k]`` is the mirror of ``k`` (``k`` itself when unpaired);
- ``sigmas`` are the OKS constants (COCO's 17 are 0.026 ... 0.089); ``None`` where mmpose has none
  (faces but COCO-WholeBody-Face, hands but COCO-WholeBody-Hand, DeepFashion, Human3.6M, Horse-10);
- ``upper_body_ids`` / ``lower_body_ids`` come from mmpose's ``type`` field (half-body
  augmentation), empty where mmpose types none (faces, hands, DeepFashion);
- ``keypoint_colors`` / ``skeleton_colors`` are the ``[r, g, b]``-style triples as mmpose lists them.

``get_keypoint_set('coco')`` answers for a name or an alias (``'rhd'``, ``'ak'``, ...);
:func:`load_keypoint_set` reads and checks a set of your own (a path or a mapping of the same keys).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml

__all__ = ['KeypointSet', 'Metric', 'KeypointSetError', 'KEYPOINT_SETS', 'get_keypoint_set',
           'list_keypoint_sets', 'load_keypoint_set']

GROUPS = ('body', 'wholebody', 'fashion', 'face', 'hand', 'animal')
# how a metric scales distances / OKS (see Metric)
NORMALIZERS = ('area', 'bbox_area', 'bbox', 'bbox_size', 'head', 'keypoints', 'pixels')

Pair = Tuple[int, int]


class KeypointSetError(ValueError):
    """A keypoint set (packaged or given) is malformed or unknown."""


@dataclass(frozen=True)
class Metric:
    """One metric as a field's configs evaluate a set.

    Args:
        metric: ``'AP'`` (COCO-style OKS AP with the set's sigmas), ``'mAP'`` (PoseTrack's poseval),
            ``'PCK'``, ``'PCKh'``, ``'NME'``, ``'AUC'`` (of the PCK curve) or ``'EPE'`` (pixels).
        threshold: PCK / PCKh threshold as a fraction of the normaliser (``0.2`` = PCK@0.2).
        normalizer: ``'area'`` (OKS scale from the annotated area), ``'bbox_area'`` (OKS scale from
            the box, mmpose ``use_area=False``), ``'bbox'`` / ``'bbox_size'`` (max of the box's width
            and height), ``'head'`` (head size: MPII 0.6 x head-box diagonal, Panoptic the annotated
            head size), ``'keypoints'`` (distance between ``norm_keypoints``), ``'pixels'``
            (``norm_factor`` pixels); ``None`` for EPE.
        norm_keypoints: the two keypoints whose distance normalises (inter-ocular for faces).
        norm_factor: the constant normaliser in pixels (AUC: 30).
        num_thresholds: AUC thresholds ``i / num_thresholds``, ``i = 0 .. num_thresholds - 1``.
        keypoint_indices: the outputs that are scored (``None``: all).
        mmpose: the evaluator as mmpose's config writes it.
    """
    metric: str
    threshold: Optional[float] = None
    normalizer: Optional[str] = None
    norm_keypoints: Optional[Pair] = None
    norm_factor: Optional[float] = None
    num_thresholds: Optional[int] = None
    keypoint_indices: Optional[Tuple[int, ...]] = None
    mmpose: str = ''


@dataclass(frozen=True)
class KeypointSet:
    """A dataset's keypoints, as data (see the module docstring for the conventions).

    ``name`` is this package's name (``'coco'``, ``'300w'``, ``'animal_kingdom'``), ``mmpose_name``
    mmpose's ``dataset_name``; ``group`` one of :data:`GROUPS`; ``metrics`` how mmpose's configs
    evaluate the set, read from ``metric_source``; ``source`` the metainfo file; ``citation`` the
    dataset paper(s); ``notes`` what differs from mmpose's file or needs saying.
    """
    name: str
    group: str
    keypoint_names: Tuple[str, ...]
    flip_pairs: Tuple[Pair, ...]
    sigmas: Optional[Tuple[float, ...]]
    skeleton: Tuple[Pair, ...]
    joint_weights: Tuple[float, ...]
    upper_body_ids: Tuple[int, ...]
    lower_body_ids: Tuple[int, ...]
    metrics: Tuple[Metric, ...]
    source: str
    citation: Tuple[str, ...]
    metric_source: str = ''
    mmpose_name: str = ''
    aliases: Tuple[str, ...] = ()
    keypoint_colors: Optional[Tuple[Tuple[int, int, int], ...]] = None
    skeleton_colors: Optional[Tuple[Tuple[int, int, int], ...]] = None
    notes: Tuple[str, ...] = ()

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_indices(self) -> Tuple[int, ...]:
        """The mirror of each keypoint: ``out[k]`` is ``k``'s partner, ``k`` when unpaired."""
        out = list(range(self.num_keypoints))
        for i, j in self.flip_pairs:
            out[i], out[j] = j, i
        return tuple(out)

    def index(self, keypoint: str) -> int:
        """The index of the keypoint called ``keypoint``."""
        try:
            return self.keypoint_names.index(keypoint)
        except ValueError:
            raise KeypointSetError(f'{self.name} has no keypoint {keypoint!r}; its keypoints: '
                                   f'{", ".join(self.keypoint_names)}') from None


def _pairs(rows: Any, what: str, k: int, name: str) -> Tuple[Pair, ...]:
    out = tuple(tuple(int(v) for v in row) for row in rows or ())
    bad = [p for p in out if len(p) != 2 or not all(0 <= v < k for v in p)]
    if bad:
        raise KeypointSetError(f'{name}: {what} {bad[:3]} are not pairs of indices in 0..{k - 1}')
    return out


def _per_keypoint(values: Any, what: str, k: int, name: str) -> Optional[Tuple[float, ...]]:
    if values is None:
        return None
    out = tuple(float(v) for v in values)
    if len(out) != k:
        raise KeypointSetError(f'{name}: {len(out)} {what} for {k} keypoints; give one per keypoint')
    return out


def _check_flip(pairs: Tuple[Pair, ...], name: str) -> None:
    seen: Dict[int, int] = {}
    for i, j in pairs:
        if i == j:
            raise KeypointSetError(f'{name}: flip pair ({i}, {j}) pairs a keypoint with itself; leave it out')
        for v in (i, j):
            if v in seen:
                raise KeypointSetError(f'{name}: keypoint {v} is in two flip pairs; each keypoint has one mirror')
            seen[v] = 1


def _metric(row: Mapping[str, Any], name: str) -> Metric:
    known = {f.name for f in fields(Metric)}
    unknown = set(row) - known
    if unknown or 'metric' not in row:
        raise KeypointSetError(f'{name}: metric entry {dict(row)} needs "metric" and only the keys {sorted(known)}')
    if row.get('normalizer') not in (None, *NORMALIZERS):
        raise KeypointSetError(f'{name}: normalizer {row["normalizer"]!r} is not one of {NORMALIZERS}')
    kw = dict(row)
    for key in ('norm_keypoints', 'keypoint_indices'):
        if kw.get(key) is not None:
            kw[key] = tuple(int(v) for v in kw[key])
    return Metric(**kw)


def load_keypoint_set(source: Union[str, Path, Mapping[str, Any]]) -> KeypointSet:
    """A :class:`KeypointSet` from a YAML file or a mapping with the keys of the packaged files
    (``name``, ``keypoint_names``, ``flip_pairs``, ``sigmas``, ``skeleton``, ``joint_weights``, ...),
    checked: indices in range, one value per keypoint, unique names, one mirror per keypoint."""
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise KeypointSetError(f'no keypoint-set file {str(path)!r}')
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
        if not isinstance(raw, Mapping):
            raise KeypointSetError(f'{str(path)!r} holds no mapping of keypoint-set keys (name, keypoint_names, ...)')
    name = str(raw.get('name', '<unnamed>'))
    names = tuple(str(n) for n in raw.get('keypoint_names') or ())
    k = len(names)
    if not k or len(set(names)) != k:
        raise KeypointSetError(f'{name}: keypoint_names must be a non-empty list of unique names')
    if raw.get('num_keypoints', k) != k:
        raise KeypointSetError(f'{name}: num_keypoints is {raw["num_keypoints"]} but {k} names are listed')
    if raw.get('group', 'body') not in GROUPS:
        raise KeypointSetError(f'{name}: group {raw["group"]!r} is not one of {GROUPS}')
    flip = _pairs(raw.get('flip_pairs'), 'flip pairs', k, name)
    _check_flip(flip, name)
    ids = {key: tuple(int(v) for v in raw.get(key) or ()) for key in ('upper_body_ids', 'lower_body_ids')}
    for key, vals in ids.items():
        if any(not 0 <= v < k for v in vals):
            raise KeypointSetError(f'{name}: {key} has indices outside 0..{k - 1}')
    weights = _per_keypoint(raw.get('joint_weights', [1.0] * k), 'joint weights', k, name)
    colors = {key: None if raw.get(key) is None else tuple(tuple(int(c) for c in rgb) for rgb in raw[key])
              for key in ('keypoint_colors', 'skeleton_colors')}
    skeleton = _pairs(raw.get('skeleton'), 'skeleton links', k, name)
    if colors['keypoint_colors'] is not None and len(colors['keypoint_colors']) != k:
        raise KeypointSetError(f'{name}: {len(colors["keypoint_colors"])} keypoint colours for {k} keypoints')
    if colors['skeleton_colors'] is not None and len(colors['skeleton_colors']) != len(skeleton):
        raise KeypointSetError(f'{name}: {len(colors["skeleton_colors"])} link colours for {len(skeleton)} links')
    return KeypointSet(
        name=name, group=raw.get('group', 'body'), keypoint_names=names, flip_pairs=flip,
        sigmas=_per_keypoint(raw.get('sigmas'), 'sigmas', k, name), skeleton=skeleton,
        joint_weights=weights, metrics=tuple(_metric(m, name) for m in raw.get('metrics') or ()),
        source=str(raw.get('source', '')), citation=tuple(raw.get('citation') or ()),
        metric_source=str(raw.get('metric_source', '')), mmpose_name=str(raw.get('mmpose_name', '')),
        aliases=tuple(raw.get('aliases') or ()), notes=tuple(raw.get('notes') or ()), **ids, **colors)


def _data():
    return resources.files(__name__) / 'data'


@lru_cache(maxsize=None)
def _load_packaged(stem: str) -> KeypointSet:
    return load_keypoint_set(Path(str(_data() / f'{stem}.yaml')))


@lru_cache(maxsize=1)
def _packaged() -> Dict[str, KeypointSet]:
    stems = sorted(p.name[:-len('.yaml')] for p in _data().iterdir() if p.name.endswith('.yaml'))
    return {stem: _load_packaged(stem) for stem in stems}  # each file is named after its set


@lru_cache(maxsize=1)
def _aliases() -> Dict[str, str]:
    out = {}
    for s in _packaged().values():
        for alias in (s.name, s.mmpose_name, *s.aliases):
            out.setdefault(alias.lower().replace('-', '_').replace(' ', '_'), s.name)
    return out


def list_keypoint_sets(group: Optional[str] = None) -> List[str]:
    """Names of the packaged sets, sorted (``group``: only ``'body'``, ``'face'``, ``'hand'``, ...)."""
    if group is not None and group not in GROUPS:
        raise KeypointSetError(f'unknown group {group!r}; groups: {", ".join(GROUPS)}')
    return sorted(n for n, s in _packaged().items() if group in (None, s.group))


def get_keypoint_set(name: str) -> KeypointSet:
    """The packaged set called ``name`` or one of its aliases (case, ``-`` and spaces ignored:
    ``'COCO-WholeBody-Hand'`` is ``'coco_wholebody_hand'``)."""
    key = str(name).lower().replace('-', '_').replace(' ', '_')
    if (_data() / f'{key}.yaml').is_file():  # a set's own name: read only its file
        return _load_packaged(key)
    if key not in _aliases():
        raise KeypointSetError(f'unknown keypoint set {name!r}; packaged sets: {", ".join(list_keypoint_sets())} '
                               '(or load_keypoint_set(path) for your own)')
    return _packaged()[_aliases()[key]]


def __getattr__(attr: str) -> Any:  # KEYPOINT_SETS is read from the YAML files on first use
    if attr == 'KEYPOINT_SETS':
        return MappingProxyType(_packaged())
    raise AttributeError(f'module {__name__!r} has no attribute {attr!r}')
