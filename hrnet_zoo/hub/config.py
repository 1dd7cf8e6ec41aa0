"""``config.json`` of a weights folder, for every model: :func:`write_config`.

A classifier's is timm's own format (written by timm's ``save_config_for_hf``), so that stock timm
loads the folder without hrnet_zoo (compatibility contract 5). A task model's is hrnet-zoo's:
everything needed to rebuild the model exactly (``hrnet_zoo.create_model(architecture,
**model_args)``) and to feed it (input size, normalisation, flip pairs, align_corners, codec),
plus its ``pretrained_cfg``; ``part`` names the sub-module the weights fill when they do not
cover the whole model (an mmdetection trunk + neck in a detector's ``backbone.``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from torch import nn

from ..tasks.registry import ModelSpec
from .fetch import PART_KEY
from .records import WEIGHTS_FILE, WeightRecord, json_safe

__all__ = ['TASK_CONFIG_FIELDS', 'PAPER', 'PAPER_ID', 'OFFICIAL_REPO', 'task_config', 'write_config']

PAPER = 'Deep High-Resolution Representation Learning for Visual Recognition (Wang et al., TPAMI 2020)'
PAPER_ID = 'arXiv:1908.07919'
OFFICIAL_REPO = 'https://github.com/HRNet/HRNet-Image-Classification'
# config.json fields of a task model that must agree with the model built from it (verify checks them)
TASK_CONFIG_FIELDS = ('num_outputs', 'input_size', 'mean', 'std', 'flip_pairs', 'align_corners', 'codec')


def task_config(model: nn.Module, spec: ModelSpec, repo_id: Optional[str] = None, tag: Optional[str] = None,
                model_args: Optional[Mapping[str, Any]] = None, part: str = '') -> Dict[str, Any]:
    """``config.json`` of a task model's folder (see the module docstring)."""
    from .. import __version__
    pcfg = dict(getattr(model, 'pretrained_cfg', None) or spec.pretrained_cfg())
    if repo_id:
        pcfg.update(hf_hub_id=repo_id, hf_hub_filename=WEIGHTS_FILE)
    if tag:
        pcfg['tag'] = tag
    n = pcfg.get('num_outputs', spec.num_outputs)
    config = {
        'architecture': spec.name, 'task': spec.task, 'library': 'hrnet-zoo', 'hrnet_zoo_version': __version__,
        'trunk': spec.trunk, 'head': spec.head, 'num_outputs': n, spec.output_arg: n,
        'input_size': pcfg.get('input_size', (3, *spec.input_size)), 'mean': pcfg.get('mean', spec.mean),
        'std': pcfg.get('std', spec.std), 'flip_pairs': pcfg.get('flip_pairs', spec.flip_pairs),
        'align_corners': pcfg.get('align_corners', spec.options.get('align_corners')),
        'codec': pcfg.get('codec', spec.codec), 'dataset': spec.dataset, 'license': spec.license,
        'model_args': dict(model_args or {}), 'pretrained_cfg': pcfg}
    if part:
        config[PART_KEY] = part
    return json_safe(config)


def _timm_config(model: nn.Module, path: Path, record: Optional[WeightRecord]) -> Dict[str, Any]:
    """A classifier's config.json in timm's format, written to ``path``."""
    from timm.models._hub import save_config_for_hf
    extra = {'license': record.license if record else model.pretrained_cfg.get('license', 'mit'),
             'origin_url': OFFICIAL_REPO, 'paper_ids': PAPER_ID, 'paper_name': PAPER}
    save_config_for_hf(model, str(path), model_config={'pretrained_cfg': extra})
    config = json.loads(path.read_text())
    # num_classes stays at the root only, where timm reads it: transformers' TimmWrapper models call
    # timm.create_model(num_classes=<root num_classes, or 0>, **model_args), so a second copy in
    # model_args is a "multiple values for keyword argument 'num_classes'" TypeError.
    config.get('model_args', {}).pop('num_classes', None)
    config['pretrained_cfg'].pop('task', None)  # ours, not a timm PretrainedCfg field: stock timm would refuse it
    return config


def write_config(model: nn.Module, spec: ModelSpec, folder: Path, record: Optional[WeightRecord] = None,
                 repo_id: Optional[str] = None, tag: Optional[str] = None,
                 model_args: Optional[Mapping[str, Any]] = None, part: str = '') -> Dict[str, Any]:
    """Write ``folder/config.json`` for ``model`` (built from ``spec``) and return its contents."""
    path = Path(folder) / 'config.json'
    if spec.task == 'classification':
        config = _timm_config(model, path, record)
    else:
        config = task_config(model, spec, repo_id or (record.hf_hub_id if record else None), tag, model_args, part)
        if record is not None:  # the weight's own license (an mmpose file of an official spec: apache-2.0)
            config['license'] = record.license
    path.write_text(json.dumps(config, indent=2))
    return config
