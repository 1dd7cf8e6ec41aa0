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
    name: str                      # timm's arch.tag, e.g. 'hrnet_w32.ms_in1k'
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
    metrics: Mapping[str, Any]     # {'dataset': ..., 'top1': ..., 'top5': ..., 'source': ...}
    license: str
    source: Mapping[str, str]      # {'repo': url, 'checkpoint': file name}
    recipe: str
    num_classes: int = 1000

    @property
    def arch(self) -> str:
        return self.name.split('.', 1)[0]

    @property
    def tag(self) -> str:
        return self.name.split('.', 1)[1]

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
    name = raw['name']
    arch, _, tag = str(name).partition('.')
    if arch not in HRNET_CONFIGS or not tag:
        raise WeightsError(f'{where}: name {name!r} must be "<arch>.<tag>" with arch one of {sorted(HRNET_CONFIGS)}')
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        _write_folder(model, tmp, name, record, repo_id)
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
    manifest = load_manifest() if manifest is None else manifest
    record = _find_record(name, manifest)
    _check_hash(weights, record, name, report)
    if arch is None:
        report.problems.append(f'{path}: no config.json and no --arch: cannot check the architecture')
        return report
    if arch not in HRNET_CONFIGS:
        report.problems.append(f'unknown architecture {arch!r}')
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
                f'pass checkpoint_path=<file> (read offline through the documented key map, see '
                f'hrnet_zoo.tasks.{spec.task}.load_official_checkpoint), or use pretrained=False.')
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
    return path


def _check_config(config_file: Path, spec) -> None:
    """A folder's config.json must describe this task model (when there is one)."""
    if not config_file.is_file():
        return
    try:
        arch = json.loads(config_file.read_text()).get('architecture')
    except json.JSONDecodeError as e:
        raise WeightsError(f'{config_file}: not valid JSON ({e})') from None
    if arch is not None and arch != spec.name:
        raise WeightsError(f'{config_file} describes {arch!r}, not {spec.name!r}: build '
                           f'hrnet_zoo.create_model({arch!r}, pretrained=...) instead')


def load_task_pretrained(model: torch.nn.Module, spec, pretrained: Any,
                         cache_dir: Optional[os.PathLike] = None) -> torch.nn.Module:
    """Load the weights named by ``pretrained`` (see :func:`resolve_task_weights`) strictly."""
    path = resolve_task_weights(spec, pretrained, cache_dir)
    read_safetensors_header(path)
    return load_strict(model, read_state_dict(path), str(path))


# --------------------------------------------------------------------------------------------
# Measurements recorded in the manifest
# --------------------------------------------------------------------------------------------
def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: torch.nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> float:
    """GMACs of one forward pass (torch FlopCounterMode FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *input_size))
    return counter.get_total_flops() / 2e9
