"""Contract tests over the whole model table: every name of ``hrnet_zoo.list_models()`` (classifiers
and task models) has a spec, builds, gives outputs of the shape its spec promises, round-trips its
weights strictly through a safetensors file, carries a complete ``pretrained_cfg``, has a hubconf
entry, and keeps its outputs through ``hrnet_zoo.deploy``."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import hrnet_zoo
from hrnet_zoo import _timm
from hrnet_zoo.tasks import TASK_SPECS, get_model_spec
from hrnet_zoo.tasks.registry import MODEL_BUILDERS, MODEL_SPECS, ModelSpec, TaskModelSpec

ROOT = Path(__file__).resolve().parent.parent
NAMES = hrnet_zoo.list_models()
TASK_INPUT = {'classification': (64, 64), 'pose': (64, 48), 'landmarks': (64, 64), 'segmentation': (64, 96),
              'detection': (96, 128)}
REQUIRED_CFG = ('architecture', 'task', 'input_size', 'mean', 'std', 'license', 'hf_hub_id')


def _task(name: str) -> str:
    return get_model_spec(name).task


def _kwargs(name: str) -> dict:
    # detection: torchvision resizes every image to min_size; keep it small here
    return dict(min_size=96, max_size=128) if _task(name) == 'detection' else {}


def _build(name: str, **kwargs):
    torch.manual_seed(0)
    return hrnet_zoo.create_model(name, **_kwargs(name), **kwargs).eval()


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def _flat(out):
    """Tensors of a model output (a tensor, a list of dicts of tensors, ...), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flat(out[k])]
    return [t for o in out for t in _flat(o)]


@pytest.fixture(scope='module')
def hubconf():
    return torch.hub._import_module('hubconf', str(ROOT / 'hubconf.py'))


def test_registry_lists_every_task_and_filters():
    by_task = {t: hrnet_zoo.list_models(task=t) for t in hrnet_zoo.TASKS}
    assert sorted(n for names in by_task.values() for n in names) == sorted(NAMES)
    assert all(by_task.values()), {t: len(v) for t, v in by_task.items()}
    assert set(by_task['classification']) == set(_timm.MODEL_NAMES)
    for name in NAMES:  # one table: a spec and a builder for every name, classifiers too
        spec = get_model_spec(name)
        assert spec.name == name and isinstance(spec, ModelSpec) and name in MODEL_BUILDERS, name
    for name in hrnet_zoo.list_models(pretrained=True):  # weight names too: hrnet_w32.ms_in1k -> hrnet_w32
        assert get_model_spec(name).name == name.split('.')[0], name
    assert get_model_spec('hrnet_w32').task == 'classification' and get_model_spec('hrnet_w32').trunk == 'hrnet_w32'
    assert TaskModelSpec is ModelSpec and TASK_SPECS is MODEL_SPECS  # the old names: the same table
    with pytest.raises(ValueError, match='unknown task'):
        hrnet_zoo.list_models(task='depth')
    with pytest.raises(KeyError, match='list_models'):
        get_model_spec('resnet50')


def _architecture(name: str) -> tuple:
    """What decides how a model builds and runs: names that differ only in their weights' dataset,
    output count or codec (e.g. mmpose's COCO / MPII / animal checkpoints of one trunk and head)
    share it, and one of them stands for all in the full contract test."""
    spec = get_model_spec(name)
    # a segmentation network is fully convolutional: its training crop (input_size) builds nothing
    size = None if spec.task == 'segmentation' else tuple(spec.input_size)
    # keypoint_set only describes the outputs (names, flip pairs): it builds nothing
    return spec.task, spec.trunk, spec.head, size, tuple(sorted((k, v) for k, v in spec.options.items()
                                                               if k != 'keypoint_set'))


# every name gets the cheap contract; one name per architecture (the first registered) the full one
FULL = list({_architecture(n): n for n in reversed(NAMES)}.values())[::-1]


@pytest.mark.parametrize('name', NAMES)
def test_every_name_has_a_complete_spec_config_and_entry(name, hubconf):
    spec, task = get_model_spec(name), _task(name)
    cfg = spec.pretrained_cfg()
    missing = [k for k in REQUIRED_CFG if k not in cfg]
    assert not missing, f'{name}: pretrained_cfg lacks {missing}'
    assert cfg['architecture'] == name and cfg['task'] == task and cfg[spec.output_arg] == spec.num_outputs
    assert len(cfg['input_size']) == 3 and len(cfg['mean']) == 3 and len(cfg['std']) == 3
    assert (spec.codec is not None) == (task in ('pose', 'landmarks')), f'{name}: codec {spec.codec!r}'
    assert callable(getattr(hubconf, name, None)) or task == 'classification' and callable(hubconf.hrnet)


@pytest.mark.parametrize('name', FULL)
def test_model_contract(name, tmp_path, hubconf):
    task = _task(name)
    model = _build(name)
    cfg = model.pretrained_cfg
    missing = [k for k in REQUIRED_CFG if k not in cfg]
    assert not missing, f'{name}: pretrained_cfg lacks {missing}'
    assert cfg['architecture'] == name.split('.')[0] and cfg['task'] == task
    assert len(cfg['input_size']) == 3 and len(cfg['mean']) == 3 and len(cfg['std']) == 3

    h, w = TASK_INPUT[task]
    x = torch.rand(1, 3, h, w) if task == 'detection' else torch.randn(1, 3, h, w)
    out = _outputs(model, [x[0]] if task == 'detection' else x)
    spec = get_model_spec(name)
    n = cfg[spec.output_arg]
    assert n == spec.num_outputs, name
    assert task == 'detection' or tuple(cfg['input_size'][1:]) == tuple(spec.input_size), name  # detection: resized here
    if task == 'classification':
        assert out.shape == (1, n) and spec.trunk == name
    else:
        if task in ('pose', 'landmarks'):
            maps = n * spec.options.get('maps_per_keypoint', 1)  # mmpose's combined targets: 3 per keypoint
            assert out.shape == (1, maps, -(-h // 4), -(-w // 4))
        elif task == 'segmentation':
            assert out.shape == (1, n, h, w)
        else:
            assert isinstance(out, list) and len(out) == 1 and {'boxes', 'labels', 'scores'} <= set(out[0])
            assert out[0]['boxes'].shape[-1] == 4

    # strict weight round trip through a safetensors file and the public loaders
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    if task == 'classification':
        again = _build(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    else:
        again = _build(name, pretrained=str(path))
    path.unlink()  # up to 0.5 GB a model, 12 GB over the registry: the disk holds one at a time
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)

    # torch.hub: one entry per registered name
    assert callable(getattr(hubconf, name, None)) or task == 'classification' and callable(hubconf.hrnet)

    # deploy keeps the outputs (BN folded, checked on deploy as well); a detector's post-processing
    # (score threshold, NMS) is discrete, so its backbone + neck is what is deployed and compared
    if task == 'detection':
        model = model.backbone
        out = _outputs(model, x)
    deployed = hrnet_zoo.deploy(model)
    for got, want in zip(_flat(_outputs(deployed, x)), _flat(out), strict=True):
        # random weights give outputs of any magnitude: compare relative to the output's scale
        err = (got.float() - want.float()).abs().max().item()
        # OCR's softmaxes (over positions, over regions) see random-weight logits of ~1e2 and turn the
        # folding's float rounding into up to ~1e-3 of the output (seed-dependent): deploy's own bound
        rtol = 1e-3 if get_model_spec(name).head == 'v2_ocr' else 1e-4
        assert err <= rtol * want.abs().max().item() + 1e-5, f'{name}: deploy changed outputs by {err}'


def test_the_table_does_not_import_the_hub():
    """One direction only: the hub reads the table; the table reaches the hub through connect_hub."""
    import ast
    import hrnet_zoo.tasks.registry as registry
    tree = ast.parse(Path(registry.__file__).read_text())
    imported = {node.module or '' for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not [m for m in imported if 'hub' in m or 'weights' in m], imported
