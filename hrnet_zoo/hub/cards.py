"""The model card (``README.md``) of a weights folder, for every model: :func:`model_card`.

YAML front matter (library, license, pipeline tag, tags, datasets, the metrics as
``model-index``), then details (model, inputs and outputs, sha256, params / GMACs, source
checkpoint and its layout, metrics as the source reports them), usage and citation. What differs
between classifiers (stock timm loads them) and task models (hrnet_zoo builds them) is data:
:data:`CARD_KINDS`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..tasks.registry import ModelSpec
from .config import PAPER, PAPER_ID
from .layouts import Layout
from .records import WeightRecord, metric_values

__all__ = ['PIPELINE_TAGS', 'CARD_KINDS', 'model_card']

PIPELINE_TAGS = {'classification': 'image-classification', 'pose': 'keypoint-detection',
                 'landmarks': 'keypoint-detection', 'segmentation': 'image-segmentation',
                 'detection': 'object-detection'}
# metric key -> (model-index type, display name); others are their own type and name
METRIC_NAMES = {'top1': ('accuracy', 'top-1 accuracy'), 'top5': ('accuracy', 'top-5 accuracy')}

_TIMM_USAGE = """```python
import timm
model = timm.create_model('hf-hub:{repo}', pretrained=True).eval()
cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**cfg)
```

Stock timm is enough. torch.hub works too, through hrnet-zoo's `hubconf.py`:

```python
import torch
model = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', name='hf-hub:{repo}', pretrained=True)
```
"""
_ZOO_USAGE = """```python
import hrnet_zoo
model = hrnet_zoo.create_model('{name}', pretrained='hf-hub:{repo}').eval()
```

`pretrained=True` loads the weight of hrnet-zoo's manifest record for `{name}` (sha256-checked); torch.hub needs only the hrnet-zoo repository:

```python
import torch
model = torch.hub.load('<owner>/hrnet-zoo', '{name}', pretrained=True)
model = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', 'hf-hub:{repo}', pretrained=True)
```
"""
_CITATION = """## Citation

```bibtex
@article{WangSCJDZLMTWLX19,
  title={Deep High-Resolution Representation Learning for Visual Recognition},
  author={Jingdong Wang and Ke Sun and Tianheng Cheng and Borui Jiang and Chaorui Deng and Yang Zhao and Dong Liu and Yadong Mu and Mingkui Tan and Xinggang Wang and Wenyu Liu and Bin Xiao},
  journal={TPAMI},
  year={2020}
}
```
"""
# per kind of model: the library that loads the folder, extra tags, the front matter's metric ids
# (when a record gives figures) and the usage snippet
CARD_KINDS: Dict[str, Dict[str, Any]] = {
    'classification': {'library_name': 'timm', 'tags': ('timm',), 'metrics': ['accuracy'], 'usage': _TIMM_USAGE},
    'task': {'library_name': 'pytorch', 'tags': (), 'metrics': None, 'usage': _ZOO_USAGE},
}


def _facts(config: Mapping[str, Any]) -> Tuple[int, int, int, Any, Any]:
    """(H, W, outputs, mean, std) from a config.json of either format."""
    pcfg = config.get('pretrained_cfg', {})
    _, h, w = config.get('input_size') or pcfg['input_size']
    n = config.get('num_outputs', config.get('num_classes'))
    return h, w, n, config.get('mean', pcfg.get('mean')), config.get('std', pcfg.get('std'))


def _metric_entries(metrics: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [{'type': METRIC_NAMES.get(k, (k, k))[0], 'name': METRIC_NAMES.get(k, (k, k))[1], 'value': v}
            for k, v in metric_values(metrics)]


def model_card(config: Mapping[str, Any], spec: ModelSpec, record: Optional[WeightRecord], sha256: str,
               repo_id: Optional[str] = None, layout: Optional[Layout] = None, checkpoint: str = '') -> str:
    """README.md of a weights folder of ``spec``'s model described by ``config`` (config.json),
    with ``record``'s figures when the manifest has one; ``layout`` / ``checkpoint``: the source
    file it was converted from."""
    import yaml
    kind = CARD_KINDS['classification' if spec.task == 'classification' else 'task']
    pcfg = config.get('pretrained_cfg', {})
    title = f'{spec.name}.{pcfg["tag"]}' if pcfg.get('tag') else spec.name
    repo = repo_id or (record.hf_hub_id if record else f'<org>/{title}')
    metrics = dict(record.metrics) if record else dict(spec.metrics)
    dataset = metrics.get('dataset', spec.dataset)
    source = dict(record.source) if record else {}
    source_repo = source.get('repo') or (spec.official.repo if spec.official else '')
    pipeline = PIPELINE_TAGS[spec.task]
    meta: Dict[str, Any] = {
        'library_name': kind['library_name'],
        'license': config.get('license') or pcfg.get('license') or (record.license if record else spec.license),
        'pipeline_tag': pipeline, 'tags': list(dict.fromkeys([pipeline, *kind['tags'], 'hrnet', 'hrnet-zoo', spec.task])),
        'datasets': [dataset]}
    entries = _metric_entries(metrics)
    if entries:
        if kind['metrics'] and record:
            meta['metrics'] = kind['metrics']
        meta['model-index'] = [{'name': title, 'results': [{
            'task': {'type': pipeline},
            'dataset': {'name': dataset, 'type': dataset, 'split': metrics.get('split', 'validation')},
            'metrics': entries, 'source': {'name': metrics.get('source', ''), 'url': source_repo}}]}]
    h, w, n, mean, std = _facts(config)
    extras = [f'{k} {pcfg[k]}' for k in ('crop_pct', 'interpolation') if pcfg.get(k) is not None]
    if config.get('align_corners') is not None:
        extras.append(f'align_corners {config["align_corners"]}')
    details = [f'- **Model:** `{spec.name}` ({spec.task}; HRNet trunk `{spec.trunk}`, head `{spec.head}`; '
               f'{PAPER}, {PAPER_ID})',
               f'- **Outputs:** {n} {spec.output_arg[4:]}; **input:** {h}x{w}, RGB in [0, 1] normalised with mean '
               f'{list(mean)}, std {list(std)}' + ''.join(f'; {e}' for e in extras),
               f'- **Trained on:** {dataset}',
               f'- **model.safetensors sha256:** `{sha256}`']
    if config.get('part'):
        details.append(f'- **Weights:** `{config["part"]}*` only (the part of the model the source checkpoint has); '
                       'the rest is not included: fine-tune it')
    if record:
        details.append(f'- **Params (M):** {record.num_params / 1e6:.2f}; **GMACs:** {record.gmacs:.2f} at {h}x{w}'
                       + (f' (official GFLOPs {record.official_gflops})' if record.official_gflops else ''))
    if source or spec.official:
        ckpt = source.get('checkpoint') or spec.official.filename
        where = source.get('published_at') or (spec.official.published_at if spec.official else '')
        details.append(f'- **Source:** {source_repo}, checkpoint `{ckpt}` ({source.get("layout", "official")} layout)'
                       + (f' (published at {where})' if where else ''))
    if checkpoint:
        details.append(f'- **Converted from:** `{checkpoint}`' + (f' ({layout.label} layout)' if layout else ''))
    if record and record.recipe:
        details.append(f'- **Recipe:** {record.recipe}')
    if entries:
        details.append('- **Metrics:** ' + ', '.join(f'{e["name"]} {e["value"]}' for e in entries) + f' on {dataset} '
                       f'({metrics.get("source") or "source"}; as reported there, not re-measured here)')
    return ('---\n' + yaml.safe_dump(meta, sort_keys=False) + '---\n\n'
            + f'# {title}\n\n{spec.description or spec.name}: HRNet {spec.task} weights in safetensors, converted by '
              '`hrnet-zoo convert`.\n\n## Details\n\n' + '\n'.join(details) + '\n\n## Usage\n\n'
            + kind['usage'].format(repo=repo, name=spec.name) + '\n' + _CITATION)
