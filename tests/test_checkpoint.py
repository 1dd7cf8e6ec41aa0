"""Atomic checkpoint writes, safe loading, clear errors for corrupt / foreign / mismatched files."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_zoo.train.checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, load_model_state,
                                        load_weights, restore_rng_state, save_checkpoint)


def _state(value: float = 1.0):
    return {'model': {'w': torch.full((3,), value)}, 'step': 1}


def test_roundtrip_and_no_temp_files_left(tmp_path):
    path = save_checkpoint(tmp_path / 'sub' / 'last.pth', _state())
    state = load_checkpoint(path)
    assert state['step'] == 1 and torch.equal(state['model']['w'], torch.ones(3))
    assert state['format'] == 'hrnet_zoo.train/1'
    assert sorted(p.name for p in path.parent.iterdir()) == ['last.pth']


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / 'last.pth', _state(1.0))
    with pytest.raises(Exception):
        save_checkpoint(path, {'model': {'w': torch.zeros(3)}, 'bad': lambda: None})  # lambdas do not pickle
    assert torch.equal(load_checkpoint(path)['model']['w'], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ['last.pth']


def test_truncated_file_is_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / 'last.pth', _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        load_checkpoint(path)


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'nope.pth')
    torch.save({'w': torch.ones(2)}, tmp_path / 'bare.pth')
    with pytest.raises(CheckpointError, match='not an hrnet_zoo training checkpoint'):
        load_checkpoint(tmp_path / 'bare.pth')
    torch.save({'model': {}, 'format': 'other/9'}, tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match='format'):
        load_checkpoint(tmp_path / 'other.pth')


def test_unsafe_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    torch.save({'model': {}, 'format': 'hrnet_zoo.train/1', 'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='safe loading refuses'):
        load_checkpoint(tmp_path / 'evil.pth')


def test_model_mismatch_names_keys():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    sd = model.state_dict()
    sd['1.weight'] = torch.zeros(5, 3)
    sd['extra'] = sd.pop('0.bias')
    with pytest.raises(CheckpointError) as err:
        load_model_state(model, sd, 'ckpt.pth')
    msg = str(err.value)
    assert 'missing keys (1): 0.bias' in msg and 'unexpected keys (1): extra' in msg
    assert '1.weight: checkpoint (5, 3) vs model (2, 3)' in msg


def test_rng_state_roundtrip_through_file(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint(tmp_path / 'r.pth', {'model': {}, 'rng': capture_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / 'r.pth')['rng'])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_load_weights_engine_checkpoint_or_official_fallback(tmp_path):
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    save_checkpoint(tmp_path / 'last.pth', {'model': src.state_dict()})
    load_weights(dst, tmp_path / 'last.pth')
    torch.testing.assert_close(dst.weight, src.weight)

    torch.save(src.state_dict(), tmp_path / 'official.pth')  # not an engine checkpoint
    seen = []
    load_weights(nn.Linear(3, 2), tmp_path / 'official.pth', official_loader=lambda m, p: seen.append(p))
    assert seen == [str(tmp_path / 'official.pth')]
    with pytest.raises(CheckpointError, match='not an hrnet_zoo training checkpoint'):
        load_weights(nn.Linear(3, 2), tmp_path / 'official.pth')
