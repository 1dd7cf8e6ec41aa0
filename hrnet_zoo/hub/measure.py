"""What a record states that is measured here: params and GMACs (:func:`measure_model`, on the
meta device), and a task model's record built from its spec (:func:`task_record`)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..checkpoint import WeightsError
from .convert import build_model, require_spec
from .records import WEIGHTS_FILE, json_safe

__all__ = ['count_params', 'count_gmacs', 'measure_model', 'task_record']


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> float:
    """GMACs of one forward pass (torch FlopCounterMode FLOPs / 2); a model on the meta device
    is counted without computing anything (same count, any input size in no time)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    device = next(model.parameters()).device
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *input_size, device=device))
    return counter.get_total_flops() / 2e9


def measure_model(name: str, model_args: Optional[Dict[str, Any]] = None,
                  input_size: Optional[Sequence[int]] = None) -> Tuple[int, float]:
    """(params, GMACs at ``input_size``, default the spec's) of a model of the table, counted on
    the meta device (no weights, no compute: W48 segmentation at 1024x2048 takes seconds)."""
    spec = require_spec(name)
    model = build_model(name, model_args, device='meta')
    params = count_params(model)
    if spec.task == 'detection':  # torchvision detectors resize and post-process: count the trunk + neck
        model = model.backbone
    return params, round(count_gmacs(model, tuple(input_size or (3, *spec.input_size))), 3)


def task_record(name: str, official_gflops: Optional[float] = None, recipe: str = '',
                org: str = 'hrnet-zoo') -> Dict[str, Any]:
    """The manifest record of a task model with an official checkpoint, from its spec (official
    file, where it is published, metrics and their source, normalisation, output count, codec) and
    measured here (params, GMACs at the spec's input size); sha256 / size stay null until the
    converted file exists."""
    spec = require_spec(name)
    if spec.official is None:
        raise WeightsError(f'{name} has no official checkpoint in its spec: nothing to record')
    params, gmacs = measure_model(name)
    record = {
        'name': name, 'task': spec.task, 'hf_hub_id': f'{org}/{name}', 'filename': WEIGHTS_FILE,
        'sha256': None, 'size': None, 'num_params': params, 'gmacs': gmacs, 'official_gflops': official_gflops,
        'input_size': [3, *spec.input_size], 'mean': list(spec.mean), 'std': list(spec.std),
        'interpolation': 'bilinear', 'crop_pct': 1.0, 'metrics': json_safe(dict(spec.metrics)),
        'license': spec.license, 'source': {'repo': spec.official.repo, 'checkpoint': spec.official.filename,
                                            'published_at': spec.official.published_at, 'layout': 'official'},
        'recipe': recipe, 'num_classes': spec.num_outputs, 'num_outputs': spec.num_outputs}
    if spec.codec is not None:
        record['codec'] = spec.codec
    return record
