"""Reading weights from any checkpoint layout, safely, and loading them strictly.

One module for every caller (the weight hub, the task models, the task CLIs, the trainer):

* :func:`read_state_dict`: ``.safetensors`` through safetensors, anything else with
  ``torch.load(weights_only=True)`` (a pickle that needs code is refused with a clear error; the
  plain numeric numpy arrays that mmpose 1.x files keep in ``meta`` are allowed, see
  :data:`NUMPY_SAFE_GLOBALS`). :func:`read_safetensors_header` reads a safetensors header only.
* :func:`unwrap_state_dict`: the tensors of a checkpoint dict (bare, or under ``state_dict`` /
  ``model`` / ``best_state_dict``), stripped of wrapper prefixes by timm's ``clean_state_dict``.
* :class:`KeyMap`: an official layout -> our keys, as data (prefixes to strip, keys to drop,
  prefix renames), applied by :meth:`KeyMap.apply`.
* :func:`load_strict`: ``load_state_dict(strict=True)`` whose error names the file and lists the
  missing / unexpected keys and the shape mismatches; :func:`check_num_outputs` for a head of the
  wrong size; :func:`load_trunk` initialises the HRNet trunk of any model from a classifier.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ['WeightsError', 'CheckpointNotFound', 'KeysMismatch', 'KeyMap', 'read_state_dict', 'unwrap_state_dict',
           'strip_prefixes', 'state_dict_problems', 'load_strict', 'check_num_outputs', 'load_trunk', 'load_weights',
           'read_safetensors_header', 'signature', 'numpy_safe_globals', 'TRUNK_PREFIXES']

PathLike = Union[str, os.PathLike]
TRUNK_PREFIXES = ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition', 'stage')
WRAPPER_KEYS = ('state_dict', 'model', 'best_state_dict', 'state_dict_ema')


class WeightsError(ValueError):
    """A checkpoint cannot be read, or does not fit the model; the message names the file and
    says what to do."""


class CheckpointNotFound(WeightsError, FileNotFoundError):
    """The checkpoint file does not exist."""


class KeysMismatch(WeightsError, KeyError):
    """A state_dict has missing / unexpected keys or wrong shapes for the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (``.safetensors``, or ``.pth`` / ``.pth.tar`` / ``.bin`` read
    with ``weights_only=True``), unwrapped by :func:`unwrap_state_dict`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f'checkpoint not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device='cpu')
        except Exception as e:  # SafetensorError: truncated, bad header
            raise WeightsError(f'{path}: truncated or not a safetensors file ({e})') from None
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(
            f'{path}: refused by torch.load(weights_only=True): the pickle needs code to unpickle '
            f'({first}). Only plain state_dicts are read; re-save it with '
            f'torch.save(model.state_dict(), ...) in the environment that made it, if you trust it.') from None
    except (RuntimeError, EOFError, OSError) as e:
        raise WeightsError(f'{path}: not a readable PyTorch checkpoint, truncated or corrupt ({e})') from None
    return unwrap_state_dict(obj, str(path))


# The numeric dtypes whose numpy arrays / scalars may appear in a checkpoint's metadata.
_NUMPY_DTYPES = ('bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
                 'float16', 'float32', 'float64')


def numpy_safe_globals() -> List[Any]:
    """What ``torch.load(weights_only=True)`` must be allowed to read the numpy arrays and scalars
    that mmpose 1.x / mmengine keep in a checkpoint's ``meta`` (``dataset_meta``: ``sigmas`` and
    ``dataset_keypoint_weights`` float32, ``keypoint_colors`` / ``skeleton_link_colors`` uint8;
    mmpose ``mmpose/datasets/datasets/utils.py`` ``parse_pose_metainfo``): ``ndarray``, ``dtype``,
    the array and scalar reconstructors (under numpy 2's ``numpy._core`` and, for files written
    with numpy 1.x, ``numpy.core`` names), and the dtype classes of plain numbers and booleans.
    Nothing that runs code, and no object arrays (``ObjectDType`` stays refused). Empty when numpy
    is not installed."""
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed: List[Any] = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        allowed += [fn, (fn, f'numpy.core.multiarray.{fn.__name__}'), (fn, f'numpy._core.multiarray.{fn.__name__}')]
    allowed += [type(np.dtype(getattr(np, t))) for t in _NUMPY_DTYPES]
    # an empty array's data under pickle protocol 2 is bytes(): mmpose 1.x face / hand files keep
    # sigmas and skeleton_link_colors of shape (0,) (WFLW has neither)
    allowed.append(bytes)
    return allowed


def unwrap_state_dict(obj: Any, where: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint: the dict itself or the one under ``state_dict``
    / ``model`` / ``best_state_dict``; ``module.`` (DataParallel/DDP) and ``_orig_mod.``
    (torch.compile) prefixes are removed (timm's ``clean_state_dict``)."""
    from timm.models import clean_state_dict
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f'{where}: expected a state_dict of tensors (optionally under '
                              f'{" / ".join(repr(k) for k in WRAPPER_KEYS)})')
    return dict(clean_state_dict(dict(obj)))


def strip_prefixes(key: str, prefixes: Sequence[str]) -> str:
    """``key`` with any of ``prefixes`` removed from its start, repeatedly (``model.module.x`` -> ``x``)."""
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if p and key.startswith(p):
                key, changed = key[len(p):], True
    return key


@dataclass(frozen=True)
class KeyMap:
    """An official checkpoint layout as data: strip ``strip`` prefixes, drop keys that start with
    ``drop`` (e.g. the loss's buffers), then rename the first matching ``(old, new)`` prefix of
    ``rename``. The identity map (the default) only strips ``module.``."""
    strip: Tuple[str, ...] = ('module.',)
    drop: Tuple[str, ...] = ()
    rename: Tuple[Tuple[str, str], ...] = ()
    keep: Tuple[str, ...] = ()  # if set, only keys starting with one of these (after renaming) are kept

    def apply(self, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = {}
        for k, v in state_dict.items():
            k = strip_prefixes(k, self.strip)
            if self.drop and k.startswith(self.drop):
                continue
            for old, new in self.rename:
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
            if self.keep and not k.startswith(self.keep):
                continue
            out[k] = v
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {'strip': list(self.strip), 'drop': list(self.drop), 'rename': [list(r) for r in self.rename],
                'keep': list(self.keep)}


def state_dict_problems(expected: Mapping[str, Tuple[Tuple[int, ...], str]],
                        found: Mapping[str, Tuple[Tuple[int, ...], str]]) -> List[str]:
    """Compare ``{key: (shape, dtype)}`` maps: missing/unexpected keys, shape and dtype mismatches
    (a dtype of ``''`` on either side is not compared)."""
    problems = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    for label, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            problems.append(f'{label} keys ({len(keys)}): {", ".join(keys[:12])}' + (' ...' if len(keys) > 12 else ''))
    for k in expected:
        if k in found and tuple(found[k][0]) != tuple(expected[k][0]):
            problems.append(f'shape mismatch for {k}: checkpoint {list(found[k][0])}, model {list(expected[k][0])}')
        elif k in found and found[k][1] and expected[k][1] and found[k][1] != expected[k][1]:
            problems.append(f'dtype mismatch for {k}: file {found[k][1]}, model {expected[k][1]}')
    return problems


def _shapes(sd: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    return {k: (tuple(v.shape), '') for k, v in sd.items()}


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], where: str = '<state_dict>',
                error: type = KeysMismatch) -> nn.Module:
    """Load strictly (values are cast to the model's dtypes). BatchNorm ``num_batches_tracked``
    buffers that old checkpoints lack (next to
    their running statistics) are filled in. Raises ``error`` (a :class:`KeysMismatch`,
    a :class:`WeightsError` and a ``KeyError``, by default) naming ``where``, every missing / unexpected key and every shape mismatch."""
    own = model.state_dict()
    state_dict = dict(state_dict)
    for k, v in own.items():  # old checkpoints have a BN's running stats but not its counter
        stem = k[:-len('num_batches_tracked')]
        if k.endswith('num_batches_tracked') and k not in state_dict and stem + 'running_mean' in state_dict:
            state_dict[k] = v
    problems = state_dict_problems(_shapes(own), _shapes(state_dict))
    if problems:
        arch = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture', type(model).__name__)
        raise error(f'{where} does not fit {arch}:\n  ' + '\n  '.join(problems)
                    + '\nIs it the same variant, task and number of outputs?')
    model.load_state_dict(state_dict, strict=True)
    return model


def check_num_outputs(state_dict: Mapping[str, torch.Tensor], key: str, expected: int, what: str,
                      where: str = 'checkpoint') -> None:
    """Clear error when a checkpoint's head predicts a different number of ``what`` (keypoints,
    landmarks, classes) than the model was built for."""
    if key not in state_dict:
        raise WeightsError(f'{where} has no {key!r}; is it a {what} checkpoint of this task?')
    got = state_dict[key].shape[0]
    if got != expected:
        raise WeightsError(f'{where} predicts {got} {what} ({key} has shape {tuple(state_dict[key].shape)}) '
                              f'but the model was built for {expected}; build it with num_{what}={got}')


def load_trunk(model: nn.Module, source: Union[str, PathLike, Mapping[str, torch.Tensor]],
               prefix: str = '', key_map: Optional[KeyMap] = None) -> List[str]:
    """Initialise the HRNet trunk of ``model`` (its keys under ``prefix``) from a classifier or any
    checkpoint holding trunk keys: ``'imagenet'`` (timm's ImageNet weights for the model's trunk,
    ``model.pretrained_cfg['trunk']``, downloaded by timm), a file (``.pth`` / ``.safetensors``), or
    a state_dict; ``key_map`` first maps the source's layout. Returns the keys loaded."""
    if isinstance(source, (str, os.PathLike)) and str(source) == 'imagenet':
        import timm
        trunk = (getattr(model, 'pretrained_cfg', None) or {}).get('trunk')
        if trunk is None:
            raise WeightsError("weights_backbone='imagenet' needs model.pretrained_cfg['trunk'] "
                                  '(build the model with a named builder)')
        state, where = timm.create_model(trunk, pretrained=True).state_dict(), f'timm {trunk}'
    elif isinstance(source, (str, os.PathLike)):
        state, where = read_state_dict(source), str(source)
    else:
        state, where = unwrap_state_dict(source), '<state_dict>'
    state = (key_map or KeyMap(strip=('module.', 'model.'), drop=('loss.',))).apply(state)
    own = model.state_dict()
    expected = [k for k in own if k.startswith(prefix) and k[len(prefix):].startswith(TRUNK_PREFIXES)]
    trunk_sd = {prefix + k: v for k, v in state.items() if k.startswith(TRUNK_PREFIXES)}
    if not any(k in trunk_sd for k in expected) and prefix:  # the source already has the prefix
        trunk_sd = {k: v for k, v in state.items() if k in own}
    missing = [k for k in expected if k not in trunk_sd and not k.endswith('num_batches_tracked')]
    bad_shape = [k for k in expected if k in trunk_sd and trunk_sd[k].shape != own[k].shape]
    if missing or bad_shape:
        detail = (f'; e.g. {bad_shape[0]}: checkpoint {list(trunk_sd[bad_shape[0]].shape)}, model '
                  f'{list(own[bad_shape[0]].shape)}' if bad_shape else '')
        raise WeightsError(f'{where}: backbone weights do not fit the trunk: missing {missing[:5]} '
                              f'({len(missing)}), wrong shape {bad_shape[:5]} ({len(bad_shape)}){detail}; '
                              'is it the same HRNet variant?')
    loadable = {k: trunk_sd[k] for k in expected if k in trunk_sd}
    model.load_state_dict(loadable, strict=False)
    return list(loadable)


def load_weights(model: nn.Module, source: Union[PathLike, Mapping[str, torch.Tensor]],
                 key_map: Optional[KeyMap] = None, output_key: Optional[str] = None,
                 what: str = 'outputs', where: Optional[str] = None) -> nn.Module:
    """Load a checkpoint file or state_dict into ``model`` strictly: read it safely
    (:func:`read_state_dict`: an official file, an hrnet_zoo engine checkpoint's ``'model'``, or
    safetensors), map it with ``key_map`` (default: strip ``module.``), check the head's output
    count at ``output_key`` against the model's, and load with :func:`load_strict`. Errors name
    ``where`` (default: the file, or ``<state_dict>``)."""
    if isinstance(source, Mapping):
        state, where = unwrap_state_dict(source), where or '<state_dict>'
    else:
        state, where = read_state_dict(source), where or str(source)
    state = (key_map or KeyMap()).apply(state)
    if output_key is not None:
        own = model.state_dict()
        if output_key in own and output_key in state:  # a missing head is listed by load_strict
            check_num_outputs(state, output_key, own[output_key].shape[0], what, where)
    return load_strict(model, state, where)


# safetensors dtype names of the torch dtypes checkpoints hold
_TORCH_TO_ST = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
                torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL'}


def signature(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """``{key: (shape, safetensors dtype name)}`` of a state_dict (what :func:`state_dict_problems`
    compares with a safetensors header)."""
    return {k: (tuple(v.shape), _TORCH_TO_ST.get(v.dtype, str(v.dtype))) for k, v in state_dict.items()}


def read_safetensors_header(path: PathLike) -> Dict[str, Dict[str, Any]]:
    """``{name: {'dtype', 'shape'}}`` of a safetensors file, without loading tensors; safetensors'
    own parser checks the header, the offsets and that the data covers the file exactly (a
    truncated file or trailing bytes are a :class:`WeightsError`)."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework='pt') as f:
            return {k: {'dtype': f.get_slice(k).get_dtype(), 'shape': list(f.get_slice(k).get_shape())}
                    for k in f.keys()}
    except Exception as e:  # SafetensorError: bad header, truncated, trailing bytes
        raise WeightsError(f'{path}: truncated or not a safetensors file ({e})') from None
