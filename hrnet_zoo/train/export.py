"""Export a training checkpoint as a Hub folder (``model.safetensors`` + timm ``config.json`` +
``README.md``) through the weights tooling (:func:`hrnet_zoo.hub.convert`), so a trained
model is published the same way as a converted official one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from .checkpoint import CheckpointError, load_checkpoint

__all__ = ['export_checkpoint']


def export_checkpoint(checkpoint: os.PathLike, arch: str, out: os.PathLike, use_ema: bool = False,
                      tag: Optional[str] = None, repo_id: Optional[str] = None, force: bool = True) -> Path:
    """Write ``out/`` from a trainer checkpoint (``last.pth`` / ``best.pth``): the model weights,
    or the EMA weights with ``use_ema``. ``arch`` is the classifier name (``'hrnet_w32'``)."""
    from safetensors.torch import save_file
    from hrnet_zoo.hub import convert
    state = load_checkpoint(checkpoint)
    weights = state['ema'] if use_ema else state['model']
    if weights is None:
        raise CheckpointError(f'{checkpoint} has no EMA weights (the run had no ema_decay); export without use_ema')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'weights.safetensors'
        save_file({k: v.contiguous().cpu() for k, v in weights.items()}, str(path))
        return convert(path, arch, out, tag=tag, repo_id=repo_id, force=force)
