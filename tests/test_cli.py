"""The hrnet-zoo command line: every verb's --help, the maintainer's convert -> verify -> publish
round trip against the Hub test double (then stock timm loads it from there), bad inputs (clear
error, non-zero exit, nothing written) and the README's weights table."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hrnet_zoo
from hrnet_zoo.cli import main, weights_table
from conftest import randomize_bn
from hub_double import hub, stock_timm_logits  # noqa: F401  (hub is a fixture)

ARCH = 'hrnet_w18_small'
X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
README = Path(__file__).resolve().parent.parent / 'README.md'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """(model, path): a random hrnet_w18_small in the official layout ('state_dict', 'module.')."""
    path = tmp_path_factory.mktemp('ckpt') / 'hrnet_w18_small_model_v1.pth'
    model = randomize_bn(hrnet_zoo.create_model(ARCH)).eval()
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}}, path)
    return model, path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('verb', ['convert', 'verify', 'publish', 'list'])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, '--help'])
    assert e.value.code == 0
    assert f'usage: hrnet-zoo {verb}' in capsys.readouterr().out


def test_convert_verify_publish_then_stock_timm_loads_from_the_hub(checkpoint, hub, tmp_path, capsys):
    model, ckpt = checkpoint
    out = tmp_path / 'hrnet_w18_small.ms_in1k'
    code, text, err = run(capsys, 'convert', ckpt, '--arch', ARCH, '--tag', 'ms_in1k', '--out', out,
                          '--repo-id', 'zoo/hrnet_w18_small')
    assert code == 0, err
    code, text, err = run(capsys, 'verify', out)
    assert code == 0 and text.rstrip().endswith(f'OK: {out}') and 'no recorded sha256' in text
    code, text, err = run(capsys, 'publish', out, '--repo-id', 'zoo/hrnet_w18_small', '--endpoint', hub.url, '--dry-run')
    assert code == 0 and 'would upload' in text and 'model.safetensors' in text
    assert 'zoo/hrnet_w18_small' not in hub.server.RequestHandlerClass.state.repos  # dry run: nothing sent
    code, text, err = run(capsys, 'publish', out, '--repo-id', 'zoo/hrnet_w18_small', '--endpoint', hub.url)
    assert code == 0, err
    assert 'committed' in text
    logits = stock_timm_logits(['hf-hub:zoo/hrnet_w18_small'], X, tmp_path,
                               env={'HF_ENDPOINT': hub.url, 'HF_HOME': str(tmp_path / 'hf-home')})
    with torch.no_grad():
        torch.testing.assert_close(logits['hf-hub:zoo/hrnet_w18_small'], model(X), atol=1e-4, rtol=1e-4)


def test_publish_without_token_fails_clearly(checkpoint, hub, tmp_path, capsys, monkeypatch):
    _, ckpt = checkpoint
    out = tmp_path / 'out'
    assert run(capsys, 'convert', ckpt, '--arch', ARCH, '--out', out)[0] == 0
    monkeypatch.delenv('HF_TOKEN')
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'no-login'))
    monkeypatch.setattr('huggingface_hub.constants.HF_TOKEN_PATH', str(tmp_path / 'no-login' / 'token'))
    code, text, err = run(capsys, 'publish', out, '--repo-id', 'zoo/x', '--endpoint', hub.url)
    assert code == 2 and 'upload to zoo/x@main' in err and 'HF_TOKEN' in err


class NeedsCode:
    def __init__(self):
        self.payload = torch.ones(1)


def test_bad_inputs_exit_non_zero_and_write_nothing(checkpoint, tmp_path, capsys):
    model, ckpt = checkpoint
    out = tmp_path / 'out'
    torch.save(NeedsCode(), tmp_path / 'code.pth')
    sd = model.state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith('classifier')}, tmp_path / 'missing.pth')
    torch.save({k: v[:1] if k == 'conv1.weight' else v for k, v in sd.items()}, tmp_path / 'narrow.pth')
    cases = {'code.pth': 'needs code to unpickle', 'missing.pth': 'missing keys (2): classifier.weight, classifier.bias',
             'narrow.pth': 'shape mismatch for conv1.weight: checkpoint [1, 3, 3, 3], model [64, 3, 3, 3]'}
    for name, message in cases.items():
        code, text, err = run(capsys, 'convert', tmp_path / name, '--arch', ARCH, '--out', out)
        assert code == 2 and message in err, (name, err)
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith('.out')]


def test_verify_flags_truncation_and_sha_mismatch(checkpoint, tmp_path, capsys, monkeypatch):
    _, ckpt = checkpoint
    out = tmp_path / 'good'
    assert run(capsys, 'convert', ckpt, '--arch', ARCH, '--tag', 'ms_in1k', '--out', out)[0] == 0
    manifest = (Path(hrnet_zoo.hub.DEFAULT_MANIFEST).read_text()
                .replace('"sha256": null', f'"sha256": "{"0" * 64}"', 1))
    (tmp_path / 'manifest.json').write_text(manifest)
    monkeypatch.setenv('HRNET_ZOO_MANIFEST', str(tmp_path / 'manifest.json'))
    code, text, err = run(capsys, 'verify', out)  # first record is hrnet_w18_small.ms_in1k
    assert code == 1 and 'PROBLEM:' in text and 'sha256 mismatch for hrnet_w18_small.ms_in1k' in text
    code, text, err = run(capsys, 'publish', out, '--repo-id', 'zoo/x', '--dry-run')
    assert code == 2 and 'failed verification' in err
    data = (out / 'model.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(data[: len(data) // 2])
    code, text, err = run(capsys, 'verify', tmp_path / 'cut.safetensors', '--arch', ARCH)
    assert code == 1 and 'truncated' in text


def test_list_and_readme_table_come_from_the_manifest(capsys):
    code, text, err = run(capsys, 'list', '--pretrained')
    assert code == 0 and 'hrnet_w32.ms_in1k' in text and '78.5' in text and '8.92' in text
    # the README shows the official (timm-hosted) records; OpenMMLab's are in docs/openmmlab.md
    table = weights_table(markdown=True, layout='official')
    assert table in README.read_text(), \
        'README "Weights" table is stale: paste `hrnet-zoo list --markdown --task classification --source official`'
