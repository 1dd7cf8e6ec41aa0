"""Checkpoints that never lose work.

``save_checkpoint`` writes to a temporary file in the target folder, flushes it to disk and
renames it over the target (``os.replace`` is atomic on POSIX and Windows), so a crash while
saving leaves the previous checkpoint intact. ``load_checkpoint`` loads with
``torch.load(weights_only=True)`` (no arbitrary code from pickles) and turns a missing,
truncated or foreign file into a :class:`CheckpointError` that names the file and what to do.

The RNG helpers capture and restore the python, numpy and torch (CPU + CUDA) generators in a
form that ``weights_only`` loading accepts, which is what makes a resumed run continue with
the same random numbers as an uninterrupted one.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .distributed import resolve_device

__all__ = [
    'CHECKPOINT_FORMAT', 'CheckpointError', 'save_checkpoint', 'load_checkpoint',
    'load_model_state', 'capture_rng_state', 'restore_rng_state',
]

CHECKPOINT_FORMAT = 'hrnet_zoo.train/1'
PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model / run it is loaded into."""


def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    ``state`` gets a ``'format'`` entry if it has none. Returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state)
    state.setdefault('format', CHECKPOINT_FORMAT)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temp_files(folder: PathLike) -> list[Path]:
    """Delete the temporary files :func:`save_checkpoint` leaves in ``folder`` when its process
    is killed mid-save (``.<name>.<8 random chars>.tmp``, e.g. ``.last.pth.k3j2h1a0.tmp``; a
    kill -9 cannot be caught, so nothing else removes them). Call it where no other process is
    saving into ``folder``, as a run does on start. Returns the removed paths."""
    removed = []
    for tmp in sorted(Path(folder).glob('.*.tmp')):
        target, _, token = tmp.name[1:-len('.tmp')].rpartition('.')
        if target and len(token) == 8 and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort; not possible on every OS)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: PathLike, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` for a missing file, a truncated / corrupt file, or a file
    that is not an hrnet_zoo training checkpoint (no ``'format'`` / ``'model'`` entry)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist; check the path, or start '
                              f'without --resume')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f'checkpoint {path} holds objects that safe loading refuses (torch.load weights_only=True: '
            f'{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}); only checkpoints '
            f'written by hrnet_zoo.train are resumed') from None
    except Exception as e:  # zip errors, unpickling errors, EOF: all mean "unusable file"
        raise CheckpointError(
            f'checkpoint {path} is corrupt or truncated and cannot be read ({type(e).__name__}: '
            f'{str(e).splitlines()[0] if str(e) else ""}); resume from another checkpoint '
            f'(e.g. best.pth) or delete it to start over') from e
    if not isinstance(state, dict) or 'model' not in state:
        raise CheckpointError(f'{path} is not an hrnet_zoo training checkpoint (no "model" entry); '
                              f'to load bare weights use model.load_state_dict(torch.load(...))')
    fmt = state.get('format')
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path} has checkpoint format {fmt!r}, this version reads '
                              f'{CHECKPOINT_FORMAT!r}')
    return state


def load_weights(model: nn.Module, path: PathLike,
                 official_loader: Optional[Callable[[nn.Module, str], Any]] = None) -> nn.Module:
    """Weights for evaluation or fine-tuning: an hrnet_zoo training checkpoint (``last.pth`` /
    ``best.pth``) or, through ``official_loader(model, path)``, a checkpoint in another layout
    (e.g. an official one). Both read with ``weights_only=True``; a mismatch is a clear error."""
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        if official_loader is None:
            raise
        official_loader(model, str(path))
        return model
    load_model_state(model, state['model'], source=str(path))
    return model


def model_for_inference(model: nn.Module, checkpoint: Optional[PathLike] = None, device: Optional[str] = None,
                        official_loader: Optional[Callable[[nn.Module, str], Any]] = None
                        ) -> Tuple[nn.Module, torch.device]:
    """``model`` with ``checkpoint``'s weights (see :func:`load_weights`; none given: as it is),
    moved to ``device`` (default CUDA when available); returns the model and that device."""
    if checkpoint:
        load_weights(model, checkpoint, official_loader)
    device = resolve_device(device)
    return model.to(device), device


def load_model_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = 'checkpoint') -> None:
    """``model.load_state_dict(state_dict)`` (strict) with a clear error listing the missing,
    unexpected and wrongly-shaped keys instead of torch's wall of text."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                             ('shape mismatches', shapes)):
            if items:
                more = f' ... (+{len(items) - 8} more)' if len(items) > 8 else ''
                parts.append(f'{title} ({len(items)}): {", ".join(items[:8])}{more}')
        raise CheckpointError(f'{source} does not match the model ({type(model).__name__}): '
                              + '; '.join(parts) + '. Was it written for another architecture '
                              'or number of classes?')
    model.load_state_dict(state_dict)


def capture_rng_state() -> Dict[str, Any]:
    """The python, numpy and torch (CPU and every CUDA device) RNG states, as tensors and
    plain Python values so that ``torch.load(weights_only=True)`` can read them back."""
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'name': np_state[0], 'keys': torch.from_numpy(np_state[1].astype(np.int64)),
                  'pos': int(np_state[2]), 'has_gauss': int(np_state[3]), 'cached': float(np_state[4])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n['name'], n['keys'].cpu().numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['cached']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state['cuda']]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
