"""Convert: a checkpoint of any known layout -> a Hub-ready folder (``model.safetensors``,
``config.json``, ``README.md``), for every model of the table: :func:`convert`.

The file is read safely and its layout detected (:mod:`.loading`); the model is the one named
(``arch``), or the one whose manifest record has this file as its source checkpoint; it must load
strictly. The folder is built in a temporary sibling and renamed into place: a failed conversion
leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from torch import nn

from ..checkpoint import WeightsError
from ..tasks.registry import MODEL_SPECS, OUTPUT_KEYS, ModelSpec
from .cards import model_card
from .config import write_config
from .loading import Source, apply_record_codec, load_source, map_source, read_source
from .records import WEIGHTS_FILE, WeightRecord, manifest_or_empty, record_for_file, record_for_model, sha256_file

__all__ = ['convert', 'build_model', 'require_spec', 'write_folder', 'replace_folder']


def require_spec(name: Optional[str]) -> ModelSpec:
    """The spec of a model name of the table; a :class:`WeightsError` listing the names otherwise."""
    spec = MODEL_SPECS.get(name or '')
    if spec is None:
        classifiers = [n for n, s in MODEL_SPECS.items() if s.task == 'classification']
        tasks = [n for n, s in MODEL_SPECS.items() if s.task != 'classification']
        raise WeightsError(f'unknown architecture {name!r}: neither a classifier ({", ".join(classifiers)}) '
                           f'nor a task model ({", ".join(tasks)})')
    return spec


def build_model(name: str, model_args: Optional[Mapping[str, Any]] = None, tag: Optional[str] = None,
                device: Optional[str] = None) -> nn.Module:
    """The model ``name`` (random init, eval mode), built as a ``config.json`` says: through
    ``hrnet_zoo.create_model(name, **model_args)`` (a classifier with timm's pretrained cfg of
    ``name.tag`` when timm knows the tag; ``pretrained_cfg['tag']`` set); ``device='meta'`` gives
    shapes only, fast."""
    import hrnet_zoo
    import timm
    full = f'{name}.{tag}' if tag and f'{name}.{tag}' in timm.list_pretrained(f'{name}.*') else name
    with torch.device(device) if device else contextlib.nullcontext():
        model = hrnet_zoo.create_model(full, **dict(model_args or {})).eval()
    if tag:
        model.pretrained_cfg = dict(model.pretrained_cfg, tag=tag)
    return model


def write_folder(model: nn.Module, spec: ModelSpec, folder: Path, record: Optional[WeightRecord] = None,
                 repo_id: Optional[str] = None, tag: Optional[str] = None,
                 model_args: Optional[Mapping[str, Any]] = None, source: Optional[Source] = None) -> None:
    """Write ``model.safetensors`` (the part of the model ``source``'s layout fills, else all),
    ``config.json`` and ``README.md`` of ``model`` into ``folder``."""
    from safetensors.torch import save_file
    part = source.layout.part if source else ''
    weights = Path(folder) / WEIGHTS_FILE
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(part)}, str(weights),
              metadata={'format': 'pt'})
    config = write_config(model, spec, folder, record, repo_id, tag, model_args, part)
    checkpoint = Path(source.where).name if source and source.where != '<state_dict>' else ''
    (Path(folder) / 'README.md').write_text(
        model_card(config, spec, record, sha256_file(weights), repo_id, source.layout if source else None, checkpoint),
        encoding='utf-8')


def replace_folder(out: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling of ``out`` and rename it into place: a failure
    leaves nothing behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            old = out.with_name(f'.{out.name}.old-{os.getpid()}')
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _arch_from_file(checkpoint: os.PathLike, manifest: Mapping[str, WeightRecord]) -> Dict[str, Any]:
    """``--arch`` / ``--tag`` from the record whose source checkpoint is this file, or from a spec
    whose official file it is."""
    record = record_for_file(checkpoint, manifest)
    if record is not None:
        return {'arch': record.arch, 'tag': record.tag or None}
    name = Path(checkpoint).name
    spec = next((s for s in MODEL_SPECS.values() if s.official and s.official.filename == name), None)
    if spec is None:
        raise WeightsError(f'{name}: no record of the manifest has this source checkpoint, and no model has it as '
                           'its official file; pass --arch (hrnet_zoo.list_models() gives the names)')
    return {'arch': spec.name, 'tag': None}


def _output_count(src: Source, spec: ModelSpec) -> Optional[int]:
    """The classifier size of a classifier checkpoint (``classifier.weight`` rows), else None."""
    key = OUTPUT_KEYS.get(spec.name)
    state = map_source(src, spec)
    return state[key].shape[0] if key in state else None


def convert(checkpoint: os.PathLike, arch: Optional[str], out: os.PathLike, tag: Optional[str] = None,
            num_classes: Optional[int] = None, repo_id: Optional[str] = None, force: bool = False,
            model_args: Optional[Mapping[str, Any]] = None) -> Path:
    """A checkpoint -> ``out/`` with ``model.safetensors``, ``config.json`` and ``README.md``.

    ``checkpoint``: a file of any known layout (official, timm, mmpose, mmdet, ...; detected from
    its keys, read with ``weights_only=True``), an engine ``last.pth`` / ``best.pth`` or a
    safetensors file. ``arch``: the model name (``None``: the model of the manifest record whose
    ``source.checkpoint`` is this file name). The file must load strictly into ``arch`` as
    registered or as ``model_args`` change it (``arch='hrnet_w18_small'``, ``num_keypoints=...``,
    as the builder takes them; ``config.json`` records them). ``num_classes``: a classifier's
    (default: the checkpoint's classifier size). ``tag`` names the weight ``arch.tag`` (its
    manifest record). Nothing is written if anything fails.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise WeightsError(f'{out} exists and is not empty; choose another --out or pass --force')
    manifest = manifest_or_empty()
    if arch is None:
        found = _arch_from_file(checkpoint, manifest)
        arch, tag = found['arch'], tag or found['tag']
    elif tag is None:  # --arch given: the tag of this file's record when it is one of arch's weights
        found = record_for_file(checkpoint, manifest)
        tag = (found.tag or None) if found is not None and found.arch == arch else None
    spec = require_spec(arch)
    model_args = dict(model_args or {})
    src = read_source(checkpoint)
    if spec.task == 'classification':
        n = num_classes or _output_count(src, spec)
        model_args.setdefault('num_classes', n or 1000)
    elif num_classes is not None:
        raise WeightsError(f'--num-classes is for classifiers; {arch} has a fixed output count (its registered '
                           'spec), which the checkpoint must match')
    try:
        model = build_model(spec.name, model_args, tag)
    except TypeError as e:
        raise WeightsError(f'{spec.name} does not take the model arguments {model_args}: {e}') from None
    load_source(model, src, spec, warn_part=False)  # the folder holds only that part, and its card says so
    apply_record_codec(model, spec, src, tag)  # the codec of the file's record (mmpose 0.x / 1.x files differ)
    codec = (getattr(model, 'pretrained_cfg', None) or {}).get('codec')
    if codec != spec.codec:  # the checkpoint's own codec (a run trained under another): rebuilt so by verify
        model_args['codec'] = codec
    # the record of this weight (name.tag); untagged: a task model's own untagged record, never another tag's
    record = record_for_model(spec.name, manifest, tag) if tag else (
        manifest.get(spec.name) if spec.task != 'classification' else None)
    if spec.task == 'classification':  # config.json is timm's: the output count lives at its root
        model_args.pop('num_classes')
    return replace_folder(out, lambda tmp: write_folder(model, spec, tmp, record, repo_id, tag, model_args, src))
