"""Published weights as data: :class:`WeightRecord` and the manifest (``weights/manifest.json``,
one source of truth), validated when loaded; sha256 of files.

A record names a weight (``arch.tag`` for a classifier, the model name for a task model), where it
is published (Hub repo and file, sha256, size), what it costs (params, GMACs), how to feed it
(input size, normalisation, the heatmap codec of pose / landmark models), what it scored
(metrics with their dataset and source), its license, and where it came from (``source``: the
repository, the checkpoint file and its key layout, one of :data:`~.layouts.LAYOUT_NAMES`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..checkpoint import WeightsError
from ..configs import HRNET_CONFIGS
from ..tasks.registry import CODEC_TASKS, TASKS  # pose / landmark records must name their codec
from .layouts import LAYOUT_NAMES

__all__ = ['WeightRecord', 'MANIFEST_ENV', 'DEFAULT_MANIFEST', 'WEIGHTS_FILE', 'TASK_METRICS', 'CODEC_TASKS',
           'manifest_path',
           'load_manifest', 'manifest_or_empty', 'get_weight', 'list_records', 'record_for_model', 'record_for_repo',
           'record_for_file', 'record_as_json', 'sha256_file', 'json_safe', 'metric_values']

MANIFEST_ENV = 'HRNET_ZOO_MANIFEST'
# ``hrnet_zoo/manifest.json`` is a link to the repo's ``weights/manifest.json`` (the one source of
# truth, edited there); building a wheel copies the file behind it into the package, so installs carry it.
DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / 'manifest.json'
WEIGHTS_FILE = 'model.safetensors'
# the metrics a task record reports, one of them at least (the field's headline numbers, under the names
# its source gives them: the zoo's first, then mmpose's metafile names: 'Whole AP' COCO-WholeBody / Halpe,
# 'Mean' MPII PCKh, 'Total' PoseTrack18 mAP, 'PCK' / 'PCK@0.2' / 'PCKh@0.7' / 'AUC' hands, fashion,
# Human3.6M, AnimalKingdom, 'NME' faces and Horse-10); a record whose checkpoint has no published
# figure says so with "published": false
TASK_METRICS = {'pose': ('AP', 'Whole AP', 'Mean', 'Total', 'PCK', 'PCK@0.2', 'PCKh@0.7', 'AUC', 'NME'),
                'landmarks': ('nme', 'NME', 'NME test', 'NME full'), 'segmentation': ('miou',),
                'detection': ('bbox_AP',)}


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
    metrics: Mapping[str, Any]     # {'dataset': ..., 'top1': ... / 'AP': ... / 'miou': ..., 'source': ...}
    license: str                   # Hub license id: 'mit' (official HRNet repos), 'apache-2.0' (OpenMMLab)
    source: Mapping[str, str]      # {'repo': url, 'checkpoint': file name, 'layout': 'official' | 'mmpose' | ...}
    recipe: str
    num_classes: int = 1000
    task: str = 'classification'   # or pose / landmarks / segmentation / detection
    num_outputs: Optional[int] = None  # keypoints / landmarks / classes of a task model
    codec: Optional[str] = None    # pose / landmarks: the heatmap codec the weight was trained with

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

    @property
    def layout(self) -> str:
        """The key layout of the source checkpoint (``source.layout``; ``'official'`` if not given)."""
        return self.source.get('layout', 'official')


_REQUIRED = {f.name for f in dataclasses.fields(WeightRecord) if f.default is dataclasses.MISSING}
_ALLOWED = {f.name for f in dataclasses.fields(WeightRecord)}


def _check_record(raw: Mapping[str, Any], where: str) -> WeightRecord:
    """Validate one raw manifest entry and build its record; errors name the entry and field."""
    if not isinstance(raw, Mapping):
        raise WeightsError(f'{where}: each weight must be a JSON object, got {type(raw).__name__}')
    missing, unknown = _REQUIRED - set(raw), set(raw) - _ALLOWED
    if missing or unknown:
        raise WeightsError(f'{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}')
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
    if not isinstance(raw['license'], str) or not raw['license']:
        raise WeightsError(f'{where}: license must be a license id ("mit", "apache-2.0", ...)')
    _check_source(raw['source'], where)
    if raw.get('codec') is not None and not isinstance(raw['codec'], str):
        raise WeightsError(f'{where}: codec must be a codec name or null, got {raw["codec"]!r}')
    values = dict(raw)
    for key in ('input_size', 'mean', 'std'):
        values[key] = tuple(values[key])
    return WeightRecord(**values)


def _check_source(source: Any, where: str) -> None:
    if not isinstance(source, Mapping) or not source.get('repo') or not source.get('checkpoint'):
        raise WeightsError(f'{where}: source must give the repo and the checkpoint file name')
    if source.get('layout', 'official') not in LAYOUT_NAMES:
        raise WeightsError(f'{where}: source.layout must be one of {list(LAYOUT_NAMES)}, got {source["layout"]!r}')


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
    metrics, headline = raw['metrics'], TASK_METRICS[task]
    wanted, others = ([] if 'source' in metrics else ['source']), ''
    if metrics.get('published', True) and not any(k in metrics for k in headline):
        wanted.insert(0, headline[0])
        others = f' (or another headline: {", ".join(headline[1:])}; or "published": false)' if len(headline) > 1 else ''
    if wanted:
        raise WeightsError(f'{where}: {task} metrics must include {wanted}{others}')
    if task in CODEC_TASKS and not isinstance(raw.get('codec'), str):
        raise WeightsError(f'{where}: a {task} record needs codec, the name of the heatmap codec the weight was '
                           f'trained with (hrnet_zoo.tasks.codecs); got {raw.get("codec")!r}')


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
    found: Dict[str, WeightRecord] = {}
    for i, raw in enumerate(data.get('weights', [])):
        record = _check_record(raw, f'{path} weights[{i}]')
        if record.name in found:
            raise WeightsError(f'{path}: {record.name} is listed twice')
        found[record.name] = record
    return found


def manifest_or_empty() -> Dict[str, WeightRecord]:
    """The manifest in use, or ``{}`` when there is none (a wheel without ``weights/``)."""
    try:
        return load_manifest()
    except WeightsError:
        return {}


def get_weight(name: str, manifest: Optional[Mapping[str, WeightRecord]] = None) -> WeightRecord:
    """The record for ``arch.tag``; a clear error lists the known names otherwise."""
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        raise WeightsError(f'no weight {name!r} in the manifest; known: {", ".join(manifest)}')
    return manifest[name]


def list_records(task: Optional[str] = None, layout: Optional[str] = None,
            manifest: Optional[Mapping[str, WeightRecord]] = None) -> List[WeightRecord]:
    """The manifest's records in file order, optionally of one task (``'classification'`` too)
    and / or one source layout (``'mmpose'``, ``'official'``, ...)."""
    manifest = load_manifest() if manifest is None else manifest
    return [r for r in manifest.values() if task in (None, r.task) and layout in (None, r.layout)]


def record_for_model(name: str, manifest: Optional[Mapping[str, WeightRecord]] = None,
                     tag: Optional[str] = None) -> Optional[WeightRecord]:
    """The manifest record of a model name (``name.tag`` when ``tag`` is given, else ``name``
    itself or the first ``name.<tag>``), or None."""
    manifest = manifest_or_empty() if manifest is None else manifest
    if tag:
        return manifest.get(f'{name}.{tag}')
    return next((r for r in manifest.values() if r.name == name or r.arch == name), None)


def record_for_repo(repo: str, filename: Optional[str] = None,
                    manifest: Optional[Mapping[str, WeightRecord]] = None) -> Optional[WeightRecord]:
    """The record published at Hub repo ``repo`` (and ``filename``, when given), or None."""
    manifest = manifest_or_empty() if manifest is None else manifest
    return next((r for r in manifest.values() if r.hf_hub_id == repo and filename in (None, r.filename)), None)


def record_for_file(path: os.PathLike, manifest: Optional[Mapping[str, WeightRecord]] = None
                    ) -> Optional[WeightRecord]:
    """The record whose source checkpoint has the file name of ``path`` (``source.checkpoint``):
    how ``hrnet-zoo convert FILE`` finds the model when ``--arch`` is not given."""
    manifest = manifest_or_empty() if manifest is None else manifest
    return next((r for r in manifest.values() if r.source.get('checkpoint') == Path(path).name), None)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (tuples to lists, anything else to its string)."""
    return json.loads(json.dumps(value, default=str))


def record_as_json(record: WeightRecord) -> Dict[str, Any]:
    """A record as plain JSON (what ``hrnet-zoo list --json`` prints)."""
    return json_safe(dataclasses.asdict(record))


def metric_values(metrics: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The numeric entries of a metrics mapping, in order (the figures, without dataset / source)."""
    return [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def sha256_file(path: os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
