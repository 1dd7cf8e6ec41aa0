"""A checkpoint of any known layout into a model of the table: read safely, detect the layout from
the keys (:func:`~.layouts.detect_layout`), map the keys (the layout's key map, or the model's own
official key map), check the head's output count and load strictly, the whole model or the part
the layout fills. A file of another layout, another task or another model is a
:class:`~hrnet_zoo.checkpoint.WeightsError` that names the layout found and, where the table has
one, the models it fits (by trunk width and depth, and the head's output count).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn

from ..checkpoint import (KeyMap, WeightsError, load_strict, load_weights, read_state_dict, unwrap_state_dict)
from ..tasks.codecs import checkpoint_codec, set_codec
from ..tasks.registry import CODEC_TASKS, MODEL_SPECS, OUTPUT_ARG, OUTPUT_KEYS, ModelSpec, key_map_of
from .layouts import LAYOUTS, Layout, detect_layout, trunk_variants

__all__ = ['Source', 'read_source', 'load_source', 'map_source', 'models_that_fit', 'describe_fit', 'apply_record_codec']

StateDict = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class Source:
    """A checkpoint read once: its tensors, where it came from (for messages), its layout and the
    heatmap codec it records (an engine checkpoint's or a converted folder's; None: the spec's)."""
    state: StateDict
    where: str
    layout: Layout
    codec: Optional[str] = None


def read_source(source: Union[str, os.PathLike, Mapping[str, Any], Source]) -> Source:
    """Read a checkpoint file (safely: :func:`~hrnet_zoo.checkpoint.read_state_dict`) or take a
    state_dict, and detect its layout."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Mapping):
        state, where = unwrap_state_dict(source), '<state_dict>'
    else:
        state, where = read_state_dict(source), str(source)
    return Source(state, where, detect_layout(state, where), checkpoint_codec(source))


def map_source(src: Source, spec: ModelSpec) -> StateDict:
    """``src``'s tensors in ``spec``'s model keys (the layout's key map; ``official``: the
    model's own), restricted to the part of the model the layout fills, with that prefix removed."""
    mapped = (src.layout.key_map or key_map_of(spec)).apply(src.state)
    part = src.layout.part
    return {k[len(part):]: v for k, v in mapped.items() if k.startswith(part)} if part else mapped


def load_source(model: nn.Module, source: Any, spec: ModelSpec, warn_part: bool = True) -> Source:
    """Load ``source`` (a file of any known layout, an engine checkpoint, a safetensors file or a
    state_dict) into ``model``, built from ``spec``, strictly; returns the :class:`Source`.
    A layout that fills a part of the model (mmdetection's trunk + HRFPN into a detector's
    ``backbone``) loads that part strictly and warns (``warn_part``) that the rest keeps its
    initialisation."""
    src = read_source(source)
    if not src.layout.takes(spec.task):
        trunk = (' To start the trunk of a task model from a classifier, pass weights_backbone=<file>.'
                 if src.layout.takes('classification') else '')
        raise WeightsError(f'{src.where} is {_article(src.layout)} checkpoint ({src.layout.holds}); '
                           f'{spec.name} is a {spec.task} model, which takes {_layouts_for(spec.task)}. '
                           + describe_fit(src) + trunk)
    target = model.get_submodule(src.layout.part.rstrip('.')) if src.layout.part else model
    state = src.layout.fill_zeros(map_source(src, spec), target.state_dict())  # biases a bias-free source lacks
    try:
        if src.layout.part:
            load_strict(target, state, f'{src.where} ({src.layout.label}, {src.layout.part}*)')
            if warn_part:
                warnings.warn(f'{src.where} ({src.layout.label}) holds {src.layout.holds}: it filled '
                              f'{spec.name}.{src.layout.part}*; the rest of the model keeps its initialisation '
                              '(fine-tune it)', UserWarning, stacklevel=3)
        else:
            what = OUTPUT_ARG[spec.task][len('num_'):]
            load_weights(model, state, KeyMap(strip=()), OUTPUT_KEYS.get(spec.name), what, src.where)
    except WeightsError as e:
        raise type(e)(f'{e}\nThe file is {_article(src.layout)} checkpoint ({src.layout.holds}). '
                      f'{describe_fit(src, spec.name)}') from None
    if src.codec and spec.task in CODEC_TASKS:  # decode as the weights were trained
        set_codec(model, src.codec)
    return src


def models_that_fit(src: Source, exclude: Optional[str] = None) -> List[str]:
    """Names of the table whose models ``src`` fits: a task that takes the layout, the trunk of
    the spec (:func:`~.layouts.trunk_variants`) and, where the head is in the file, the spec's
    output count at its output tensor."""
    names, trunks = [], {}
    for spec in MODEL_SPECS.values():
        if spec.name == exclude or not src.layout.takes(spec.task):
            continue
        key_map = src.layout.key_map or key_map_of(spec)
        state = map_source(src, spec)
        if key_map not in trunks:
            trunks[key_map] = trunk_variants(state, head_bias_known=not src.layout.zero_fill)
        key = OUTPUT_KEYS.get(spec.name)
        head_ok = src.layout.part or key is None or (key in state and state[key].shape[0] == spec.num_outputs
                                                          * spec.options.get('maps_per_keypoint', 1))
        if head_ok and spec.trunk in trunks[key_map]:
            names.append(spec.name)
    return names


def describe_fit(src: Source, exclude: Optional[str] = None) -> str:
    """One sentence: the models of the table ``src`` fits, else its trunk variant and head size."""
    names = models_that_fit(src, exclude)
    if names:
        shown = ', '.join(names[:8]) + (f' (+{len(names) - 8} more)' if len(names) > 8 else '')
        return f'It fits: {shown}.'
    if src.layout.tasks == ():
        return f'No model of hrnet-zoo takes the {src.layout.label} layout yet.'
    mapped = map_source(src, next(iter(MODEL_SPECS.values()))) if src.layout.key_map else \
        KeyMap(strip=('module.', 'model.')).apply(src.state)
    trunk = ' / '.join(trunk_variants(mapped)) or 'not an HRNet variant of the table'
    key = next((k for k in dict.fromkeys(OUTPUT_KEYS.values()) if k and k in mapped), None)
    head = f'; {mapped[key].shape[0]} outputs at {key}' if key else ''
    return f'No registered model{" other than " + exclude if exclude else ""} fits it (its trunk: {trunk}{head}).'


def _article(layout: Layout) -> str:
    """'an official', 'an mmpose 1.x' (said "em-em"), 'a timm'."""
    return f'an {layout.label}' if layout.label[0] in 'aeiou' or layout.label.startswith('mm') else f'a {layout.label}'


def _layouts_for(task: str) -> str:
    return ', '.join(dict.fromkeys(layout.label for layout in LAYOUTS if layout.takes(task) and layout.tasks != ()))


def apply_record_codec(model: nn.Module, spec: ModelSpec, src: Source, tag: Optional[str] = None) -> nn.Module:
    """Decode a loaded checkpoint as its manifest record says: the record of ``name.tag`` (``tag``
    given), else the record of this model whose source checkpoint has the file's name (mmpose's 0.x
    and 1.x files of one model differ in codec); a file that records its own codec (an engine
    checkpoint, a converted folder) keeps it, a file without a record keeps the spec's, and a codec
    the caller asked for (``create_model(..., codec=)``) stays."""
    if spec.task not in CODEC_TASKS or src.codec or model.pretrained_cfg.get('codec') != spec.codec:
        return model
    from .records import record_for_file, record_for_model
    record = record_for_model(spec.name, tag=tag) if tag else None
    if record is None and src.where != '<state_dict>':
        record = record_for_file(src.where)
        if record is not None and record.arch != spec.name:
            # the file is the record of another model of the table (an mmpose face file loaded into the
            # official face spec): its weights were trained with that record's codec, not the spec's
            other = MODEL_SPECS.get(record.arch)
            if other is None or other.task != spec.task or not record.codec or record.codec == model.pretrained_cfg.get('codec'):
                return model
            warnings.warn(f'{src.where} is the checkpoint of {record.name}, trained with the {record.codec!r} codec: '
                          f'{spec.name} decodes it with {record.codec!r}, not its own '
                          f'{model.pretrained_cfg.get("codec")!r} (build {record.arch} to get its own model; '
                          'pass codec= afterwards to override)', stacklevel=3)
    if record is not None and record.codec:
        set_codec(model, record.codec)
    return model
