"""Heatmap codecs as data: the pixel conventions a pose / landmark model was trained with.

A network trained under one convention loses accuracy decoded under another, so each convention
is a named, frozen :class:`HeatmapCodec` (mmpose's ``MSRAHeatmap`` / ``UDPHeatmap`` in spirit)
holding box -> centre/scale and the ground-truth box cleaning, the crop (matrix and image), the
target encoding, the decoding (argmax + refinement under its border rule), the flip test and the
back-projection to image pixels. Every pose / landmark spec names the codec of its weights
(``pretrained_cfg['codec']``); predict, eval, the datasets and training take it from the model.

========================  =========  =================  ==============  ============  ==========
codec                     crop       targets            refinement      flip test     GT boxes
========================  =========  =================  ==============  ============  ==========
``msra``                  (W/2,H/2)  ``int(x/4+0.5)``   quarter (2..)   +1 px shift   sanitized
``dark``                  (W/2,H/2)  sub-pixel, full    DARK            +1 px shift   sanitized
``udp``                   ((W-1)/2)  sub-pixel, 3 sigma quarter (2..)   exact         clipped
``udp_dark``              ((W-1)/2)  sub-pixel, 3 sigma DARK            exact         clipped
``face``                  int box    ``int(T(x))``      quarter (1..)   (none)        --
``face_continuous``       int box    ``int(T(x))``      quarter (1..)   (none)        --
========================  =========  =================  ==============  ============  ==========

* ``msra``: deep-high-resolution-net.pytorch exactly (Xiao et al., "Simple Baselines", ECCV
  2018; Sun et al., HRNet, CVPR 2019): ``COCODataset`` box cleaning and ``_xywh2cs``,
  ``get_affine_transform`` (the box centre on crop pixel (W/2, H/2): x = 96 of 192),
  ``generate_target`` (centre ``int(x / 4 + 0.5)``, 13-pixel window for sigma 2),
  ``get_final_preds`` (quarter offset when ``1 < px < w - 1`` and ``1 < py < h - 1``,
  ``transform_preds``) and the flip test with ``SHIFT_HEATMAP``. The official pose weights.
* ``dark``: the msra geometry with DARK (Zhang et al., "Distribution-Aware Coordinate
  Representation for Human Pose Estimation", CVPR 2020) as mmpose's ``MSRAHeatmap(unbiased=
  True)``: sub-pixel Gaussian targets over the whole map, decoding by a Taylor step on the log of
  the blurred (11 taps) heatmap.
* ``udp``: unbiased data processing (Huang et al., "The Devil is in the Details: Delving into
  Unbiased Data Processing for Human Pose Estimation", CVPR 2020): sizes in pixel intervals, the
  box centre on ((W-1)/2, (H-1)/2), so a flipped crop's heatmap is the flipped heatmap (no
  shift). hrnet_zoo's convention before codecs: every model trained here before them, and the
  default of the generic models (``hrnet_pose``, a bare :class:`~hrnet_zoo.tasks.pose.PoseHRNet`).
* ``udp_dark``: the udp geometry and targets with DARK decoding.
* ``face``: HRNet-Facial-Landmark-Detection exactly (:mod:`.face`): the integer crop box of
  ``transform_pixel`` resized (centre on crop pixel ~128.5 of 256), targets at ``int(T(x))``,
  ``decode_preds`` with its 1-based border rule and final integer cast, as published. The official
  face weights.
* ``face_continuous``: the face crop and targets, decoded without the integer cast (the bin centre
  ``T^-1(u + 0.5)``; the cast adds 0.5 px on average): for new training on the face convention.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..heatmap import (REFINEMENTS, dark_refine, flip_back, gaussian_heatmaps, get_max_preds, predict_heatmaps,
                       quarter_offset, to_image_coords)
from ..topdown import (BOX_PADDING, affine_matrix, apply_affine, box_to_center_scale, clip_box, flip_keypoints,
                       sanitize_box, warp_image)
from . import face, mmpose

__all__ = ['HeatmapCodec', 'CODECS', 'DEFAULT_CODEC', 'LEGACY_CODEC', 'get_codec', 'codec_of', 'resolve_codec',
           'checkpoint_codec', 'apply_checkpoint_codec', 'set_codec', 'dataset_with_codec', 'training_codec']

# the Gaussian window of each target encoding (see hrnet_zoo.tasks.heatmap.gaussian_heatmaps); combined
# targets are decoded only
_WINDOWS = {'rounded': 'official', 'subpixel': 'cut', 'dark': 'full', 'face': 'official', 'udp': 'udp',
            'combined': None}
# every refinement a codec may name: the shared ones (--decode) and mmpose's (codecs.mmpose)
CODEC_REFINEMENTS = REFINEMENTS + ('quarter_axis', 'dark_udp')
CROPS = ('msra', 'udp', 'face', 'mmpose_udp')
BOX_CLEANINGS = ('sanitize', 'sanitize_strict', 'clip', 'none')


@dataclass(frozen=True)
class HeatmapCodec:
    """One pixel convention of heatmap keypoints, as data (see the module table).

    Args:
        name: the registered name (``'msra'``).
        crop: ``'msra'`` (centre on (W/2, H/2)), ``'udp'`` (on ((W-1)/2, (H-1)/2), the box on W
            pixels), ``'mmpose_udp'`` (mmpose's UDP: centre on ((W-1)/2, (H-1)/2), the box on W - 1
            pixels, :func:`.mmpose.udp_matrix`) or ``'face'`` (the official face crop: integer box
            + resize).
        target: ``'rounded'`` (official pose: ``int(u + 0.5)``, official window), ``'subpixel'``
            (exact centre, 3-sigma window), ``'dark'`` (exact centre, whole map), ``'udp'``
            (mmpose's UDP: exact centre, the window of the rounded one), ``'face'`` (official face:
            ``int(T(x))``) or ``'combined'`` (mmpose's disc + offset maps, 3 per keypoint; decoding only).
        refine: ``'quarter'``, ``'dark'``, ``'argmax'`` (:data:`~hrnet_zoo.tasks.heatmap.REFINEMENTS`),
            ``'quarter_axis'`` (mmpose 1.x: each axis on its own) or ``'dark_udp'`` (mmpose's UDP
            refinement): :data:`CODEC_REFINEMENTS`.
        flip_shift: the flip test's one-pixel ``SHIFT_HEATMAP``.
        box_cleaning: ground-truth boxes ``'sanitize'`` (official), ``'sanitize_strict'`` (mmpose
            0.x: the official rule with ``x2 > x1``), ``'clip'`` (to the image; mmpose 1.x) or
            ``'none'`` (as given).
        integer_cast: the face decode's final ``astype(int) + 1``.
        blur_kernel: DARK's blur (11 taps for sigma 2, 17 for sigma 3 in mmpose 0.x).
        empty_at: where a heatmap without a positive value decodes, in heatmap pixels: the official
            pose code 0 (``get_max_preds``), mmpose and the official face code -1.
        mmpose: the mmpose generation (``'1.x'``, ``'0.x'``) whose edge rules apply
            (:mod:`.mmpose`: the blur of the UDP refinement, the combined decode), else None.
        reference: where the convention comes from.
    """
    name: str
    crop: str
    target: str
    refine: str
    flip_shift: bool
    box_cleaning: str = 'clip'
    integer_cast: bool = False
    blur_kernel: int = 11
    empty_at: float = 0.0
    mmpose: Optional[str] = None
    reference: str = ''

    def __post_init__(self):
        problems = [f'{field}={value!r}' for field, value, allowed in (
            ('crop', self.crop, CROPS), ('target', self.target, tuple(_WINDOWS)),
            ('refine', self.refine, CODEC_REFINEMENTS), ('box_cleaning', self.box_cleaning, BOX_CLEANINGS),
            ('mmpose', self.mmpose, (None, *mmpose.GENERATIONS)))
            if value not in allowed]
        if problems:
            raise ValueError(f'codec {self.name!r}: unknown {", ".join(problems)}')

    @property
    def maps_per_keypoint(self) -> int:
        """Heatmap channels per keypoint: 3 for combined targets (disc, x and y offset), else 1."""
        return 3 if self.target == 'combined' else 1

    # --- boxes and crops ----------------------------------------------------------------------
    def center_scale(self, box: Sequence[float], aspect_ratio: float,
                     padding: float = BOX_PADDING) -> Tuple[np.ndarray, np.ndarray]:
        """Box ``[x, y, w, h]`` -> centre ``(x + w/2, y + h/2)`` and scale (2,) in 200 px units,
        grown to ``aspect_ratio`` and padded (official ``_xywh2cs``; every codec)."""
        return box_to_center_scale(box, aspect_ratio, padding, allow_line=self.box_cleaning == 'sanitize')

    def clean_box(self, box: Sequence[float], width: int, height: int, area: float = 1.0):
        """A ground-truth box cleaned as the codec's code does, or None when nothing is left:
        ``'sanitize'`` (official: ``x2 = min(W - 1, x1 + max(0, w - 1))``), ``'sanitize_strict'``
        (mmpose 0.x: the same, kept when ``x2 > x1``), ``'clip'`` (to ``[0, W-1] x [0, H-1]``;
        mmpose 1.x) or ``'none'`` (as given, when it has an area)."""
        if self.box_cleaning == 'sanitize':
            return sanitize_box(box, width, height, area)
        if self.box_cleaning == 'sanitize_strict':
            return mmpose.sanitize_box_strict(box, width, height, area)
        if self.box_cleaning == 'none':
            return [float(v) for v in box[:4]] if box[2] > 0 and box[3] > 0 else None
        return clip_box(box, width, height)

    def crop_matrix(self, center, scale, rot: float, output_size: Tuple[int, int],
                    inverse: bool = False, image_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """The 2x3 map image -> crop of ``output_size`` (H, W) (``inverse``: crop -> image); the
        face crop also needs the ``image_size`` (H, W) (large faces are cropped from a resized image)."""
        if self.crop == 'face':
            return face.crop_matrix(center, scale, rot, output_size, image_size, inverse)
        if self.crop == 'mmpose_udp':
            return mmpose.udp_matrix(center, scale, rot, output_size, inverse)
        return affine_matrix(center, scale, rot, output_size, inverse=inverse, convention=self.crop)

    def crop_image(self, image: torch.Tensor, center, scale, rot: float, output_size: Tuple[int, int]) -> torch.Tensor:
        """The crop (C, *output_size) of ``image`` (C, H, W float in [0, 1]): bilinear, zeros
        outside (``cv2.warpAffine`` semantics) or the official face crop."""
        if self.crop == 'face':
            return face.face_crop(image, center, scale, output_size, rot)
        return warp_image(image, self.crop_matrix(center, scale, rot, output_size), output_size)

    def crop_box(self, image: torch.Tensor, box: Sequence[float], output_size: Tuple[int, int],
                 padding: float = BOX_PADDING) -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """``(crop, center, scale)`` of a box ``[x, y, w, h]`` (no rotation)."""
        center, scale = self.center_scale(box, output_size[1] / output_size[0], padding)
        return self.crop_image(image, center, scale, 0.0, output_size), center, scale

    def flip_image(self, image: torch.Tensor, points: np.ndarray, center,
                   flip_pairs: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Training flip of the whole image before cropping, as the official code: the image
        mirrored, the points (K, >=2) and the centre mirrored (pose ``x -> W - 1 - x``; face
        ``x -> W - x``, its ``fliplr_joints``) and the left/right pairs swapped."""
        width = image.shape[-1] + (1 if self.crop == 'face' else 0)
        center = np.array(center, dtype=np.float64, copy=True)
        center[0] = width - 1 - center[0]
        return image.flip(-1), flip_keypoints(points, width, flip_pairs), center

    # --- encode -----------------------------------------------------------------------------------
    def heatmap_points(self, points: np.ndarray, center, scale, rot: float, input_size: Tuple[int, int],
                       heatmap_size: Tuple[int, int]) -> np.ndarray:
        """Image points (K, 2) -> the heatmap positions their targets are built on (before the
        encoding's rounding): crop pixels / stride (msra: heatmap ``u`` is crop ``4u``), ``(crop +
        0.5) / stride - 0.5`` (udp) or ``int(T(x))`` (face)."""
        if self.crop == 'face':
            return face.heatmap_coordinates(points, center, scale, heatmap_size, rot)
        crop = apply_affine(points, self.crop_matrix(center, scale, rot, input_size))
        return self.crop_to_heatmap(crop, input_size, heatmap_size)

    def crop_to_heatmap(self, points: np.ndarray, input_size: Tuple[int, int],
                        heatmap_size: Tuple[int, int]) -> np.ndarray:
        """Crop pixels (K, 2) -> heatmap pixels: ``x / stride`` (msra, official ``generate_target``),
        ``(x + 0.5) / stride - 0.5`` (udp: pixel centres of both grids aligned) or ``x * (w - 1) /
        (W - 1)`` (mmpose_udp: ``UDPHeatmap.scale_factor``); not for face."""
        if self.crop == 'face':
            raise ValueError('the face codecs encode from image pixels (HeatmapCodec.encode), not crop pixels')
        points = np.asarray(points, dtype=np.float64)
        if self.crop == 'mmpose_udp':
            return points * (np.array([heatmap_size[1], heatmap_size[0]]) - 1.0) / (
                np.array([input_size[1], input_size[0]]) - 1.0)
        stride = np.array([input_size[1] / heatmap_size[1], input_size[0] / heatmap_size[0]])
        return points / stride if self.crop == 'msra' else (points + 0.5) / stride - 0.5

    def encode(self, points: np.ndarray, visible: np.ndarray, center, scale, rot: float,
               input_size: Tuple[int, int], heatmap_size: Tuple[int, int], sigma: float = 2.0,
               joint_weights: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Image points (K, 2) with flags (K,) of a crop -> targets (K, h, w) and weights (K, 1).
        The face codecs, as the official face datasets, encode only landmarks with image y > 0."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        visible = np.asarray(visible).reshape(-1)
        if self.crop == 'face':
            visible = visible * (points[:, 1] > 0)
        if self.target == 'combined':
            raise ValueError(f'codec {self.name!r}: combined targets (disc + offset maps, mmpose\'s udp_regress '
                             'models) are decoded here but not trained: train under mmpose_udp instead')
        hm = self.heatmap_points(points, center, scale, rot, input_size, heatmap_size)
        return gaussian_heatmaps(hm, visible, heatmap_size, sigma, unbiased=self.target != 'rounded',
                                 joint_weights=joint_weights, window=_WINDOWS[self.target])

    # --- decode -----------------------------------------------------------------------------------
    def predict_heatmaps(self, model: nn.Module, images: torch.Tensor,
                         flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
                         flip_test: bool = True) -> torch.Tensor:
        """Model heatmaps, averaged with the flipped-back prediction of the mirrored batch under
        ``flip_test`` (with the codec's ``SHIFT_HEATMAP``; combined maps: :meth:`flip_back`)."""
        return predict_heatmaps(model, images, flip_pairs, flip_test, unflip=self.flip_back)

    def flip_back(self, heatmaps: torch.Tensor, flip_pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """Heatmaps of a mirrored input -> of the input (with the codec's ``SHIFT_HEATMAP``; combined
        maps also negate their x offsets, :func:`.mmpose.combined_flip_back`)."""
        if self.target == 'combined':
            return mmpose.combined_flip_back(heatmaps, flip_pairs)
        return flip_back(heatmaps, flip_pairs, self.flip_shift)

    def heatmap_coords(self, heatmaps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Argmax + refinement in heatmap pixels (0-based) and the maxima. A heatmap without a
        positive value decodes at :attr:`empty_at` (official pose 0; mmpose and the official face
        code -1: 1-based (0, 0) of ``get_preds``) and is not refined. The quarter offset starts at
        column / row 2 (pose: ``1 < px``) or 1 (face: 1-based ``px > 1``)."""
        heatmaps = heatmaps.detach().float()
        if self.target == 'combined':
            return mmpose.combined_decode(heatmaps, self.blur_kernel, self.mmpose or '1.x')
        coords, maxvals = get_max_preds(heatmaps)
        if self.empty_at:
            coords = torch.where((maxvals > 0).unsqueeze(-1), coords, torch.full_like(coords, self.empty_at))
        if self.refine == 'quarter':
            coords = quarter_offset(heatmaps, coords, first=1 if self.crop == 'face' else 2)
        elif self.refine == 'quarter_axis':
            coords = mmpose.quarter_offset_per_axis(heatmaps, coords)
        elif self.refine == 'dark':
            coords = dark_refine(heatmaps, coords, self.blur_kernel)
        elif self.refine == 'dark_udp':
            coords = mmpose.dark_udp_refine(heatmaps, coords, self.blur_kernel, self.mmpose or '1.x')
        return coords, maxvals

    def to_image(self, coords: np.ndarray, centers, scales, heatmap_size: Tuple[int, int],
                 rotations=None) -> np.ndarray:
        """Heatmap coordinates (N, K, 2) -> image pixels through each sample's crop."""
        centers, scales = np.asarray(centers, dtype=np.float64), np.asarray(scales, dtype=np.float64)
        if scales.ndim == 1:
            scales = np.stack([scales, scales], axis=1)
        rotations = None if rotations is None else np.asarray(rotations)
        if self.crop == 'face':
            return face.back_project(coords, centers, scales, heatmap_size, rotations, self.integer_cast)
        if self.crop == 'mmpose_udp':  # heatmap u -> c + (u / (w - 1) - 0.5) * S, the inverse UDP matrix
            return np.stack([apply_affine(coords[i], mmpose.udp_matrix(
                centers[i], scales[i], 0.0 if rotations is None else float(rotations[i]), heatmap_size, inverse=True))
                for i in range(len(coords))]) if len(coords) else np.asarray(coords, dtype=np.float64)
        return to_image_coords(coords, centers, scales, heatmap_size, rotations, convention=self.crop)

    def decode(self, heatmaps: torch.Tensor, centers, scales, rotations=None) -> Tuple[np.ndarray, np.ndarray]:
        """Heatmaps (N, K, h, w) -> image keypoints (N, K, 2) and scores (N, K) (numpy)."""
        coords, maxvals = self.heatmap_coords(heatmaps)
        pts = self.to_image(coords.cpu().numpy(), centers, scales, tuple(heatmaps.shape[-2:]), rotations)
        return pts, maxvals.cpu().numpy()

    def with_refine(self, refine: Optional[str]) -> 'HeatmapCodec':
        """This codec with another refinement (``'argmax'``, ``'quarter'``, ``'dark'``)."""
        if refine is None or refine == self.refine:
            return self
        if refine not in CODEC_REFINEMENTS:
            raise ValueError(f'unknown decode method {refine!r}; choose one of {CODEC_REFINEMENTS}')
        return dataclasses.replace(self, name=f'{self.name}+{refine}', refine=refine)


_POSE = ('deep-high-resolution-net.pytorch (lib/dataset/coco.py, JointsDataset.py, utils/transforms.py, '
         'core/inference.py)')
_DARK = 'Zhang et al., CVPR 2020 (DARK); mmpose MSRAHeatmap(unbiased=True)'
_UDP = 'Huang et al., CVPR 2020 (UDP)'
_FACE = 'HRNet-Facial-Landmark-Detection (lib/utils/transforms.py, lib/core/evaluation.py)'
_MM1 = 'open-mmlab/mmpose 1.x @759b39c (mmpose/codecs, datasets/transforms, models/heads/heatmap_heads)'
_MM0 = 'open-mmlab/mmpose 0.x @3b81734 (datasets/pipelines/top_down_transform.py, core/evaluation/top_down_eval.py)'


def _mmpose(name: str, generation: str, kind: str, blur_kernel: int = 11) -> HeatmapCodec:
    """The mmpose codec ``kind`` of one generation: ``'msra'`` (MSRAHeatmap; 0.x ``post_process=
    'default'``), ``'dark'`` (``unbiased=True``; 0.x ``'unbiased'``), ``'udp'`` (UDPHeatmap; 0.x
    ``use_udp=True``), ``'udp_combined'`` (``heatmap_type='combined'``; 0.x ``CombinedTarget``)."""
    crop, target, refine = {'msra': ('msra', 'rounded', 'quarter'), 'dark': ('msra', 'dark', 'dark'),
                            'udp': ('mmpose_udp', 'udp', 'dark_udp'),
                            'udp_combined': ('mmpose_udp', 'combined', 'argmax')}[kind]
    if kind == 'msra' and generation == '1.x':
        refine = 'quarter_axis'
    return HeatmapCodec(name, crop=crop, target=target, refine=refine, flip_shift=crop == 'msra',
                        box_cleaning='clip' if generation == '1.x' else 'sanitize_strict', blur_kernel=blur_kernel,
                        empty_at=-1.0, mmpose=generation, reference=_MM1 if generation == '1.x' else _MM0)


CODECS: Dict[str, HeatmapCodec] = {c.name: c for c in (
    HeatmapCodec('msra', crop='msra', target='rounded', refine='quarter', flip_shift=True, box_cleaning='sanitize',
                 reference=_POSE),
    HeatmapCodec('dark', crop='msra', target='dark', refine='dark', flip_shift=True, box_cleaning='sanitize',
                 reference=_DARK),
    HeatmapCodec('udp', crop='udp', target='subpixel', refine='quarter', flip_shift=False, reference=_UDP),
    HeatmapCodec('udp_dark', crop='udp', target='subpixel', refine='dark', flip_shift=False,
                 reference=f'{_UDP} + {_DARK}'),
    HeatmapCodec('face', crop='face', target='face', refine='quarter', flip_shift=False, integer_cast=True,
                 empty_at=-1.0, reference=_FACE),
    HeatmapCodec('face_continuous', crop='face', target='face', refine='quarter', flip_shift=False, empty_at=-1.0,
                 reference=f'{_FACE}, decoded without the integer cast'),
    _mmpose('mmpose_msra', '1.x', 'msra'),
    _mmpose('mmpose_dark', '1.x', 'dark'),
    _mmpose('mmpose_udp', '1.x', 'udp'),
    _mmpose('mmpose_udp_combined', '1.x', 'udp_combined'),
    _mmpose('mmpose0x_msra', '0.x', 'msra'),
    _mmpose('mmpose0x_dark', '0.x', 'dark'),
    _mmpose('mmpose0x_dark_k17', '0.x', 'dark', blur_kernel=17),
    _mmpose('mmpose0x_udp', '0.x', 'udp'),
    _mmpose('mmpose0x_udp_k17', '0.x', 'udp', blur_kernel=17),
    _mmpose('mmpose0x_udp_combined', '0.x', 'udp_combined'),
)}
DEFAULT_CODEC = 'udp'   # a model that names none: made before codecs existed, all under UDP
LEGACY_CODEC = 'udp'    # an engine checkpoint that records none: trained here before codecs


def get_codec(codec: Union[str, HeatmapCodec, None] = None, method: Optional[str] = None) -> HeatmapCodec:
    """The codec of a name (or the codec itself; None: :data:`DEFAULT_CODEC`), with the refinement
    ``method`` instead of its own when given."""
    if codec is None:
        codec = DEFAULT_CODEC
    if isinstance(codec, str):
        if codec not in CODECS:
            raise ValueError(f'unknown heatmap codec {codec!r}; choose one of {sorted(CODECS)}')
        codec = CODECS[codec]
    if not isinstance(codec, HeatmapCodec):
        raise TypeError(f'codec must be a name of {sorted(CODECS)} or a HeatmapCodec, got {type(codec).__name__}')
    return codec.with_refine(method)


def codec_of(model: Any) -> str:
    """The codec name a model records (``model.pretrained_cfg['codec']``), else :data:`DEFAULT_CODEC`."""
    return (getattr(model, 'pretrained_cfg', None) or {}).get('codec') or DEFAULT_CODEC


def resolve_codec(model: Any = None, codec: Union[str, HeatmapCodec, None] = None,
                  method: Optional[str] = None) -> HeatmapCodec:
    """The codec to use with ``model``: ``codec`` when given (a ``--codec`` override), else the
    model's (:func:`codec_of`); ``method`` replaces its refinement (the old ``--decode``)."""
    return get_codec(codec if codec is not None else codec_of(model), method)


def set_codec(model: nn.Module, codec: Union[str, HeatmapCodec]) -> nn.Module:
    """Record ``codec`` in ``model.pretrained_cfg`` (what training under it and a ``--codec``
    override do; checkpoints and converted folders carry it from there)."""
    name = get_codec(codec).name
    if name not in CODECS:
        raise ValueError(f'only a registered codec can be recorded ({sorted(CODECS)}), got {name!r}')
    cfg = dict(getattr(model, 'pretrained_cfg', None) or {})
    cfg['codec'] = name
    model.pretrained_cfg = cfg
    return model


def checkpoint_codec(source: Union[str, os.PathLike, Mapping[str, Any], None]) -> Optional[str]:
    """The codec a checkpoint records, if any: an engine checkpoint's ``pretrained_cfg['codec']``
    (one written before codecs, with no ``pretrained_cfg``: :data:`LEGACY_CODEC`), the ``codec`` of
    the ``config.json`` next to a ``.safetensors`` file; None for official files and state_dicts
    (the spec's codec holds)."""
    if source is None:
        return None
    if isinstance(source, Mapping):
        state = source
    else:
        path = Path(source)
        if path.suffix == '.safetensors':
            config = path.parent / 'config.json'
            if not config.is_file():
                return None
            try:
                return json.loads(config.read_text()).get('codec')
            except json.JSONDecodeError:
                return None
        try:
            state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except Exception:  # unreadable here: load_weights reports it with its own message
            return None
    from ...train.checkpoint import CHECKPOINT_FORMAT
    if not isinstance(state, Mapping) or state.get('format') != CHECKPOINT_FORMAT:
        return None
    if 'pretrained_cfg' not in state:  # written before the engine recorded the model's pretrained_cfg
        return LEGACY_CODEC
    return (state['pretrained_cfg'] or {}).get('codec')


def apply_checkpoint_codec(model: nn.Module, source: Union[str, os.PathLike, Mapping[str, Any], None]) -> nn.Module:
    """Record in ``model`` the codec its loaded checkpoint was trained with (:func:`checkpoint_codec`):
    an engine checkpoint of a run from before codecs decodes under :data:`LEGACY_CODEC` even when
    the spec's official weights use another. Official files leave the spec's codec."""
    recorded = checkpoint_codec(source)
    return set_codec(model, recorded) if recorded else model


def dataset_with_codec(dataset: Any, codec: HeatmapCodec) -> Any:
    """``dataset`` cropping under ``codec``: a dataset whose codec is unset follows it
    (``dataset.with_codec``); one set to a codec of the same crop is kept (its targets do not matter
    for decoding); another crop is an error, since decoding would be off by the crops' difference."""
    own = getattr(dataset, 'codec', None)
    if own is None:
        return dataset.with_codec(codec) if hasattr(dataset, 'with_codec') else dataset
    if own.crop != codec.crop:
        raise ValueError(f'the dataset crops with codec {own.name!r} but decoding uses {codec.name!r} '
                         f'({own.crop} vs {codec.crop} crop): build the dataset with codec={codec.name!r} '
                         "(or leave its codec unset to follow the model's), or decode with "
                         f'codec={own.name!r}')
    return dataset


def training_codec(model: nn.Module, train_set,
                   codec: Union[None, str, HeatmapCodec] = None) -> Tuple[HeatmapCodec, Any]:
    """The codec a run trains under and the train set made with it: the train set's own codec when
    set (an explicit ``codec`` must agree), else ``codec``, else the model's. The model records it
    (``pretrained_cfg['codec']``)."""
    own = getattr(train_set, 'codec', None)
    chosen = resolve_codec(model, codec)
    if own is not None and codec is not None and own.name != chosen.name:
        raise ValueError(f'the train set is built with codec {own.name!r} but codec={chosen.name!r} was asked; '
                         'build it with the same codec or leave its codec unset')
    chosen = own or chosen
    if own is None and hasattr(train_set, 'with_codec'):
        train_set = train_set.with_codec(chosen)
    set_codec(model, chosen)
    return chosen, train_set
