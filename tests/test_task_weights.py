"""Task weights on the Hub: the manifest's task records, ``hrnet-zoo convert`` of official (and
engine) checkpoints for pose / landmarks / segmentation / detection, ``verify`` / ``publish`` of
task folders, ``pretrained=True`` in a fresh process through the Hub double, and the bad inputs.

Nothing touches the network: a random model saved in each task's official layout (pose: a plain
state_dict; landmarks: ``{'state_dict': {'module.' ...}}`` with the official head names;
segmentation: the trainer's ``model.`` prefix plus the loss's buffers; detection: our engine's
``last.pth``) stands in for the official file, ``tests/hub_double.py`` for the Hub. Small trunks
(``arch='hrnet_w18_small'``, recorded in config.json's ``model_args``) keep it fast."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import hrnet_zoo
from hrnet_zoo import hub as W
from hrnet_zoo.checkpoint import read_state_dict
from hrnet_zoo.cli import main, weights_table
from hrnet_zoo.tasks.registry import TASK_SPECS, key_map_of
from conftest import randomize_bn
from hub_double import hub_module  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / 'README.md'
# one small model per task: (name, model_args, input for the output comparison)
CASES = {
    'pose': ('hrnet_pose', {'arch': 'hrnet_w18_small'}, (1, 3, 64, 48)),
    'landmarks': ('hrnet_w18_face_aflw', {}, (1, 3, 64, 64)),
    'segmentation': ('hrnet_w48_seg_lip', {'arch': 'hrnet_w18_small'}, (1, 3, 64, 64)),
    'detection': ('fasterrcnn_hrnetv2p_w18', {'arch': 'hrnet_w18_small', 'min_size': 96, 'max_size': 128,
                                             'box_score_thresh': 0.0},
                  (1, 3, 96, 128)),
}
ORG = 'zoo-test'


def official_layout(task: str, name: str, model: torch.nn.Module):
    """``model``'s weights as the official code (or our engine, for detection) saves them: the
    inverse of the spec's key map."""
    km = key_map_of(TASK_SPECS[name])
    sd = {}
    for k, v in model.state_dict().items():
        for old, new in km.rename:
            if k.startswith(new):
                k = old + k[len(new):]
                break
        sd[k] = v
    if task == 'landmarks':
        return {'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 60}
    if task == 'segmentation':  # FullModel: model.<ours> + the loss's class weights
        return {**{f'model.{k}': v for k, v in sd.items()}, 'loss.criterion.weight': torch.ones(20)}
    if task == 'detection':  # hrnet_zoo.train engine's last.pth
        return {'format': 'hrnet_zoo.train/1', 'model': sd, 'optimizer': {'state': {}, 'param_groups': []},
                'epoch': 2, 'metrics': {'bbox_AP': 0.1}}
    return sd


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope='module')
def originals(tmp_path_factory):
    """{task: (name, model_args, model, official checkpoint path, x)}."""
    tmp = tmp_path_factory.mktemp('official')
    out = {}
    for task, (name, args, shape) in CASES.items():
        torch.manual_seed(0)
        model = randomize_bn(hrnet_zoo.create_model(name, **args)).eval()
        path = tmp / f'{name}.pth'
        torch.save(official_layout(task, name, model), path)
        out[task] = (name, args, model, path, torch.randn(*shape, generator=torch.Generator().manual_seed(3)))
    return out


@pytest.fixture(scope='module')
def published(originals, hub_module, tmp_path_factory):
    """Every task's checkpoint converted, verified and published through the CLI; returns
    {task: (folder, cli transcript)} and a manifest whose records point at the published repos."""
    tmp = tmp_path_factory.mktemp('published')
    folders, records = {}, []
    for task, (name, args, model, ckpt, _) in originals.items():
        folder = tmp / name
        argv = ['convert', ckpt, '--arch', name, '--out', folder, '--repo-id', f'{ORG}/{name}']
        argv += [a for k, v in args.items() for a in ('--model-arg', f'{k}={json.dumps(v)}')]
        assert main([str(a) for a in argv]) == 0, task
        assert main(['verify', str(folder)]) == 0, task
        assert main(['publish', str(folder), '--repo-id', f'{ORG}/{name}', '--endpoint', hub_module.url]) == 0, task
        folders[task] = folder
        base = W.record_as_json(W.get_weight(name)) if name in W.load_manifest() else None
        record = dict(base or _bare_record(name), hf_hub_id=f'{ORG}/{name}',
                      sha256=W.sha256_file(folder / W.WEIGHTS_FILE), size=(folder / W.WEIGHTS_FILE).stat().st_size)
        records.append(record)
    manifest = tmp / 'manifest.json'
    manifest.write_text(json.dumps({'weights': records}))
    return folders, manifest


def _bare_record(name):
    spec = TASK_SPECS[name]
    metric = W.TASK_METRICS[spec.task][0]
    return {'name': name, 'task': spec.task, 'filename': W.WEIGHTS_FILE, 'num_params': 1, 'gmacs': 1.0,
            'official_gflops': None, 'input_size': [3, *spec.input_size], 'mean': list(spec.mean),
            'std': list(spec.std), 'interpolation': 'bilinear', 'crop_pct': 1.0,
            'metrics': {'dataset': spec.dataset, metric: 1.0, 'source': 'test'}, 'license': spec.license,
            'source': {'repo': 'ours', 'checkpoint': 'last.pth'}, 'recipe': '', 'num_outputs': spec.num_outputs,
            'codec': spec.codec}


# ---------------------------------------------------------------- the round trip, per task
FRESH = r'''
import json, sys, torch
import hrnet_zoo
cases = json.load(open(sys.argv[1]))
out = {}
for task, (name, args, shape, repo, card) in cases.items():
    x = torch.load(sys.argv[2])[task]
    models = {'create_model': hrnet_zoo.create_model(name, pretrained=True, **args),
              'torch.hub': torch.hub.load(sys.argv[3], name, source='local', pretrained=True, **args),
              'hf-hub': torch.hub.load(sys.argv[3], 'hrnet', f'hf-hub:{repo}', source='local', pretrained=True, **args)}
    snippet = {}
    exec(card.replace(').eval()', ', **args).eval()'), {'args': args}, snippet)  # the model card's snippet
    models['card'] = snippet['model']
    with torch.no_grad():
        out[task] = {k: m.eval()([x[0]] if task == 'detection' else x) for k, m in models.items()}
torch.save(out, sys.argv[4])
'''


def test_round_trip_convert_verify_publish_then_pretrained_true_in_a_fresh_process(originals, published, hub_module,
                                                                                   tmp_path):
    folders, manifest = published
    cases, xs = {}, {}
    for task, (name, args, model, ckpt, x) in originals.items():
        card = (folders[task] / 'README.md').read_text()
        snippet = re.search(r'```python\n(import hrnet_zoo\n.*?)```', card, re.S).group(1)
        cases[task] = (name, args, list(x.shape), f'{ORG}/{name}', snippet)
        xs[task] = x
    (tmp_path / 'cases.json').write_text(json.dumps(cases))
    torch.save(xs, tmp_path / 'x.pt')
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_ENDPOINT=hub_module.url, HF_HOME=str(tmp_path / 'hf-home'), HRNET_ZOO_MANIFEST=str(manifest),
               OMP_NUM_THREADS='1')
    argv = [sys.executable, '-c', FRESH, tmp_path / 'cases.json', tmp_path / 'x.pt', ROOT, tmp_path / 'out.pt']
    proc = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / 'out.pt')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fresh process (OMP_NUM_THREADS=1): the same reduction order, so a
    try:                      # detector's score threshold / NMS sees the same numbers
        refs = {}
        for task, (name, args, model, ckpt, x) in originals.items():
            with torch.no_grad():
                refs[task] = model.eval()([x[0]] if task == 'detection' else x)
    finally:
        torch.set_num_threads(threads)
    for task, (name, args, model, ckpt, x) in originals.items():
        ref = refs[task]
        for how, y in got[task].items():
            if task == 'detection':
                assert len(y[0]['boxes']) > 0, how
                for key in ('boxes', 'scores', 'labels'):
                    torch.testing.assert_close(y[0][key], ref[0][key], msg=f'{task} {how} {key}')
            else:
                torch.testing.assert_close(y, ref, msg=f'{task} {how}')
    blobs = list((tmp_path / 'hf-home' / 'hub').glob('models--zoo-test--*/snapshots/*/model.safetensors'))
    assert len(blobs) == len(CASES)  # downloaded through huggingface_hub's cache


def test_task_folders_have_config_and_card(originals, published):
    folders, _ = published
    pipeline = {'pose': 'keypoint-detection', 'landmarks': 'keypoint-detection',
                'segmentation': 'image-segmentation', 'detection': 'object-detection'}
    for task, folder in folders.items():
        name, args, model, _, _ = originals[task]
        spec = TASK_SPECS[name]
        assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
        config = json.loads((folder / 'config.json').read_text())
        assert (config['architecture'], config['task'], config['model_args']) == (name, task, args)
        assert config['num_outputs'] == config[spec.output_arg] == spec.num_outputs
        cfg = model.pretrained_cfg
        assert config['input_size'] == list(cfg['input_size']) and config['mean'] == list(spec.mean)
        assert config['flip_pairs'] == [list(p) for p in spec.flip_pairs]
        assert config['align_corners'] == spec.options.get('align_corners')
        assert config['pretrained_cfg']['hf_hub_id'] == f'{ORG}/{name}'
        rebuilt = W.task_config(hrnet_zoo.create_model(config['architecture'], **config['model_args']), spec)
        assert {k: rebuilt[k] for k in W.TASK_CONFIG_FIELDS} == {k: config[k] for k in W.TASK_CONFIG_FIELDS}
        front = yaml.safe_load((folder / 'README.md').read_text().split('---')[1])
        assert front['pipeline_tag'] == pipeline[task] and front['license'] == spec.license
        assert front['datasets'] and 'hrnet-zoo' in front['tags']
        if spec.metrics:
            results = front['model-index'][0]['results'][0]
            assert results['task']['type'] == pipeline[task]
            values = {m['type']: m['value'] for m in results['metrics']}
            assert values[W.TASK_METRICS[task][0]] == spec.metrics[W.TASK_METRICS[task][0]]
        card = (folder / 'README.md').read_text()
        assert f"hrnet_zoo.create_model('{name}'" in card and f"torch.hub.load('<owner>/hrnet-zoo', '{name}'" in card
        assert W.sha256_file(folder / W.WEIGHTS_FILE) in card


def test_official_metrics_in_the_card_of_an_official_model(originals, published):
    folder = published[0]['landmarks']
    front = yaml.safe_load((folder / 'README.md').read_text().split('---')[1])
    values = {m['type']: m['value'] for m in front['model-index'][0]['results'][0]['metrics']}
    assert values == {'nme': 1.57, 'nme_frontal': 1.46}
    assert 'HR18-AFLW.pth' in (folder / 'README.md').read_text()


# ---------------------------------------------------------------- bad inputs, task folders too
def _nothing_written(out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f'.{out.name}')]


class NeedsCode:
    def __init__(self):
        self.payload = torch.ones(1)


def test_convert_refuses_bad_task_checkpoints_and_writes_nothing(originals, tmp_path, capsys):
    name, _, model, ckpt, _ = originals['landmarks']
    out = tmp_path / 'out'
    official = torch.load(ckpt, weights_only=True)
    torch.save({'state_dict': NeedsCode()}, tmp_path / 'code.pth')
    torch.save({'state_dict': {k: v for k, v in official['state_dict'].items() if not k.startswith('module.head.3.')}},
               tmp_path / 'missing.pth')
    (tmp_path / 'cut.pth').write_bytes(ckpt.read_bytes()[:100000])
    cases = [('code.pth', name, 'needs code to unpickle'),
             ('missing.pth', name, 'missing keys (2): final_layer.weight, final_layer.bias'),
             ('cut.pth', name, 'truncated or corrupt'),
             (ckpt, 'hrnet_w18_face_wflw', 'predicts 19 landmarks (final_layer.weight has shape (19, 270, 1, 1)) '
                                           'but the model was built for 98'),
             (ckpt, 'hrnet_w32_pose_coco_256x192', 'does not fit hrnet_w32_pose_coco_256x192:\n  missing keys (2): '
                                                   'final_layer.weight, final_layer.bias\n  unexpected keys'),
             (originals['pose'][3], 'hrnet_w32_pose_coco_256x192',  # wrong variant: W18-small trunk into W32
              'shape mismatch for final_layer.weight: checkpoint [17, 16, 1, 1], model [17, 32, 1, 1]'),
             (ckpt, 'hrnet_w99_nothing', 'unknown architecture')]
    for file, arch, message in cases:
        code, text, err = run(capsys, 'convert', tmp_path / file, '--arch', arch, '--out', out)
        assert code == 2 and message in err, (file, arch, err)
        assert _nothing_written(out)
    code, text, err = run(capsys, 'convert', ckpt, '--arch', name, '--out', out, '--model-arg', 'bogus=1')
    assert code == 2 and "does not take the model arguments {'bogus': 1}" in err
    assert _nothing_written(out)


def test_verify_and_publish_refuse_bad_task_folders(published, tmp_path, capsys, monkeypatch):
    folder = tmp_path / 'face'
    shutil.copytree(published[0]['landmarks'], folder)
    data = (folder / W.WEIGHTS_FILE).read_bytes()
    # sha256 mismatch against the manifest record
    record = dict(W.record_as_json(W.get_weight('hrnet_w18_face_aflw')), sha256='0' * 64)
    (tmp_path / 'm.json').write_text(json.dumps({'weights': [record]}))
    monkeypatch.setenv(W.MANIFEST_ENV, str(tmp_path / 'm.json'))
    code, text, err = run(capsys, 'verify', folder)
    assert code == 1 and 'sha256 mismatch for hrnet_w18_face_aflw' in text
    code, text, err = run(capsys, 'publish', folder, '--repo-id', 'zoo/x', '--dry-run')
    assert code == 2 and 'failed verification' in err
    monkeypatch.delenv(W.MANIFEST_ENV)
    # wrong architecture: weights of one model, config of another
    config = json.loads((folder / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps(dict(config, architecture='hrnet_w18_face_wflw')))
    problems = W.verify(folder).problems
    assert any('the checkpoint predicts 19 landmarks' in p for p in problems), problems
    assert any("config.json describes 'hrnet_w18_face_wflw'" not in p for p in problems)
    # a config that lies about the output count / flip pairs
    (folder / 'config.json').write_text(json.dumps(dict(config, num_outputs=5)))
    assert W.verify(folder).problems == ['config.json: num_outputs is 5 but hrnet_w18_face_aflw (model_args {}) has 19']
    (folder / 'config.json').write_text(json.dumps(config))
    assert W.verify(folder).ok
    # truncated
    (folder / W.WEIGHTS_FILE).write_bytes(data[:-1000])
    code, text, err = run(capsys, 'verify', folder)
    assert code == 1 and 'truncated' in text


def test_pretrained_refuses_bad_files_names_what_to_do(published, tmp_path, monkeypatch):
    import huggingface_hub.constants
    folder = published[0]['landmarks']
    name = 'hrnet_w18_face_aflw'
    (tmp_path / 'cut.safetensors').write_bytes((folder / W.WEIGHTS_FILE).read_bytes()[:-1000])
    with pytest.raises(W.WeightsError, match='truncated'):
        hrnet_zoo.create_model(name, pretrained=str(tmp_path / 'cut.safetensors'))
    with pytest.raises(W.WeightsError, match="describes 'hrnet_w18_face_aflw', not 'hrnet_w18_face_wflw'"):
        hrnet_zoo.create_model('hrnet_w18_face_wflw', pretrained=str(folder))
    shutil.copy(folder / W.WEIGHTS_FILE, tmp_path / 'face.safetensors')  # a bare file: no config.json to go by
    with pytest.raises(W.WeightsError, match=r'face.safetensors does not fit hrnet_w18_face_wflw:\n  shape mismatch '
                                             r'for final_layer.weight: checkpoint \[19, 270, 1, 1\], model \[98'):
        hrnet_zoo.create_model('hrnet_w18_face_wflw', pretrained=str(tmp_path / 'face.safetensors'))
    # offline with no cache: the real record's repo and file, and how to pass a local file
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(W.PretrainedWeightsUnavailable) as err:
        hrnet_zoo.create_model(name, pretrained=True, cache_dir=tmp_path / 'empty')
    message = str(err.value)
    assert "'hrnet-zoo/hrnet_w18_face_aflw'" in message and "'model.safetensors'" in message
    assert "pretrained='path/to/model.safetensors'" in message and 'HR18-AFLW.pth' in message
    # the offline cache (HF_HUB_OFFLINE=1) works, and its sha256 is checked against the record
    cache = tmp_path / 'cache'
    snap = cache / 'models--hrnet-zoo--hrnet_w18_face_aflw' / 'snapshots' / ('a' * 40)
    shutil.copytree(folder, snap)
    (snap.parent.parent / 'refs').mkdir()
    (snap.parent.parent / 'refs' / 'main').write_text('a' * 40)
    model = hrnet_zoo.create_model(name, pretrained=True, cache_dir=cache)
    published_weight = read_state_dict(folder / W.WEIGHTS_FILE)['final_layer.weight']
    torch.testing.assert_close(model.final_layer.weight, published_weight)
    record = dict(W.record_as_json(W.get_weight(name)), sha256='f' * 64)
    (tmp_path / 'm.json').write_text(json.dumps({'weights': [record]}))
    monkeypatch.setenv(W.MANIFEST_ENV, str(tmp_path / 'm.json'))
    with pytest.raises(W.WeightsError, match=f'sha256 mismatch for {name}: expected f{{64}}'):
        hrnet_zoo.create_model(name, pretrained=True, cache_dir=cache)


# ---------------------------------------------------------------- the manifest's task records
OFFICIAL_TASKS = ('pose', 'landmarks', 'segmentation')


def test_every_official_task_checkpoint_has_one_record_agreeing_with_its_spec():
    records = {r.name: r for r in W.list_records(layout='official') if r.task != 'classification'}
    official = {n for n, s in TASK_SPECS.items() if s.official is not None and s.task in OFFICIAL_TASKS}
    assert official <= set(records), sorted(official - set(records))
    assert {'hrnet_w32_pose_coco_256x192', 'hrnet_w48_pose_coco_384x288', 'hrnet_w18_face_wflw', 'hrnet_w18_face_cofw',
            'hrnet_w48_seg_cityscapes', 'hrnet_w48_ocr_seg_lip'} <= set(records)
    for name, r in records.items():
        spec = TASK_SPECS[name]
        assert (r.task, r.num_outputs, r.input_size[1:]) == (spec.task, spec.num_outputs, spec.input_size), name
        assert (r.mean, r.std, r.license) == (tuple(spec.mean), tuple(spec.std), spec.license), name
        assert r.hf_hub_id == f'hrnet-zoo/{name}' and r.filename == W.WEIGHTS_FILE, name
        assert r.sha256 is None and r.size is None, name  # no converted official file here: nothing invented
        assert dict(r.metrics) == json.loads(json.dumps(dict(spec.metrics))) and r.metrics['source'], name
        assert r.source == {'repo': spec.official.repo, 'checkpoint': spec.official.filename,
                            'published_at': spec.official.published_at, 'layout': 'official'}, name
        assert r.layout == 'official' and r.codec == spec.codec, name
        assert (ROOT / 'hrnet_zoo' / 'train' / 'recipes' / f'{r.recipe.split()[2]}.yaml').is_file(), r.recipe
        twin = records.get(name.replace('256x192', '384x288'))  # same model, larger input
        assert twin.num_params == r.num_params and twin.gmacs >= r.gmacs, name
    # measured, not copied: recount one record per task (on the meta device; each takes seconds)
    for name in ('hrnet_w32_pose_coco_384x288', 'hrnet_w18_face_cofw', 'hrnet_w48_seg_cityscapes'):
        assert W.measure_model(name) == (records[name].num_params, records[name].gmacs), name


def test_official_figures_in_the_records():
    get = W.get_weight
    assert get('hrnet_w32_pose_coco_256x192').metrics['AP'] == 74.4
    assert get('hrnet_w48_pose_coco_384x288').metrics['AP'] == 76.3
    assert get('hrnet_w48_seg_cityscapes').metrics['miou'] == 80.9
    assert get('hrnet_w48_ocr_seg_cityscapes').metrics['miou'] == 81.6
    assert get('hrnet_w18_face_wflw').metrics['nme'] == 4.60
    assert get('hrnet_w18_face_cofw').metrics['fr'] == 0.20
    assert 28.4e6 < get('hrnet_w32_pose_coco_256x192').num_params < 28.6e6  # README: 28.5M
    assert 65.7e6 < get('hrnet_w48_seg_cityscapes').num_params < 65.9e6  # paper: 65.8M


def test_task_record_validation_names_the_problem(tmp_path):
    good = W.record_as_json(W.get_weight('hrnet_w18_face_wflw'))
    cases = [({'task': 'faces'}, 'task must be one of'), ({'num_outputs': None}, 'needs num_outputs'),
             ({'metrics': {'dataset': 'WFLW', 'source': 'x'}}, r"metrics must include \['nme'\]"),
             ({'name': 'Bad-Name'}, 'must be a task model name'),
             ({'metrics': {'dataset': 'WFLW', 'nme': 4.6}}, r"metrics must include \['source'\]$")]  # no headline talk
    for change, message in cases:
        path = tmp_path / 'm.json'
        path.write_text(json.dumps({'weights': [dict(good, **change)]}))
        with pytest.raises(W.WeightsError, match=message):
            W.load_manifest(path)


def test_task_records_stay_out_of_timm():
    import timm
    assert not timm.list_models('hrnet_w32_pose*') and not timm.list_pretrained('hrnet_w18_face*')


# ---------------------------------------------------------------- list
def test_list_json_and_task_filter(capsys):
    code, text, err = run(capsys, 'list', '--json')
    rows = json.loads(text)
    assert code == 0 and len(rows) == len(W.load_manifest())
    for row in rows:
        assert {'name', 'task', 'hf_hub_id', 'sha256', 'size', 'metrics', 'num_params', 'gmacs'} <= set(row)
    assert {r['task'] for r in rows} == {'classification', 'pose', 'landmarks', 'segmentation', 'detection'}
    code, text, err = run(capsys, 'list', '--json', '--task', 'pose', '--source', 'official')
    assert {r['task'] for r in json.loads(text)} == {'pose'} and len(json.loads(text)) == 4
    code, text, err = run(capsys, 'list', '--json', '--task', 'pose')  # + mmpose's 95 top-down pose files
    assert {r['task'] for r in json.loads(text)} == {'pose'} and len(json.loads(text)) == 4 + 95
    code, text, err = run(capsys, 'list', '--task', 'segmentation')
    assert 'hrnet_w48_ocr_seg_cityscapes' in text and 'miou 81.6' in text and 'hrnet_w32.ms_in1k' not in text
    code, text, err = run(capsys, 'list')
    assert 'hrnet_w32.ms_in1k' in text and 'pose:' in text and 'AP 74.4' in text


@pytest.mark.parametrize('task', OFFICIAL_TASKS)
def test_readme_task_weights_tables_come_from_the_manifest(task):
    table = weights_table(markdown=True, task=task, layout='official')  # OpenMMLab's: docs/openmmlab.md
    assert table in README.read_text(), \
        f'README "Task weights" table is stale: paste `hrnet-zoo list --markdown --task {task} --source official`'


def test_record_as_json_round_trips():
    r = W.get_weight('hrnet_w48_ocr_seg_pascal_context')
    assert W.WeightRecord(**{k: tuple(v) if k in ('input_size', 'mean', 'std') else v
                             for k, v in W.record_as_json(r).items()}) == r
    assert dataclasses.asdict(r)['task'] == 'segmentation'


def test_task_record_is_built_from_the_spec_and_measured():
    stored = W.get_weight('hrnet_w18_face_aflw')
    record = W.task_record('hrnet_w18_face_aflw', official_gflops=stored.official_gflops, recipe=stored.recipe)
    assert W.WeightRecord(**{k: tuple(v) if k in ('input_size', 'mean', 'std') else v for k, v in record.items()}) \
        == stored
    with pytest.raises(W.WeightsError, match='no official checkpoint'):
        W.task_record('fasterrcnn_hrnetv2p_w18')


def test_checkpoint_path_keeps_reading_the_official_files(originals):
    for task, (name, args, model, ckpt, x) in originals.items():
        again = hrnet_zoo.create_model(name, checkpoint_path=str(ckpt), **args)
        for k, v in model.state_dict().items():
            assert torch.equal(again.state_dict()[k], v), (task, k)
