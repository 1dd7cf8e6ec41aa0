"""Pretrained loading, for every model of the table.

* Classifiers keep timm's path: ``hrnet_zoo._timm`` merges the manifest's records into timm's
  pretrained cfgs (:func:`merge_into_default_cfgs`) and calls :func:`fetch_pretrained` before timm
  loads Hub weights: it downloads through ``huggingface_hub`` into the cache timm uses, checks the
  sha256 when the manifest knows it, and turns "no network, no cache" into an error that says which
  repo/file was wanted and how to supply a local file.
* Task models: :func:`load_into` is what the table's builders call (connected by
  :mod:`hrnet_zoo.hub`): ``checkpoint_path=`` through the source layouts
  (:func:`~.loading.load_source`), ``pretrained=`` (``True``: the record's Hub repo,
  ``'hf-hub:ORG/REPO[@REV]'``, a converted folder or a ``.safetensors`` file) through
  ``huggingface_hub``, sha256-checked, loaded strictly.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from torch import nn

from ..checkpoint import WeightsError, load_strict, read_safetensors_header, read_state_dict
from ..tasks.codecs import set_codec
from ..tasks.registry import CODEC_TASKS, MODEL_SPECS, ModelSpec
from .loading import apply_record_codec, load_source
from .records import (WEIGHTS_FILE, manifest_or_empty, manifest_path, record_for_model, record_for_repo,
                      sha256_file)

__all__ = ['PretrainedWeightsUnavailable', 'fetch_pretrained', 'merge_into_default_cfgs', 'resolve_weights',
           'load_pretrained', 'load_into', 'hub_location', 'model_of_repo', 'PART_KEY']

PART_KEY = 'part'  # config.json: the sub-module the weights fill ('backbone.'), when not the whole model


class PretrainedWeightsUnavailable(RuntimeError, ValueError):
    """Pretrained weights could not be fetched (no network and no cached copy, unknown repo, no
    published weight). A RuntimeError; also a ValueError, as the task builders raised before."""


# --------------------------------------------------------------------------------------------
# Classifiers: timm's machinery
# --------------------------------------------------------------------------------------------
def merge_into_default_cfgs(default_cfgs: Dict[str, Any]) -> Dict[str, Any]:
    """Return timm default_cfgs with the manifest's classifier records merged in (new tags added,
    ``hf_hub_id`` set where ours differs). The input (timm's own table) is not modified."""
    from timm.models._pretrained import DefaultCfg, PretrainedCfg
    merged = dict(default_cfgs)
    for record in manifest_or_empty().values():  # no manifest (a wheel without weights/): timm's table as is
        if record.task != 'classification':
            continue  # task models are not timm models: their builders read the record
        base = merged.get(record.arch)
        cfgs = dict(base.cfgs) if base is not None else {}
        tags = deque(base.tags) if base is not None else deque()
        old = cfgs.get(record.tag)
        if old is not None:
            if old.hf_hub_id in ('timm/', record.hf_hub_id) and record.hf_hub_id == f'timm/{record.name}':
                continue  # timm's own entry already points at this repo
            cfgs[record.tag] = dataclasses.replace(old, hf_hub_id=record.hf_hub_id, hf_hub_filename=record.filename)
        else:
            cfgs[record.tag] = PretrainedCfg(
                hf_hub_id=record.hf_hub_id, hf_hub_filename=record.filename, input_size=record.input_size,
                mean=record.mean, std=record.std, interpolation=record.interpolation, crop_pct=record.crop_pct,
                num_classes=record.num_classes, license=record.license, pool_size=(7, 7),
                first_conv='conv1', classifier='classifier')
            tags.append(record.tag)
        merged[record.arch] = DefaultCfg(tags=tags, cfgs=cfgs)
    return merged


def _hub_location(cfg: Mapping[str, Any]) -> Optional[Tuple[str, Optional[str], str]]:
    """(repo, revision, filename) when timm would load this cfg from the Hub, else None."""
    if cfg.get('state_dict') is not None or cfg.get('source') == 'local-dir':
        return None
    if cfg.get('file') and cfg.get('source') != 'hf-hub':
        return None
    hub_id = cfg.get('hf_hub_id')
    if not hub_id or hub_id.endswith('/'):
        return None
    repo, _, revision = hub_id.partition('@')
    return repo, revision or None, cfg.get('hf_hub_filename') or WEIGHTS_FILE


def fetch_pretrained(pretrained_cfg: Mapping[str, Any], cache_dir: Optional[os.PathLike] = None) -> Optional[Path]:
    """Download (or find in the cache) the Hub file timm is about to load, and check its sha256
    against the manifest record of that repo. Returns the local path, or None when the weights do
    not come from the Hub. Raises :class:`PretrainedWeightsUnavailable` / :class:`WeightsError`."""
    where = _hub_location(pretrained_cfg)
    if where is None:
        return None
    repo, revision, filename = where
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    import timm
    record = record_for_repo(repo, filename)
    try:
        path = _download(repo, filename, revision, cache_dir, 'timm', timm.__version__)
    except EntryNotFoundError as e:
        if record is None and not isinstance(e, LocalEntryNotFoundError) and not pretrained_cfg.get('hf_hub_filename'):
            return None  # not ours, no safetensors: let timm try its other file names
        raise _unavailable(repo, filename, e) from None
    except _hub_errors() as e:
        raise _unavailable(repo, filename, e) from None
    _check_sha256(path, record, repo, filename)
    return path


def _hub_errors() -> Tuple[type, ...]:
    """What a failed download raises: huggingface_hub's HTTP errors (OSError subclasses), its
    missing-entry errors (not OSErrors in huggingface_hub 2.x), bad repo ids (ValueError)."""
    from huggingface_hub.errors import EntryNotFoundError
    return OSError, ValueError, EntryNotFoundError


def _download(repo: str, filename: str, revision: Optional[str], cache_dir: Optional[os.PathLike],
              library: str, version: str) -> Path:
    from huggingface_hub import hf_hub_download
    return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                library_name=library, library_version=version))


def _check_sha256(path: Path, record, repo: str, filename: str) -> None:
    if record is not None and record.sha256 is not None:
        digest = sha256_file(path)
        if digest != record.sha256:
            raise WeightsError(f'{path} ({repo}/{filename}): sha256 mismatch for {record.name}: expected '
                               f'{record.sha256}, got {digest}. Delete the cached file and download it again.')


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _unavailable(repo: str, filename: str, err: BaseException) -> PretrainedWeightsUnavailable:
    return PretrainedWeightsUnavailable(
        f"pretrained weights unavailable: could not get '{filename}' from the Hugging Face Hub repo '{repo}' "
        f"({type(err).__name__}: {_first_line(err)}). With no network, download it elsewhere and pass "
        f"pretrained_cfg_overlay=dict(file='path/{filename}'), or fill the Hub cache (HF_HOME) / set "
        f"HF_ENDPOINT to a reachable mirror.")


# --------------------------------------------------------------------------------------------
# Every model of the table: what its builder calls
# --------------------------------------------------------------------------------------------
def hub_location(name: str) -> Tuple[Optional[str], Optional[str]]:
    """(hf_hub_id, filename) of the published weight of model ``name``, or (None, None)."""
    record = record_for_model(name)
    return (record.hf_hub_id, record.filename) if record else (None, None)


def load_into(model: nn.Module, spec: ModelSpec, pretrained: Any = False, checkpoint_path: Any = None,
              cache_dir: Optional[os.PathLike] = None, tag: Optional[str] = None) -> nn.Module:
    """Load ``checkpoint_path`` (any known source layout, detected) or else ``pretrained`` into
    ``model`` (built from ``spec``): what the table's builders call."""
    if checkpoint_path:
        apply_record_codec(model, spec, load_source(model, checkpoint_path, spec), tag)
    elif pretrained:
        load_pretrained(model, spec, pretrained, cache_dir=cache_dir, tag=tag)
    return model


def _no_weights(spec: ModelSpec, why: str) -> PretrainedWeightsUnavailable:
    if spec.official is not None:
        hint = (f'Download the official checkpoint ({spec.official.filename}, {spec.official.repo}) yourself and '
                f'pass checkpoint_path=<file> (read offline through the documented key map, '
                f'hrnet_zoo.get_model_spec({spec.name!r}).official.key_map, as '
                f'hrnet_zoo.tasks.{spec.task}.load_official_checkpoint does), or use pretrained=False.')
    else:
        hint = (f'Train one (python -m hrnet_zoo.tasks.{spec.task} train) or convert one (hrnet-zoo convert FILE) and '
                "pass checkpoint_path=<file>, or use pretrained=False with weights_backbone='imagenet' (or a path) "
                'to start from ImageNet weights.')
    return PretrainedWeightsUnavailable(f'no weights for {spec.name!r}: {why}. {hint}')


def resolve_weights(spec: ModelSpec, pretrained: Any, cache_dir: Optional[os.PathLike] = None,
                    tag: Optional[str] = None) -> Tuple[Path, Dict[str, Any]]:
    """The local ``model.safetensors`` and its ``config.json`` (``{}`` without one) for a model's
    ``pretrained=`` value: ``True`` (the manifest record's Hub repo; ``tag`` picks ``name.tag``),
    ``'hf-hub:ORG/REPO[@REV]'``, a folder holding ``model.safetensors``, or a ``.safetensors``
    file. Hub files come through huggingface_hub (its cache, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``,
    ``cache_dir``) and are checked against the record's sha256; a config.json must describe
    ``spec``'s model."""
    if pretrained is True:
        record = record_for_model(spec.name, tag=tag)
        if record is None:
            raise _no_weights(spec, f'no {spec.task} weights are published under this name '
                                    f'(no record in {manifest_path()})')
        repo, revision, filename = record.hf_hub_id, None, record.filename
    elif isinstance(pretrained, str) and pretrained.startswith('hf-hub:'):
        repo, _, revision = pretrained[len('hf-hub:'):].partition('@')
        revision, filename = revision or None, WEIGHTS_FILE
        record = record_for_repo(repo)
    else:
        path = Path(pretrained)
        path = path / WEIGHTS_FILE if path.is_dir() else path
        if not path.is_file():
            raise WeightsError(f'pretrained={str(pretrained)!r}: no such file or folder with {WEIGHTS_FILE}; pass '
                               f"True, 'hf-hub:ORG/REPO', a folder written by `hrnet-zoo convert` or a .safetensors file")
        return path, _read_config(path.parent / 'config.json', spec)
    from .. import __version__
    try:
        path = _download(repo, filename, revision, cache_dir, 'hrnet-zoo', __version__)
    except _hub_errors() as e:
        raise _no_weights(spec, f"could not get '{filename}' from the Hugging Face Hub repo '{repo}' "
                                f"({type(e).__name__}: {_first_line(e)}); with no network, download it elsewhere and "
                                f"pass pretrained='path/to/{filename}' (or its folder), fill the Hub cache "
                                '(HF_HOME or cache_dir=) or set HF_ENDPOINT to a reachable mirror') from None
    _check_sha256(path, record, repo, filename)
    try:  # the repo's config.json, when it has one, must describe this model
        config = _download(repo, 'config.json', revision, cache_dir, 'hrnet-zoo', __version__)
    except _hub_errors():
        return path, {}
    return path, _read_config(config, spec, f'{repo}/config.json')


def _read_config(config_file: Path, spec: ModelSpec, where: Optional[str] = None) -> Dict[str, Any]:
    """A weights folder's config.json (``{}`` without one); it must describe ``spec``'s model."""
    if not config_file.is_file():
        return {}
    where = where or str(config_file)
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f'{where}: not valid JSON ({e})') from None
    arch = config.get('architecture')
    if arch is not None and arch != spec.name:
        hint = (f'build hrnet_zoo.create_model({arch!r}, pretrained=...) instead' if arch in MODEL_SPECS
                else 'it is not a model of the zoo')
        raise WeightsError(f'{where} describes {arch!r}, not {spec.name!r}: {hint}')
    return config


def load_pretrained(model: nn.Module, spec: ModelSpec, pretrained: Any, cache_dir: Optional[os.PathLike] = None,
                    tag: Optional[str] = None) -> nn.Module:
    """Load the weights named by ``pretrained`` (see :func:`resolve_weights`) strictly: the whole
    model, or the part its config.json names (``"part": "backbone."``)."""
    path, config = resolve_weights(spec, pretrained, cache_dir, tag)
    read_safetensors_header(path)
    part = config.get(PART_KEY) or ''
    target = model.get_submodule(part.rstrip('.')) if part else model
    state = read_state_dict(path)
    load_strict(target, {k[len(part):]: v for k, v in state.items()} if part else state, str(path))
    if config.get('codec') and spec.task in CODEC_TASKS:  # the published weights' codec (a record may differ from the spec's)
        set_codec(model, config['codec'])
    return model


def model_of_repo(location: str, cache_dir: Optional[os.PathLike] = None) -> Optional[str]:
    """The task model a published repo holds (``'hf-hub:ORG/REPO'``, ``'local-dir:PATH'``): from
    the manifest record of that repo, else from its ``config.json``; None for a classifier repo
    (or when the config cannot be read: timm's own loading then reports it)."""
    kind, _, where = location.partition(':')
    if kind == 'hf-hub':
        repo, _, revision = where.partition('@')
        record = record_for_repo(repo)
        if record is not None:
            return record.arch if record.task != 'classification' else None
        from .. import __version__
        try:
            config_file = _download(repo, 'config.json', revision or None, cache_dir, 'hrnet-zoo', __version__)
        except Exception:  # no config / offline: not for us to decide
            return None
    else:
        config_file = Path(where) / 'config.json'
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config.get('architecture') if config.get('task', 'classification') != 'classification' else None
