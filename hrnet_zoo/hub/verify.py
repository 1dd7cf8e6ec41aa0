"""Verify a converted folder or a ``.safetensors`` file, for every model: :func:`verify`.

Safetensors header and truncation, sha256 and size against the manifest record, keys / shapes /
dtypes against the model its ``config.json`` describes (built on the meta device: no weights, no
compute), and a task model's config fields against that model's own configuration.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..checkpoint import WeightsError, read_safetensors_header, signature, state_dict_problems
from ..tasks.registry import MODEL_SPECS, ModelSpec
from .config import TASK_CONFIG_FIELDS, task_config
from .convert import build_model
from .fetch import PART_KEY
from .records import WEIGHTS_FILE, WeightRecord, load_manifest, sha256_file

__all__ = ['Report', 'verify']


@dataclass
class Report:
    """Outcome of :func:`verify`: ``problems`` (each one line; any makes it fail) and ``notes``."""
    path: Path
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _locate(path: Path) -> Tuple[Path, Optional[Dict[str, Any]]]:
    """(weights file, config.json contents or None) for a folder or a file."""
    folder = path if path.is_dir() else path.parent
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    cfg_file = folder / 'config.json'
    config = json.loads(cfg_file.read_text()) if cfg_file.is_file() else None
    return weights, config


def verify(path: os.PathLike, arch: Optional[str] = None, name: Optional[str] = None,
           manifest: Optional[Mapping[str, WeightRecord]] = None) -> Report:
    """Check a converted folder or a ``.safetensors`` file: header and truncation, sha256 and size
    against the manifest record (``name`` = ``arch.tag``, else taken from ``config.json``), dtypes,
    and keys/shapes against ``arch`` (else ``config.json``'s architecture)."""
    path = Path(path)
    report = Report(path)
    if not path.exists():
        report.problems.append(f'{path}: no such file or folder')
        return report
    try:
        weights, config = _locate(path)
    except json.JSONDecodeError as e:
        report.problems.append(f'{path}: config.json is not valid JSON ({e})')
        return report
    if not weights.is_file():
        report.problems.append(f'{weights}: missing')
        return report
    try:
        header = read_safetensors_header(weights)
    except WeightsError as e:
        report.problems.append(str(e))
        return report
    if config is not None:
        arch = arch or config.get('architecture')
        tag = config.get('pretrained_cfg', {}).get('tag')
        name = name or (f'{config.get("architecture")}.{tag}' if tag else None)
    spec = MODEL_SPECS.get(arch or '')
    manifest = load_manifest() if manifest is None else manifest
    task_model = spec is not None and spec.task != 'classification'
    # name.tag, else a task model's own untagged record (never the first of its tagged weights)
    record = manifest.get(name or (spec.name if task_model else ''))
    _check_hash(weights, record, name or (spec.name if task_model else None), report)
    if arch is None:
        report.problems.append(f'{path}: no config.json and no --arch: cannot check the architecture')
    elif spec is None:
        report.problems.append(f'unknown architecture {arch!r} (neither a classifier nor a registered task model)')
    else:
        _check_tensors(spec, weights, header, config, report)
    return report


def _model_args(spec: ModelSpec, header: Mapping[str, Mapping[str, Any]],
                config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The builder arguments ``config.json`` records (a classifier: its ``num_classes``, else the
    file's classifier size, else 1000)."""
    args = dict((config or {}).get('model_args') or {}) if spec.task != 'classification' else {}
    if spec.task == 'classification':
        args['num_classes'] = (config or {}).get('num_classes') or header.get('classifier.weight', {}).get(
            'shape', [1000])[0]
    return args


def _check_tensors(spec: ModelSpec, weights: Path, header: Mapping[str, Mapping[str, Any]],
                   config: Optional[Mapping[str, Any]], report: Report) -> None:
    """Keys / shapes / dtypes against the model that ``config.json`` describes (the part it names,
    if any), and a task model's config fields against that model's own configuration."""
    model_args = _model_args(spec, header, config)
    try:
        model = build_model(spec.name, model_args, device='meta')
    except Exception as e:  # a model_args the builder rejects
        report.problems.append(f'config.json: cannot build {spec.name}(**{model_args}): {type(e).__name__}: {e}')
        return
    part = (config or {}).get(PART_KEY) or ''
    own = {k: v for k, v in model.state_dict().items() if k.startswith(part)}
    found = {k: (tuple(v['shape']), v['dtype']) for k, v in header.items()}
    problems = state_dict_problems(signature(own), found)
    if problems:
        hint = _output_count_hint(own, {k: v[0] for k, v in found.items()}, spec)
        report.problems += [f'{weights.name}: {hint}{p}' if i == 0 else f'{weights.name}: {p}'
                            for i, p in enumerate(problems)]
    if config is not None and config.get('architecture') not in (None, spec.name):
        report.problems.append(f'config.json describes {config["architecture"]!r}, not {spec.name!r}')
    elif config is not None and spec.task != 'classification':
        if config.get('task') != spec.task:
            report.problems.append(f'config.json: task is {config.get("task")!r} but {spec.name} is a '
                                   f'{spec.task} model')
        expected = task_config(model, spec, model_args=model_args)
        for key in TASK_CONFIG_FIELDS:
            if config.get(key) != expected[key]:
                report.problems.append(f'config.json: {key} is {_short(config.get(key))} but {spec.name} '
                                       f'(model_args {model_args}) has {_short(expected[key])}')
    if report.ok:
        n = (getattr(model, 'pretrained_cfg', None) or {}).get('num_outputs', spec.num_outputs)  # as model_args built it
        counted = (f'num_classes={model_args["num_classes"]}' if spec.task == 'classification'
                   else f'{spec.task}, {n} {spec.output_arg[4:]}')
        report.notes.append(f'{len(found)} tensors match {spec.name}' + (f'.{part}*' if part else '')
                            + f' ({counted})')


def _check_hash(weights: Path, record: Optional[WeightRecord], name: Optional[str], report: Report) -> None:
    digest = sha256_file(weights)
    report.notes.append(f'sha256 {digest}')
    if record is None:
        report.notes.append(f'{name or weights.name} is not in the manifest: no recorded sha256')
    elif record.sha256 is None:
        report.notes.append(f'{record.name}: no recorded sha256 in the manifest')
    elif digest != record.sha256:
        report.problems.append(f'{weights}: sha256 mismatch for {record.name}: expected {record.sha256}, got {digest}')
    if record is not None and record.size is not None and weights.stat().st_size != record.size:
        report.problems.append(f'{weights}: size {weights.stat().st_size} != recorded {record.size}')


def _output_count_hint(own: Mapping[str, torch.Tensor], found: Mapping[str, Sequence[int]], spec: ModelSpec) -> str:
    """'the checkpoint predicts 68 landmarks ...' when a head tensor differs only in its output
    count, else ''."""
    n, what = spec.num_outputs, spec.output_arg[4:]
    for k, v in own.items():
        got = found.get(k)
        if got is not None and v.ndim >= 1 and v.shape[0] == n and len(got) == v.ndim and got[0] != n \
                and tuple(got[1:]) == tuple(v.shape[1:]):
            return (f'the checkpoint predicts {got[0]} {what} ({k} has shape {list(got)}) but {spec.name} '
                    f'predicts {n}: wrong output count (another dataset?). ')
    return ''


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'
