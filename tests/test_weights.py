"""hrnet_zoo.hub for classifiers: the manifest, conversion, verification and sha256-checked pretrained
loading (the deprecated hrnet_zoo.weights names still work).
Nothing here touches the network: a random model saved in the official layout stands in for an
official checkpoint, a Hugging Face cache folder (HF_HUB_OFFLINE=1) stands in for the Hub."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import warnings
from pathlib import Path

import pytest
import timm
import torch
import yaml

import hrnet_zoo
from hrnet_zoo import hub as W
from conftest import randomize_bn, shapes_only
from hub_double import stock_timm_logits

ARCH = 'hrnet_w18_small'
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def official_checkpoint(path: Path, arch: str = ARCH, num_classes: int = 1000, seed: int = 0):
    """A random model saved as the official training code does: {'state_dict': ...} with the
    DataParallel 'module.' prefix. Returns (model, path)."""
    torch.manual_seed(seed)
    model = randomize_bn(hrnet_zoo.create_model(arch, num_classes=num_classes), seed).eval()
    sd = {f'module.{k}': v for k, v in model.state_dict().items()}
    torch.save({'epoch': 100, 'state_dict': sd, 'best_perf': 0.7}, path)
    return model, path


def hf_cache(root: Path, repo_id: str, folder: Path) -> Path:
    """Lay ``folder``'s files out as huggingface_hub's cache for ``repo_id`` (refs/main + snapshot)."""
    commit = 'a' * 40
    repo = root / f'models--{repo_id.replace("/", "--")}'
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    shutil.copytree(folder, repo / 'snapshots' / commit)
    return root


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(original model, converted folder) for a 10-class hrnet_w18_small tagged ms_in1k."""
    tmp = tmp_path_factory.mktemp('convert')
    model, ckpt = official_checkpoint(tmp / 'ckpt.pth', num_classes=10)
    out = W.convert(ckpt, ARCH, tmp / 'out', tag='ms_in1k', repo_id='me/hrnet-test')
    return model, out


# ---------------------------------------------------------------- manifest
def test_manifest_records_agree_with_timm():
    records = {r.name: r for r in W.list_records('classification', 'official')}  # mmpretrain: test_hub_openmmlab.py
    assert len(records) == 12
    for r in records.values():
        assert r.name in timm.list_pretrained(f'{r.arch}.*'), r.name
        cfg = timm.models.get_pretrained_cfg(r.name)
        assert r.hf_hub_id == cfg.hf_hub_id == f'timm/{r.name}'
        assert (r.input_size, r.mean, r.std) == (cfg.input_size, cfg.mean, cfg.std), r.name
        assert (r.interpolation, r.crop_pct, r.license) == (cfg.interpolation, cfg.crop_pct, cfg.license), r.name
        assert r.sha256 is None and r.size is None  # timm's files: not downloaded here, so not recorded
        assert r.metrics['dataset'] == 'imagenet-1k' and 70 < r.top1 < 85
        assert r.gmacs > r.official_gflops  # FlopCounterMode counts more than the official counter


def test_manifest_num_params_recomputed_for_every_record():
    counts = {}
    for r in W.list_records('classification'):  # task records are recounted in test_task_weights.py
        if r.arch not in counts:
            with shapes_only():
                counts[r.arch] = W.count_params(hrnet_zoo.create_model(r.arch, num_classes=r.num_classes))
        assert counts[r.arch] == r.num_params, r.name


def test_manifest_gmacs_measured():
    r = W.get_weight('hrnet_w18_small.ms_in1k')
    assert W.count_gmacs(hrnet_zoo.create_model(ARCH), r.input_size) == pytest.approx(r.gmacs, abs=1e-3)


def test_manifest_validation_names_the_problem(tmp_path):
    good = json.loads(W.DEFAULT_MANIFEST.read_text())['weights'][0]
    cases = [({'sha256': 'abc'}, 'sha256 must be 64'), ({'name': 'hrnet_w99.x'}, 'must be "<arch>.<tag>"'),
             ({'bogus': 1}, "unknown fields ['bogus']"), ({'size': -3}, 'size must be a positive integer')]
    for change, message in cases:
        path = tmp_path / 'm.json'
        path.write_text(json.dumps({'weights': [dict(good, **change)]}))
        with pytest.raises(W.WeightsError, match=message.replace('[', r'\[').replace(']', r'\]')):
            W.load_manifest(path)
    path.write_text(json.dumps({'weights': [{k: v for k, v in good.items() if k != 'metrics'}]}))
    with pytest.raises(W.WeightsError, match=r"missing fields \['metrics'\]"):
        W.load_manifest(path)
    with pytest.raises(W.WeightsError, match='no weight'):
        W.get_weight('hrnet_w18.nope')


def test_manifest_records_merge_into_timm_cfgs(tmp_path, monkeypatch):
    r = W.get_weight('hrnet_w32.ms_in1k')
    ours = dataclasses.asdict(r) | {'name': 'hrnet_w32.zoo_in1k', 'hf_hub_id': 'zoo/hrnet_w32'}
    path = tmp_path / 'm.json'
    path.write_text(json.dumps({'weights': [dataclasses.asdict(r), ours]}))
    monkeypatch.setenv(W.MANIFEST_ENV, str(path))
    merged = W.merge_into_default_cfgs(dict(timm.models.hrnet.default_cfgs))
    assert merged['hrnet_w32'].cfgs['zoo_in1k'].hf_hub_id == 'zoo/hrnet_w32'
    assert list(merged['hrnet_w32'].tags) == ['ms_in1k', 'zoo_in1k']
    assert 'zoo_in1k' not in timm.models.hrnet.default_cfgs['hrnet_w32'].cfgs  # timm's table untouched


# ---------------------------------------------------------------- convert
def test_convert_writes_hub_folder(converted):
    model, out = converted
    assert sorted(p.name for p in out.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    assert not [p for p in out.parent.iterdir() if p.name.startswith('.out')]  # no temp dirs left
    config = json.loads((out / 'config.json').read_text())
    assert (config['architecture'], config['num_classes'], config['num_features']) == (ARCH, 10, 2048)
    assert config['pretrained_cfg']['tag'] == 'ms_in1k' and config['pretrained_cfg']['license'] == 'mit'
    front = yaml.safe_load((out / 'README.md').read_text().split('---')[1])
    assert front['library_name'] == 'timm' and front['license'] == 'mit' and 'hrnet' in front['tags']
    assert front['datasets'] == ['imagenet-1k'] and front['metrics'] == ['accuracy']
    assert front['model-index'][0]['results'][0]['metrics'][0]['value'] == 72.3
    card = (out / 'README.md').read_text()
    assert "timm.create_model('hf-hub:me/hrnet-test', pretrained=True)" in card and 'torch.hub.load' in card
    assert W.sha256_file(out / 'model.safetensors') in card
    report = W.verify(out)
    assert report.ok, report.problems
    assert any('no recorded sha256' in n for n in report.notes)


def test_converted_weights_load_in_ours_with_features_and_new_head(converted, caplog):
    model, out = converted
    file = dict(file=str(out / 'model.safetensors'))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with caplog.at_level(logging.WARNING):
            ours = hrnet_zoo.create_model(ARCH, pretrained=True, num_classes=10, pretrained_cfg_overlay=file).eval()
            feats = hrnet_zoo.create_model(ARCH, pretrained=True, features_only=True, pretrained_cfg_overlay=file)
            head5 = hrnet_zoo.create_model(ARCH, pretrained=True, num_classes=5, pretrained_cfg_overlay=file)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with torch.no_grad():
        torch.testing.assert_close(ours(X), model(X))
        f_ref = model.forward_intermediates(X, intermediates_only=True)
        for a, b in zip(feats.eval()(X), f_ref):
            torch.testing.assert_close(a, b)
    assert head5.num_classes == 5
    torch.testing.assert_close(head5.conv1.weight, model.conv1.weight)


def test_stock_timm_loads_converted_folder_local_dir_and_offline_cache(converted, tmp_path):
    model, out = converted
    cache = hf_cache(tmp_path / 'hub', 'me/hrnet-test', out)
    logits = stock_timm_logits([f'local-dir:{out}', 'hf-hub:me/hrnet-test'], X, tmp_path,
                               env={'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(cache)})
    with torch.no_grad():
        ref = model(X)
    for name, y in logits.items():
        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- pretrained loading and sha256
@pytest.fixture
def zoo_manifest(tmp_path, monkeypatch, converted):
    """A manifest whose record for repo me/hrnet-test knows the converted file's real sha256."""
    _, out = converted
    base = dataclasses.asdict(W.get_weight('hrnet_w18_small.ms_in1k'))

    def write(sha256):
        record = dict(base, name='hrnet_w18_small.zoo_test', hf_hub_id='me/hrnet-test', sha256=sha256,
                      size=(out / 'model.safetensors').stat().st_size, num_classes=10)
        path = tmp_path / 'manifest.json'
        path.write_text(json.dumps({'weights': [record]}))
        monkeypatch.setenv(W.MANIFEST_ENV, str(path))
    return write


def test_pretrained_checks_sha256_from_manifest(converted, zoo_manifest, tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    model, out = converted
    cache = hf_cache(tmp_path / 'cache', 'me/hrnet-test', out)
    zoo_manifest(W.sha256_file(out / 'model.safetensors'))
    ours = timm.create_model('hf-hub:me/hrnet-test', pretrained=True, cache_dir=cache).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(X), model(X))
    zoo_manifest('0' * 64)
    with pytest.raises(W.WeightsError, match='sha256 mismatch for hrnet_w18_small.zoo_test'):
        timm.create_model('hf-hub:me/hrnet-test', pretrained=True, cache_dir=cache)


def test_pretrained_without_network_or_cache_says_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(W.PretrainedWeightsUnavailable) as err:
        hrnet_zoo.create_model('hrnet_w32.ms_in1k', pretrained=True, cache_dir=tmp_path)
    message = str(err.value)
    assert "'timm/hrnet_w32.ms_in1k'" in message and "'model.safetensors'" in message
    assert "pretrained_cfg_overlay=dict(file='path/model.safetensors')" in message


# ---------------------------------------------------------------- bad inputs
def _nothing_written(out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f'.{out.name}')]


class NeedsCode:
    """A class the unpickler would have to import: weights_only=True refuses it."""
    def __init__(self):
        self.weights = torch.zeros(2)


def test_bad_inputs_are_clear_errors_and_write_nothing(tmp_path, converted):
    model, out_ok = converted
    out = tmp_path / 'out'
    torch.save({'state_dict': NeedsCode()}, tmp_path / 'code.pth')
    with pytest.raises(W.WeightsError, match='needs code to unpickle'):
        W.convert(tmp_path / 'code.pth', ARCH, out)
    assert _nothing_written(out)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith('final_layer')}
    torch.save(sd, tmp_path / 'missing.pth')
    with pytest.raises(W.WeightsError, match=r'missing keys \(7\): final_layer.0.weight'):
        W.convert(tmp_path / 'missing.pth', ARCH, out)
    assert _nothing_written(out)
    (tmp_path / 'bad.safetensors').write_bytes((out_ok / 'model.safetensors').read_bytes()[:-1000])
    with pytest.raises(W.WeightsError, match='truncated'):
        W.convert(tmp_path / 'bad.safetensors', ARCH, out)
    assert _nothing_written(out)
    report = W.verify(tmp_path / 'bad.safetensors', arch=ARCH)
    assert not report.ok and 'truncated' in report.problems[0]


def test_wrong_width_names_the_tensor_and_both_shapes(tmp_path):
    _, ckpt = official_checkpoint(tmp_path / 'w18.pth', 'hrnet_w18')
    with pytest.raises(W.WeightsError) as err:
        W.convert(ckpt, 'hrnet_w30', tmp_path / 'out')
    assert 'does not fit hrnet_w30' in str(err.value)
    assert 'shape mismatch for transition1.0.0.weight: checkpoint [18, 256, 3, 3], model [30, 256, 3, 3]' in str(err.value)
    assert _nothing_written(tmp_path / 'out')


def test_verify_reports_sha_mismatch_and_architecture(converted, zoo_manifest, tmp_path):
    _, out = converted
    folder = tmp_path / 'copy'
    shutil.copytree(out, folder)
    config = json.loads((folder / 'config.json').read_text())
    config['pretrained_cfg']['tag'] = 'zoo_test'
    (folder / 'config.json').write_text(json.dumps(config))
    zoo_manifest(W.sha256_file(out / 'model.safetensors'))
    assert W.verify(folder).ok
    zoo_manifest('f' * 64)
    problems = W.verify(folder).problems
    assert len(problems) == 1 and 'sha256 mismatch for hrnet_w18_small.zoo_test' in problems[0]
    wrong = W.verify(folder / 'model.safetensors', arch='hrnet_w18_small_v2', name='x.y').problems
    assert any(p.startswith('model.safetensors: missing keys') for p in wrong)


# ---------------------------------------------------------------- the deprecated module
def test_deprecated_weights_module_names_still_work(converted, tmp_path):
    """``hrnet_zoo.weights`` (the module before hrnet_zoo.hub) keeps the names users called, each
    with a DeprecationWarning that names the new place."""
    import hrnet_zoo.weights as old
    model, out = converted
    with pytest.warns(DeprecationWarning, match=r'hrnet_zoo.weights.convert is deprecated; use hrnet_zoo.hub.convert'):
        assert old.convert is W.convert
    with pytest.warns(DeprecationWarning):
        assert old.load_manifest() == W.load_manifest() and old.WeightRecord is W.WeightRecord
    with pytest.warns(DeprecationWarning):
        assert old.verify(out).ok and old.get_weight('hrnet_w32.ms_in1k').top1 == 78.5
    with pytest.warns(DeprecationWarning):
        records = old.task_records('classification')
    assert [r.name for r in records] == [r.name for r in W.list_records('classification')]
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}}, tmp_path / 'c.pth')
    with pytest.warns(DeprecationWarning, match='convert_task'):
        folder = old.convert_task(tmp_path / 'c.pth', ARCH, tmp_path / 'old', tag='ms_in1k')
    assert W.verify(folder).ok
    config = json.loads((folder / 'config.json').read_text())
    with pytest.warns(DeprecationWarning):
        card = old.model_card('hrnet_w18_small.ms_in1k', config, None, 'f' * 64)
    assert card.startswith('---\nlibrary_name: timm') and 'f' * 64 in card
    assert hrnet_zoo.weights is old  # the package attribute, as before
    with pytest.raises(AttributeError):
        old.no_such_name
