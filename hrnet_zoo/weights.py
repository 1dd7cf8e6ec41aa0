"""Published weights as data, and the tools that make and check them.

* :class:`WeightRecord`: one published weight (``arch.tag`` name, Hub repo and file, sha256, size,
  params, GMACs, preprocessing, metrics, license, source, recipe). The records live in
  ``weights/manifest.json`` (one source of truth) and are validated when loaded.
* Pretrained loading (:func:`fetch_pretrained`): called by ``hrnet_zoo._timm`` before timm loads
  Hub weights. It downloads through ``huggingface_hub`` into the same cache timm uses, checks the
  sha256 when the manifest knows it, and turns "no network, no cache" into an error that says which
  repo/file was wanted and how to supply a local file.
* Conversion (:func:`convert`): an official ``.pth`` checkpoint -> a Hub-ready folder
  (``model.safetensors``, timm's ``config.json``, ``README.md`` model card), written atomically.
* Verification (:func:`verify`): safetensors header, truncation, dtypes, keys/shapes against the
  architecture, sha256 against the manifest.
* Publishing (:func:`publish`): verify, then ``create_repo`` + ``upload_folder``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .checkpoint import (WeightsError, load_strict, read_state_dict, state_dict_problems,  # noqa: F401
                         unwrap_state_dict)
from .configs import HRNET_CONFIGS

MANIFEST_ENV = 'HRNET_ZOO_MANIFEST'
# ``hrnet_zoo/manifest.json`` is a link to the repo's ``weights/manifest.json`` (the one source of
# truth); building a wheel copies the file behind it into the package, so installs carry it.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / 'manifest.json'
WEIGHTS_FILE = 'model.safetensors'
PAPER = 'Deep High-Resolution Representation Learning for Visual Recognition (Wang et al., TPAMI 2020)'
PAPER_ID = 'arXiv:1908.07919'
OFFICIAL_REPO = 'https://github.com/HRNet/HRNet-Image-Classification'


class PretrainedWeightsUnavailable(RuntimeError, ValueError):
    """Pretrained weights could not be fetched (no network and no cached copy, unknown repo, no
    published weight). A RuntimeError; also a ValueError, as the task builders raised before."""


# --------------------------------------------------------------------------------------------
# Records and the manifest
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightRecord:
    """One published weight. ``sha256``/``size`` are ``None`` when unknown (then nothing is checked)."""
    name: str                      # timm's arch.tag ('hrnet_w32.ms_in1k'); a task model's name
    hf_hub_id: str                 # 'org/repo'
    filename: str                  # file in the repo, 'model.safetensors'
    sha256: Optional[str]
    size: Optional[int]
    num_params: int
    gmacs: float                   # measured: torch FlopCounterMode at input_size, MACs = FLOPs / 2
    official_gflops: Optional[float]
    input_size: Tuple[int, int, int]
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    crop_pct: float
    metrics: Mapping[str, Any]     # {'dataset': ..., 'top1': ... / 'AP': ... / 'mIoU': ..., 'source': ...}
    license: str
    source: Mapping[str, str]      # {'repo': url, 'checkpoint': file name}
    recipe: str
    num_classes: int = 1000
    task: str = 'classification'   # or pose / landmarks / segmentation / detection
    num_outputs: Optional[int] = None  # keypoints / landmarks / classes of a task model

    @property
    def arch(self) -> str:
        """The model name (timm's arch for a classifier, the registered name for a task model)."""
        return self.name.split('.', 1)[0]

    @property
    def tag(self) -> str:
        return self.name.partition('.')[2]

    @property
    def top1(self) -> Optional[float]:
        return self.metrics.get('top1')


_REQUIRED = {f.name for f in dataclasses.fields(WeightRecord) if f.default is dataclasses.MISSING}
_ALLOWED = {f.name for f in dataclasses.fields(WeightRecord)}


def _check_record(raw: Mapping[str, Any], where: str) -> WeightRecord:
    """Validate one raw manifest entry and build its record; errors name the entry and field."""
    if not isinstance(raw, Mapping):
        raise WeightsError(f'{where}: each weight must be a JSON object, got {type(raw).__name__}')
    missing, unknown = _REQUIRED - set(raw), set(raw) - _ALLOWED
    if missing or unknown:
        raise WeightsError(f'{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}')
    from .tasks.registry import TASKS
    name, task = raw['name'], raw.get('task', 'classification')
    arch, _, tag = str(name).partition('.')
    if task not in TASKS:
        raise WeightsError(f'{where}: task must be one of {list(TASKS)}, got {task!r}')
    if task == 'classification' and (arch not in HRNET_CONFIGS or not tag):
        raise WeightsError(f'{where}: name {name!r} must be "<arch>.<tag>" with arch one of {sorted(HRNET_CONFIGS)}')
    if task != 'classification':
        _check_task_record(raw, where)
    sha = raw['sha256']
    if sha is not None and (len(sha) != 64 or any(c not in '0123456789abcdef' for c in sha)):
        raise WeightsError(f'{where}: sha256 must be 64 lower-case hex digits or null, got {sha!r}')
    for key in ('size', 'num_params'):
        if raw[key] is not None and (not isinstance(raw[key], int) or raw[key] <= 0):
            raise WeightsError(f'{where}: {key} must be a positive integer' + (' or null' if key == 'size' else ''))
    if '/' not in raw['hf_hub_id'] or not raw['filename']:
        raise WeightsError(f'{where}: hf_hub_id must be "org/repo" and filename non-empty')
    if len(raw['input_size']) != 3 or len(raw['mean']) != 3 or len(raw['std']) != 3:
        raise WeightsError(f'{where}: input_size, mean and std need 3 values each')
    if 'dataset' not in raw['metrics']:
        raise WeightsError(f'{where}: metrics must name their dataset')
    values = dict(raw)
    for key in ('input_size', 'mean', 'std'):
        values[key] = tuple(values[key])
    return WeightRecord(**values)


# the metrics a task record must report (the field's headline numbers, as the source gives them)
TASK_METRICS = {'pose': ('AP',), 'landmarks': ('nme',), 'segmentation': ('miou',), 'detection': ('bbox_AP',)}


def _check_task_record(raw: Mapping[str, Any], where: str) -> None:
    """The fields a task record needs beyond a classifier's: a model name, the output count and
    the task's headline metric with its source."""
    name, task = str(raw['name']), raw['task']
    if not name.split('.')[0].isidentifier() or name != name.lower():
        raise WeightsError(f'{where}: name {name!r} must be a task model name (hrnet_zoo.list_models(task={task!r}))')
    n = raw.get('num_outputs')
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise WeightsError(f'{where}: a {task} record needs num_outputs (keypoints / landmarks / classes), '
                           f'a positive integer; got {n!r}')
    wanted = [k for k in (*TASK_METRICS[task], 'source') if k not in raw['metrics']]
    if wanted:
        raise WeightsError(f'{where}: {task} metrics must include {wanted}')


def manifest_path() -> Path:
    """The manifest in use: ``$HRNET_ZOO_MANIFEST`` if set, else ``weights/manifest.json``."""
    return Path(os.environ.get(MANIFEST_ENV) or DEFAULT_MANIFEST)


def load_manifest(path: Optional[os.PathLike] = None) -> Dict[str, WeightRecord]:
    """Read and validate a manifest; returns ``{name: record}`` in file order."""
    path = Path(path) if path is not None else manifest_path()
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise WeightsError(f'weight manifest not found: {path} (set ${MANIFEST_ENV} to point at one)') from None
    except json.JSONDecodeError as e:
        raise WeightsError(f'{path}: not valid JSON ({e})') from None
    records: Dict[str, WeightRecord] = {}
    for i, raw in enumerate(data.get('weights', [])):
        record = _check_record(raw, f'{path} weights[{i}]')
        if record.name in records:
            raise WeightsError(f'{path}: {record.name} is listed twice')
        records[record.name] = record
    return records


def get_weight(name: str, manifest: Optional[Mapping[str, WeightRecord]] = None) -> WeightRecord:
    """The record for ``arch.tag``; a clear error lists the known names otherwise."""
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        raise WeightsError(f'no weight {name!r} in the manifest; known: {", ".join(manifest)}')
    return manifest[name]


def merge_into_default_cfgs(default_cfgs: Dict[str, Any]) -> Dict[str, Any]:
    """Return timm default_cfgs with the manifest's records merged in (new tags added, ``hf_hub_id``
    set where ours differs). The input (timm's own table) is not modified."""
    from timm.models._pretrained import DefaultCfg, PretrainedCfg
    try:
        manifest = load_manifest()
    except WeightsError:
        return default_cfgs  # no manifest (e.g. a wheel without weights/): timm's table as is
    merged = dict(default_cfgs)
    for record in manifest.values():
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


# --------------------------------------------------------------------------------------------
# Hashes and safetensors structure
# --------------------------------------------------------------------------------------------
def sha256_file(path: os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_TORCH_TO_ST = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
                torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL'}


def read_safetensors_header(path: os.PathLike) -> Dict[str, Dict[str, Any]]:
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


# --------------------------------------------------------------------------------------------
# Official checkpoints -> state_dict, strict load
# --------------------------------------------------------------------------------------------
def read_checkpoint(path: os.PathLike) -> Dict[str, torch.Tensor]:
    """A checkpoint's tensors, read safely (:func:`hrnet_zoo.checkpoint.read_state_dict`)."""
    return read_state_dict(path)


def _signature(sd: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    return {k: (tuple(v.shape), _TORCH_TO_ST.get(v.dtype, str(v.dtype))) for k, v in sd.items()}


def build_classifier(arch: str, num_classes: int = 1000, tag: Optional[str] = None) -> torch.nn.Module:
    """Our classifier for ``arch`` (random init), with the tag's pretrained_cfg when timm knows it."""
    import timm
    import hrnet_zoo
    if arch not in HRNET_CONFIGS:
        raise WeightsError(f'unknown architecture {arch!r}; choose one of {", ".join(HRNET_CONFIGS)}')
    name = f'{arch}.{tag}' if tag and f'{arch}.{tag}' in timm.list_pretrained(f'{arch}.*') else arch
    model = hrnet_zoo.create_model(name, num_classes=num_classes)
    if tag:
        model.pretrained_cfg = dict(model.pretrained_cfg, tag=tag)
    return model.eval()


# --------------------------------------------------------------------------------------------
# Convert: checkpoint -> Hub-ready folder
# --------------------------------------------------------------------------------------------
def model_card(name: str, config: Mapping[str, Any], record: Optional[WeightRecord], sha256: str,
               repo_id: Optional[str] = None) -> str:
    """README.md for a Hub repo: YAML front matter (library_name timm, license, tags, datasets,
    metrics, model-index) and a body with details and timm / torch.hub usage."""
    import yaml
    arch = config['architecture']
    repo = repo_id or f'<org>/{name}'
    pcfg = config['pretrained_cfg']
    meta: Dict[str, Any] = {
        'library_name': 'timm', 'license': pcfg.get('license', record.license if record else 'mit'),
        'tags': ['image-classification', 'timm', 'hrnet', 'hrnet-zoo'], 'pipeline_tag': 'image-classification',
        'datasets': [record.metrics['dataset']] if record else [],
    }
    details = [f'- **Architecture:** `{arch}` (HRNet classifier, {PAPER}, {PAPER_ID})',
               f'- **Input size:** {pcfg["input_size"][1]}x{pcfg["input_size"][2]}, '
               f'crop_pct {pcfg.get("crop_pct")}, interpolation {pcfg.get("interpolation")}',
               f'- **Classes:** {config["num_classes"]}',
               f'- **model.safetensors sha256:** `{sha256}`']
    if record:
        meta['metrics'] = ['accuracy']
        results = [{'type': 'accuracy', 'name': f'top-{k[-1]} accuracy', 'value': record.metrics[k]}
                   for k in ('top1', 'top5') if record.metrics.get(k) is not None]
        meta['model-index'] = [{'name': name, 'results': [{
            'task': {'type': 'image-classification'},
            'dataset': {'name': record.metrics['dataset'], 'type': record.metrics['dataset'], 'split': 'validation'},
            'metrics': results, 'source': {'name': record.metrics.get('source', ''), 'url': record.source['repo']}}]}]
        details += [f'- **Params (M):** {record.num_params / 1e6:.2f}; **GMACs:** {record.gmacs:.2f} '
                    f'(official GFLOPs {record.official_gflops})',
                    f'- **Source:** {record.source["repo"]}, checkpoint `{record.source["checkpoint"]}`',
                    f'- **Recipe:** {record.recipe}',
                    '- **Accuracy:** ' + ', '.join(f'{r["name"]} {r["value"]}' for r in results)
                    + f' on {record.metrics["dataset"]} (as reported by the source, not re-measured here)']
    usage = (f"```python\nimport timm\nmodel = timm.create_model('hf-hub:{repo}', pretrained=True).eval()\n"
             f"cfg = timm.data.resolve_data_config({{}}, model=model)\n"
             f"transform = timm.data.create_transform(**cfg)\n```\n\n"
             f"Stock timm is enough. torch.hub works too, through hrnet-zoo's `hubconf.py`:\n\n"
             f"```python\nimport torch\nmodel = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', name='hf-hub:{repo}', "
             f"pretrained=True)\n```\n")
    return ('---\n' + yaml.safe_dump(meta, sort_keys=False) + '---\n\n'
            + f'# {name}\n\nHRNet ImageNet classifier weights in safetensors, converted by `hrnet-zoo convert`.\n\n'
            + '## Details\n\n' + '\n'.join(details) + '\n\n## Usage\n\n' + usage
            + '\n## Citation\n\n```bibtex\n@article{WangSCJDZLMTWLX19,\n  title={Deep High-Resolution '
              'Representation Learning for Visual Recognition},\n  author={Jingdong Wang and Ke Sun and '
              'Tianheng Cheng and Borui Jiang and Chaorui Deng and Yang Zhao and Dong Liu and Yadong Mu and '
              'Mingkui Tan and Xinggang Wang and Wenyu Liu and Bin Xiao},\n  journal={TPAMI},\n  year={2020}\n}\n```\n')


def _write_folder(model: torch.nn.Module, folder: Path, name: str, record: Optional[WeightRecord],
                  repo_id: Optional[str]) -> None:
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf
    weights = folder / WEIGHTS_FILE
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights), metadata={'format': 'pt'})
    extra = {'license': record.license if record else model.pretrained_cfg.get('license', 'mit'),
             'origin_url': OFFICIAL_REPO, 'paper_ids': PAPER_ID, 'paper_name': PAPER}
    save_config_for_hf(model, str(folder / 'config.json'), model_config={'pretrained_cfg': extra})
    config = json.loads((folder / 'config.json').read_text())
    # num_classes stays at the root only, where timm reads it: transformers' TimmWrapper models call
    # timm.create_model(num_classes=<root num_classes, or 0>, **model_args), so a second copy in
    # model_args is a "multiple values for keyword argument 'num_classes'" TypeError.
    config.get('model_args', {}).pop('num_classes', None)
    config['pretrained_cfg'].pop('task', None)  # ours, not a timm PretrainedCfg field: stock timm would refuse it
    (folder / 'config.json').write_text(json.dumps(config, indent=2))
    (folder / 'README.md').write_text(model_card(name, config, record, sha256_file(weights), repo_id), encoding='utf-8')


def convert(checkpoint: os.PathLike, arch: str, out: os.PathLike, tag: Optional[str] = None,
            num_classes: Optional[int] = None, repo_id: Optional[str] = None, force: bool = False) -> Path:
    """Official checkpoint -> ``out/`` with ``model.safetensors``, ``config.json``, ``README.md``.

    The folder is built in a temporary sibling directory and renamed into place, so a failed
    conversion leaves nothing behind. ``num_classes`` defaults to the checkpoint's classifier size.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise WeightsError(f'{out} exists and is not empty; choose another --out or pass --force')
    state_dict = read_checkpoint(checkpoint)
    if num_classes is None:
        num_classes = state_dict['classifier.weight'].shape[0] if 'classifier.weight' in state_dict else 1000
    model = build_classifier(arch, num_classes, tag)
    load_strict(model, state_dict, str(checkpoint))
    name = f'{arch}.{tag}' if tag else arch
    record = load_manifest().get(name) if manifest_path().is_file() else None
    return _replace_folder(out, lambda tmp: _write_folder(model, tmp, name, record, repo_id))


# --------------------------------------------------------------------------------------------
# Verify
# --------------------------------------------------------------------------------------------
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


def _find_record(name: Optional[str], manifest: Mapping[str, WeightRecord]) -> Optional[WeightRecord]:
    return manifest.get(name) if name else None


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
    spec = task_spec(arch) if arch not in HRNET_CONFIGS else None
    manifest = load_manifest() if manifest is None else manifest
    record = _find_record(name, manifest) if name or spec is None else record_for_model(spec.name, manifest)
    _check_hash(weights, record, name or (spec.name if spec else None), report)
    if arch is None:
        report.problems.append(f'{path}: no config.json and no --arch: cannot check the architecture')
        return report
    if spec is not None:
        return _verify_task(spec, weights, header, config, report)
    if arch not in HRNET_CONFIGS:
        report.problems.append(f'unknown architecture {arch!r} (neither a classifier nor a registered task model)')
        return report
    num_classes = (config or {}).get('num_classes') or header.get('classifier.weight', {}).get('shape', [1000])[0]
    expected = _signature(build_classifier(arch, num_classes).state_dict())
    found = {k: (tuple(v['shape']), v['dtype']) for k, v in header.items()}
    report.problems += [f'{weights.name}: {p}' for p in state_dict_problems(expected, found)]
    if report.ok:
        report.notes.append(f'{len(found)} tensors match {arch} (num_classes={num_classes})')
    return report


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


# --------------------------------------------------------------------------------------------
# Publish
# --------------------------------------------------------------------------------------------
def publish_plan(folder: os.PathLike) -> List[Tuple[str, int, str]]:
    """What :func:`publish` would upload: ``(path in repo, bytes, sha256)`` per file."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob('*')
                   if p.is_file() and not any(s.startswith('.') for s in p.relative_to(folder).parts))
    return [(p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p)) for p in files]


def publish(folder: os.PathLike, repo_id: str, endpoint: Optional[str] = None, revision: Optional[str] = None,
            private: bool = False, token: Optional[str] = None, commit_message: Optional[str] = None):
    """Verify ``folder``, then create ``repo_id`` (if needed) and upload the folder with
    huggingface_hub. The token comes from the usual places (``HF_TOKEN``, ``hf auth login``)."""
    from huggingface_hub import HfApi
    report = verify(folder)
    if not report.ok:
        raise WeightsError(f'{folder} failed verification:\n  ' + '\n  '.join(report.problems))
    api = HfApi(endpoint=endpoint, token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(url.repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(repo_id=url.repo_id, folder_path=str(folder), revision=revision,
                             commit_message=commit_message or f'Add {Path(folder).name} (hrnet-zoo convert)')


# --------------------------------------------------------------------------------------------
# Pretrained loading (called from hrnet_zoo._timm)
# --------------------------------------------------------------------------------------------
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
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    import timm
    record = next((r for r in _manifest_or_empty().values() if r.hf_hub_id == repo and r.filename == filename), None)
    try:
        path = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                    library_name='timm', library_version=timm.__version__))
    except EntryNotFoundError as e:
        if record is None and not isinstance(e, LocalEntryNotFoundError) and not pretrained_cfg.get('hf_hub_filename'):
            return None  # not ours, no safetensors: let timm try its other file names
        raise _unavailable(repo, filename, e) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise _unavailable(repo, filename, e) from None
    if record is not None and record.sha256 is not None:
        digest = sha256_file(path)
        if digest != record.sha256:
            raise WeightsError(f'{path} ({repo}/{filename}): sha256 mismatch for {record.name}: expected '
                               f'{record.sha256}, got {digest}. Delete the cached file and download it again.')
    return path


def _unavailable(repo: str, filename: str, err: BaseException) -> PretrainedWeightsUnavailable:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return PretrainedWeightsUnavailable(
        f"pretrained weights unavailable: could not get '{filename}' from the Hugging Face Hub repo '{repo}' "
        f"({type(err).__name__}: {first}). With no network, download it elsewhere and pass "
        f"pretrained_cfg_overlay=dict(file='path/{filename}'), or fill the Hub cache (HF_HOME) / set "
        f"HF_ENDPOINT to a reachable mirror.")


def _manifest_or_empty() -> Dict[str, WeightRecord]:
    try:
        return load_manifest()
    except WeightsError:
        return {}


# --------------------------------------------------------------------------------------------
# Task models: pretrained=True / 'hf-hub:ORG/REPO' / a folder / a .safetensors file
# --------------------------------------------------------------------------------------------
def record_for_model(name: str, manifest: Optional[Mapping[str, WeightRecord]] = None) -> Optional[WeightRecord]:
    """The manifest record of a model name (``name`` itself or ``name.<tag>``), or None."""
    manifest = _manifest_or_empty() if manifest is None else manifest
    return next((r for r in manifest.values() if r.name == name or r.name.split('.', 1)[0] == name), None)


def _no_task_weights(spec, why: str) -> PretrainedWeightsUnavailable:
    if spec.official is not None:
        hint = (f'Download the official checkpoint ({spec.official.filename}, {spec.official.repo}) yourself and '
                f'pass checkpoint_path=<file> (read offline through the documented key map, '
                f'hrnet_zoo.get_model_spec({spec.name!r}).official.key_map, as '
                f'hrnet_zoo.tasks.{spec.task}.load_official_checkpoint does), or use pretrained=False.')
    else:
        hint = ("Train one (python -m hrnet_zoo.tasks.%s train) and pass checkpoint_path=<file>, or use "
                "pretrained=False with weights_backbone='imagenet' (or a path) to start from ImageNet weights." % spec.task)
    return PretrainedWeightsUnavailable(f'no weights for {spec.name!r}: {why}. {hint}')


def resolve_task_weights(spec, pretrained: Any, cache_dir: Optional[os.PathLike] = None) -> Path:
    """The local ``model.safetensors`` for a task model's ``pretrained=`` value: ``True`` (the
    manifest record's Hub repo), ``'hf-hub:ORG/REPO[@REV]'``, a folder holding
    ``model.safetensors``, or a ``.safetensors`` file. Hub files come through huggingface_hub (its
    cache, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``cache_dir``) and are checked against the record's
    sha256."""
    record = None
    if pretrained is True:
        record = record_for_model(spec.name)
        if record is None:
            raise _no_task_weights(spec, f'no {spec.task} weights are published under this name '
                                         f'(no record in {manifest_path()})')
        repo, revision, filename = record.hf_hub_id, None, record.filename
    elif isinstance(pretrained, str) and pretrained.startswith('hf-hub:'):
        repo, _, revision = pretrained[len('hf-hub:'):].partition('@')
        revision, filename = revision or None, WEIGHTS_FILE
        record = next((r for r in _manifest_or_empty().values() if r.hf_hub_id == repo), None)
    else:
        path = Path(pretrained)
        path = path / WEIGHTS_FILE if path.is_dir() else path
        if not path.is_file():
            raise WeightsError(f'pretrained={str(pretrained)!r}: no such file or folder with {WEIGHTS_FILE}; pass '
                               f"True, 'hf-hub:ORG/REPO', a folder written by `hrnet-zoo convert` or a .safetensors file")
        _check_config(path.parent / 'config.json', spec)
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError
    from . import __version__
    try:
        path = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                    library_name='hrnet-zoo', library_version=__version__))
    except (HfHubHTTPError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _no_task_weights(spec, f"could not get '{filename}' from the Hugging Face Hub repo '{repo}' "
                                     f"({type(e).__name__}: {first}); with no network, download it elsewhere and "
                                     f"pass pretrained='path/to/{filename}' (or its folder), fill the Hub cache "
                                     '(HF_HOME or cache_dir=) or set HF_ENDPOINT to a reachable mirror') from None
    if record is not None and record.sha256 is not None:
        digest = sha256_file(path)
        if digest != record.sha256:
            raise WeightsError(f'{path} ({repo}/{filename}): sha256 mismatch for {record.name}: expected '
                               f'{record.sha256}, got {digest}. Delete the cached file and download it again.')
    try:  # the repo's config.json, when it has one, must describe this model
        config = hf_hub_download(repo, 'config.json', revision=revision, cache_dir=cache_dir,
                                 library_name='hrnet-zoo', library_version=__version__)
    except (HfHubHTTPError, OSError, ValueError):
        config = None
    if config is not None:
        _check_config(Path(config), spec, f'{repo}/config.json')
    return path


def _check_config(config_file: Path, spec, where: Optional[str] = None) -> None:
    """A folder's config.json must describe this task model (when there is one)."""
    if not config_file.is_file():
        return
    where = where or str(config_file)
    try:
        arch = json.loads(config_file.read_text()).get('architecture')
    except json.JSONDecodeError as e:
        raise WeightsError(f'{where}: not valid JSON ({e})') from None
    if arch is not None and arch != spec.name:
        hint = (f'build hrnet_zoo.create_model({arch!r}, pretrained=...) instead' if task_spec(arch) is not None
                else 'it is not a task model of this kind (a classifier? load it with timm)')
        raise WeightsError(f'{where} describes {arch!r}, not {spec.name!r}: {hint}')


def load_task_pretrained(model: torch.nn.Module, spec, pretrained: Any,
                         cache_dir: Optional[os.PathLike] = None) -> torch.nn.Module:
    """Load the weights named by ``pretrained`` (see :func:`resolve_task_weights`) strictly."""
    path = resolve_task_weights(spec, pretrained, cache_dir)
    read_safetensors_header(path)
    return load_strict(model, read_state_dict(path), str(path))


# --------------------------------------------------------------------------------------------
# Task models: convert (official or engine checkpoint -> Hub folder), config.json, model card
# --------------------------------------------------------------------------------------------
PIPELINE_TAGS = {'pose': 'keypoint-detection', 'landmarks': 'keypoint-detection',
                 'segmentation': 'image-segmentation', 'detection': 'object-detection'}
# config.json fields that must agree with the model built from it (verify checks them)
TASK_CONFIG_FIELDS = ('num_outputs', 'input_size', 'mean', 'std', 'flip_pairs', 'align_corners', 'codec')


def task_spec(name: Optional[str]):
    """The :class:`~hrnet_zoo.tasks.registry.TaskModelSpec` of a task model name, or None."""
    if not name:
        return None
    import hrnet_zoo  # noqa: F401  (the task packages register their specs on import)
    from .tasks.registry import TASK_SPECS
    return TASK_SPECS.get(name)


def _require_task_spec(name: str):
    spec = task_spec(name)
    if spec is None:
        from .tasks.registry import TASK_SPECS
        raise WeightsError(f'unknown architecture {name!r}: neither a classifier ({", ".join(HRNET_CONFIGS)}) '
                           f'nor a task model ({", ".join(TASK_SPECS)})')
    return spec


def build_task_model(name: str, model_args: Optional[Mapping[str, Any]] = None,
                     device: Optional[str] = None) -> torch.nn.Module:
    """The task model ``name`` (random init, eval mode), built as ``config.json`` says: through
    ``hrnet_zoo.create_model(name, **model_args)``; ``device='meta'`` gives shapes only, fast."""
    import contextlib
    import hrnet_zoo
    with torch.device(device) if device else contextlib.nullcontext():
        return hrnet_zoo.create_model(name, **dict(model_args or {})).eval()


def _output_count_hint(own: Mapping[str, torch.Tensor], found: Mapping[str, Sequence[int]], spec) -> str:
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


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def task_config(model: torch.nn.Module, spec, repo_id: Optional[str] = None, tag: Optional[str] = None,
                model_args: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``config.json`` of a task folder: everything needed to rebuild the model exactly
    (``hrnet_zoo.create_model(architecture, **model_args)``) and to feed it (input size,
    normalisation, flip pairs, align_corners), plus its ``pretrained_cfg``."""
    from . import __version__
    pcfg = dict(getattr(model, 'pretrained_cfg', None) or spec.pretrained_cfg())
    if repo_id:
        pcfg.update(hf_hub_id=repo_id, hf_hub_filename=WEIGHTS_FILE)
    if tag:
        pcfg['tag'] = tag
    n = pcfg.get('num_outputs', spec.num_outputs)
    return _json_safe({
        'architecture': spec.name, 'task': spec.task, 'library': 'hrnet-zoo', 'hrnet_zoo_version': __version__,
        'trunk': spec.trunk, 'head': spec.head, 'num_outputs': n, spec.output_arg: n,
        'input_size': pcfg.get('input_size', (3, *spec.input_size)), 'mean': pcfg.get('mean', spec.mean),
        'std': pcfg.get('std', spec.std), 'flip_pairs': pcfg.get('flip_pairs', spec.flip_pairs),
        'align_corners': pcfg.get('align_corners', spec.options.get('align_corners')),
        'codec': pcfg.get('codec', spec.codec), 'dataset': spec.dataset, 'license': spec.license, 'model_args': dict(model_args or {}),
        'pretrained_cfg': pcfg})


def _metric_values(metrics: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    return [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def task_model_card(config: Mapping[str, Any], spec, record: Optional[WeightRecord], sha256: str,
                    repo_id: Optional[str] = None) -> str:
    """README.md of a task repo: YAML front matter (pipeline_tag of the task, license, datasets,
    the official metrics as model-index) and a body with details and hrnet_zoo / torch.hub usage."""
    import yaml
    name, task = spec.name, spec.task
    repo = repo_id or (record.hf_hub_id if record else f'<org>/{name}')
    metrics = dict(record.metrics) if record else dict(spec.metrics)
    dataset = metrics.get('dataset', spec.dataset)
    source = (record.source if record else {}) or {}
    meta: Dict[str, Any] = {
        'library_name': 'pytorch', 'license': config.get('license', spec.license), 'pipeline_tag': PIPELINE_TAGS[task],
        'tags': ['hrnet', 'hrnet-zoo', task, PIPELINE_TAGS[task]], 'datasets': [dataset]}
    values = _metric_values(metrics)
    if values:
        meta['model-index'] = [{'name': name, 'results': [{
            'task': {'type': PIPELINE_TAGS[task]},
            'dataset': {'name': dataset, 'type': dataset, 'split': metrics.get('split', 'validation')},
            'metrics': [{'type': k, 'name': k, 'value': v} for k, v in values],
            'source': {'name': metrics.get('source', ''),
                       'url': source.get('repo', spec.official.repo if spec.official else '')}}]}]
    h, w = config['input_size'][1:]
    details = [f'- **Model:** `{name}` ({task}; HRNet trunk `{spec.trunk}`, head `{spec.head}`; {PAPER}, {PAPER_ID})',
               f'- **Outputs:** {config["num_outputs"]} {spec.output_arg[4:]}; **input:** {h}x{w}, RGB in [0, 1] '
               f'normalised with mean {config["mean"]}, std {config["std"]}'
               + (f'; align_corners {config["align_corners"]}' if config.get('align_corners') is not None else ''),
               f'- **Trained on:** {spec.dataset}',
               f'- **model.safetensors sha256:** `{sha256}`']
    if record:
        details.append(f'- **Params (M):** {record.num_params / 1e6:.2f}; **GMACs:** {record.gmacs:.2f} at {h}x{w}'
                       + (f' (official GFLOPs {record.official_gflops})' if record.official_gflops else ''))
    if source or spec.official:
        ckpt = source.get('checkpoint') or (spec.official.filename if spec.official else '')
        where = source.get('published_at') or (spec.official.published_at if spec.official else '')
        details.append(f'- **Source:** {source.get("repo") or spec.official.repo}, checkpoint `{ckpt}`'
                       + (f' (published at {where})' if where else ''))
    if values:
        details.append('- **Official metrics:** ' + ', '.join(f'{k} {v}' for k, v in values) + f' on {dataset} '
                       f'({metrics.get("source", "source")}; as reported there, not re-measured here)')
    usage = (f"```python\nimport hrnet_zoo\n"
             f"model = hrnet_zoo.create_model('{name}', pretrained='hf-hub:{repo}').eval()\n```\n\n"
             f"`pretrained=True` loads the weight of hrnet-zoo's manifest record for `{name}` (sha256-checked); "
             f"torch.hub needs only the hrnet-zoo repository:\n\n"
             f"```python\nimport torch\nmodel = torch.hub.load('<owner>/hrnet-zoo', '{name}', pretrained=True)\n"
             f"model = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', 'hf-hub:{repo}', pretrained=True)\n```\n")
    return ('---\n' + yaml.safe_dump(meta, sort_keys=False) + '---\n\n'
            + f'# {name}\n\n{spec.description or name}: HRNet {task} weights in safetensors, converted by '
              '`hrnet-zoo convert`.\n\n## Details\n\n' + '\n'.join(details) + '\n\n## Usage\n\n' + usage)


def _write_task_folder(model: torch.nn.Module, spec, folder: Path, record: Optional[WeightRecord],
                       repo_id: Optional[str], tag: Optional[str], model_args: Optional[Mapping[str, Any]]) -> None:
    from safetensors.torch import save_file
    weights = folder / WEIGHTS_FILE
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights), metadata={'format': 'pt'})
    config = task_config(model, spec, repo_id or (record.hf_hub_id if record else None), tag, model_args)
    (folder / 'config.json').write_text(json.dumps(config, indent=2))
    (folder / 'README.md').write_text(task_model_card(config, spec, record, sha256_file(weights), repo_id),
                                      encoding='utf-8')


def _replace_folder(out: Path, write) -> Path:
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


def convert_task(checkpoint: os.PathLike, name: str, out: os.PathLike, tag: Optional[str] = None,
                 repo_id: Optional[str] = None, force: bool = False,
                 model_args: Optional[Mapping[str, Any]] = None) -> Path:
    """A task model's checkpoint -> ``out/`` with ``model.safetensors``, ``config.json`` and a
    model card. The checkpoint is an official file (read with ``weights_only=True`` and mapped by
    the spec's key map: pose's plain state_dict, landmarks' ``{'state_dict': {'module.'...}}``,
    segmentation's trainer ``model.`` prefix and loss buffers) or our engine's ``last.pth`` /
    ``best.pth``; it must load strictly into ``name`` as registered (same task, variant and output
    count) or as ``model_args`` change it (``arch='hrnet_w18_small'``, ``num_keypoints=...``, as
    the builder takes them; ``config.json`` records them), else nothing is written."""
    spec = _require_task_spec(name)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise WeightsError(f'{out} exists and is not empty; choose another --out or pass --force')
    try:
        model = build_task_model(name, model_args)
    except TypeError as e:
        raise WeightsError(f'{name} does not take the model arguments {dict(model_args or {})}: {e}') from None
    from .tasks.registry import load_checkpoint
    load_checkpoint(model, checkpoint)  # the spec's key map, output count checked, strict
    manifest = _manifest_or_empty()
    record = manifest.get(f'{name}.{tag}') if tag else record_for_model(name, manifest)
    return _replace_folder(out, lambda tmp: _write_task_folder(model, spec, tmp, record, repo_id, tag, model_args))


def _verify_task(spec, weights: Path, header: Mapping[str, Mapping[str, Any]], config: Optional[Mapping[str, Any]],
                 report: 'Report') -> 'Report':
    """The task half of :func:`verify`: keys / shapes / dtypes against the model that
    ``config.json`` describes, and config fields against that model's own configuration."""
    model_args = (config or {}).get('model_args') or {}
    try:
        model = build_task_model(spec.name, model_args, device='meta')
    except Exception as e:  # a model_args the builder rejects
        report.problems.append(f'config.json: cannot build {spec.name}(**{model_args}): {type(e).__name__}: {e}')
        return report
    found = {k: (tuple(v['shape']), v['dtype']) for k, v in header.items()}
    problems = state_dict_problems(_signature(model.state_dict()), found)
    if problems:
        hint = _output_count_hint(model.state_dict(), {k: v[0] for k, v in found.items()}, spec)
        report.problems += [f'{weights.name}: {hint}{p}' if i == 0 else f'{weights.name}: {p}'
                            for i, p in enumerate(problems)]
    if config is not None and config.get('architecture') not in (None, spec.name):
        report.problems.append(f'config.json describes {config["architecture"]!r}, not {spec.name!r}')
    elif config is not None:
        if config.get('task') != spec.task:
            report.problems.append(f'config.json: task is {config.get("task")!r} but {spec.name} is a '
                                   f'{spec.task} model')
        expected = task_config(model, spec, model_args=model_args)
        for key in TASK_CONFIG_FIELDS:
            if config.get(key) != expected[key]:
                report.problems.append(f'config.json: {key} is {_short(config.get(key))} but {spec.name} '
                                       f'(model_args {model_args}) has {_short(expected[key])}')
    if report.ok:
        report.notes.append(f'{len(found)} tensors match {spec.name} ({spec.task}, '
                            f'{spec.num_outputs} {spec.output_arg[4:]})')
    return report


def task_model_of(location: str, cache_dir: Optional[os.PathLike] = None) -> Optional[str]:
    """The task model a published repo holds (``'hf-hub:ORG/REPO'``, ``'local-dir:PATH'``): from
    the manifest record of that repo, else from its ``config.json``; None for a classifier repo
    (or when the config cannot be read: timm's own loading then reports it)."""
    kind, _, where = location.partition(':')
    if kind == 'hf-hub':
        repo, _, revision = where.partition('@')
        record = next((r for r in _manifest_or_empty().values() if r.hf_hub_id == repo), None)
        if record is not None:
            return record.arch if record.task != 'classification' else None
        from huggingface_hub import hf_hub_download
        try:
            config_file = Path(hf_hub_download(repo, 'config.json', revision=revision or None, cache_dir=cache_dir))
        except Exception:  # no config / offline: not for us to decide
            return None
    else:
        config_file = Path(where) / 'config.json'
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config.get('architecture') if config.get('task', 'classification') != 'classification' else None


def task_records(task: Optional[str] = None,
                 manifest: Optional[Mapping[str, WeightRecord]] = None) -> List[WeightRecord]:
    """The manifest's records, in file order, optionally of one task (``'classification'`` too)."""
    manifest = load_manifest() if manifest is None else manifest
    return [r for r in manifest.values() if task is None or r.task == task]


def record_as_json(record: WeightRecord) -> Dict[str, Any]:
    """A record as plain JSON (what ``hrnet-zoo list --json`` prints)."""
    return _json_safe(dataclasses.asdict(record))


# --------------------------------------------------------------------------------------------
# Measurements recorded in the manifest
# --------------------------------------------------------------------------------------------
def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: torch.nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> float:
    """GMACs of one forward pass (torch FlopCounterMode FLOPs / 2); a model on the meta device
    is counted without computing anything (same count, any input size in no time)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    device = next(model.parameters()).device
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *input_size, device=device))
    return counter.get_total_flops() / 2e9


def measure_task_model(name: str, model_args: Optional[Mapping[str, Any]] = None,
                       input_size: Optional[Sequence[int]] = None) -> Tuple[int, float]:
    """(params, GMACs at ``input_size``, default the spec's) of a task model, counted on the meta
    device (no weights, no compute: W48 segmentation at 1024x2048 takes seconds)."""
    spec = _require_task_spec(name)
    model = build_task_model(name, model_args, device='meta')
    params = count_params(model)
    if spec.task == 'detection':  # torchvision detectors resize and post-process: count the trunk + neck
        model = model.backbone
    return params, round(count_gmacs(model, tuple(input_size or (3, *spec.input_size))), 3)


def task_record(name: str, official_gflops: Optional[float] = None, recipe: str = '',
                org: str = 'hrnet-zoo') -> Dict[str, Any]:
    """The manifest record of a task model with an official checkpoint, from its spec (official
    file, where it is published, metrics and their source, normalisation, output count) and
    measured here (params, GMACs at the spec's input size); sha256 / size stay null until the
    converted file exists."""
    spec = _require_task_spec(name)
    if spec.official is None:
        raise WeightsError(f'{name} has no official checkpoint in its spec: nothing to record')
    params, gmacs = measure_task_model(name)
    return {
        'name': name, 'task': spec.task, 'hf_hub_id': f'{org}/{name}', 'filename': WEIGHTS_FILE,
        'sha256': None, 'size': None, 'num_params': params, 'gmacs': gmacs, 'official_gflops': official_gflops,
        'input_size': [3, *spec.input_size], 'mean': list(spec.mean), 'std': list(spec.std),
        'interpolation': 'bilinear', 'crop_pct': 1.0, 'metrics': _json_safe(dict(spec.metrics)),
        'license': spec.license, 'source': {'repo': spec.official.repo, 'checkpoint': spec.official.filename,
                                            'published_at': spec.official.published_at},
        'recipe': recipe, 'num_classes': spec.num_outputs,
        'num_outputs': spec.num_outputs}
