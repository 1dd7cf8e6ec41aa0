"""The training engine: a real run on a small real dataset, DDP on CPU, exact resume, the CLI."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_zoo
from hrnet_zoo.train import CheckpointError, TrainConfig, Trainer, load_checkpoint, seed_everything
from hrnet_zoo.train.classification import ClassificationLoss, make_eval_fn, topk_accuracy
from hrnet_zoo.train.data import DigitsDataset

REPO = Path(__file__).resolve().parents[1]


def _tiny_net() -> nn.Module:
    """A small CNN with BatchNorm and Dropout (so BN buffers and the RNG both matter)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 10))


def _resume_cfg(out_dir, **kw) -> TrainConfig:
    base = dict(out_dir=str(out_dir), epochs=2, batch_size=32, grad_accum=2, optimizer='sgd', lr=0.05,
                sched='cosine', warmup_epochs=0.5, ema_decay=0.9, progress=False, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _fit(out_dir, dataset, **kw):
    seed_everything(0)
    trainer = Trainer(_tiny_net(), dataset, ClassificationLoss(), _resume_cfg(out_dir, **kw),
                      eval_fn=make_eval_fn(DigitsDataset('test', size=8)))
    return trainer, trainer.fit()


def test_digits_real_training_run(tmp_path):
    """hrnet_w18_small trained from scratch on scikit-learn's digits (upsampled to 3x32x32, 1437
    train / 360 held-out): 3 epochs of AdamW + cosine reach ~95-96% held-out top-1 (chance 10%)."""
    train_set, test_set = DigitsDataset('train', size=32), DigitsDataset('test', size=32)
    assert len(train_set) == 1437 and len(test_set) == 360
    seed_everything(0)
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10)
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=3, batch_size=32, optimizer='adamw', lr=2e-3,
                      weight_decay=0.05, sched='cosine', warmup_epochs=0.2, eval_every=3, progress=False)
    t0 = time.time()
    result = Trainer(model, train_set, ClassificationLoss(), cfg, eval_fn=make_eval_fn(test_set)).fit()
    print(f'digits: held-out top-1 {result["metrics"]["top1"]:.1f}% in {time.time() - t0:.0f}s')
    assert result['steps'] == 3 * (1437 // 32)
    assert result['losses'][-1] < 0.5 < result['losses'][0]
    assert result['metrics']['top1'] >= 90.0
    assert (tmp_path / 'last.pth').is_file() and (tmp_path / 'best.pth').is_file()
    assert (tmp_path / 'log.csv').read_text().startswith('epoch,step,lr,loss,time_s')


def test_stop_and_resume_reproduces_losses(tmp_path):
    """Stopped mid-epoch after step k and resumed from last.pth, the run continues with the
    uninterrupted run's losses, weights and EMA (grad accumulation, warmup+cosine, dropout, BN)."""
    data = DigitsDataset('train', size=8)
    full_trainer, full = _fit(tmp_path / 'full', data)
    k = 29  # mid-epoch: 22 updates per epoch
    _, first = _fit(tmp_path / 'cut', data, max_steps=k)
    assert first['steps'] == k and len(first['losses']) == k
    resumed_trainer, second = _fit(tmp_path / 'cut', data, resume='auto')
    assert second['start_step'] == k
    torch.testing.assert_close(torch.tensor(first['losses'] + second['losses']), torch.tensor(full['losses']))
    for a, b in zip(full_trainer.module.state_dict().values(), resumed_trainer.module.state_dict().values()):
        torch.testing.assert_close(a, b)
    for a, b in zip(full_trainer.ema.module.state_dict().values(), resumed_trainer.ema.module.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert second['metrics'] == pytest.approx(full['metrics'])
    rows = (tmp_path / 'cut' / 'log.csv').read_text().splitlines()
    assert len(rows) == 1 + full['steps']  # one row per step, no duplicates after the resume
    assert len((tmp_path / 'cut' / 'metrics.jsonl').read_text().splitlines()) == 2  # one row per epoch


class _Augmented(torch.utils.data.Dataset):
    """Digits with random flips, shifts and noise drawn from python's random, numpy and torch
    (the generators torchvision / timm / albumentations transforms use)."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        if random.random() < 0.5:
            x = x.flip(-1)
        x = torch.roll(x, shifts=int(np.random.randint(-1, 2)), dims=-2)
        return x + 0.3 * torch.randn_like(x), y


def test_seeded_samples_depend_only_on_seed_epoch_and_index():
    """Sample i is the same tensor whether a worker of a 2-worker loader on rank 1 of 2 loads it
    or the main process does; another epoch draws again; the caller's generators are untouched."""
    from hrnet_zoo.train.data import SeededSamples
    from hrnet_zoo.train.distributed import ResumableSampler
    data = SeededSamples(_Augmented(DigitsDataset('train', size=8)), seed=3)
    data.epoch = 1
    sampler = ResumableSampler(data, rank=1, world_size=2, seed=3)
    sampler.set_epoch(1, start=100)
    loaded = torch.cat([x for x, _ in torch.utils.data.DataLoader(data, batch_size=16, sampler=sampler,
                                                                   num_workers=2)])
    assert torch.equal(loaded, torch.stack([data[i][0] for i in sampler]))
    first = data[0][0]
    data.epoch = 2
    assert not torch.equal(data[0][0], first)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state()
    data[5]
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])


@pytest.fixture(scope='module')
def augmented_run(tmp_path_factory):
    """(augmented digits, losses of an uninterrupted 2-epoch run loading them in 2 workers)."""
    data = _Augmented(DigitsDataset('train', size=8))
    _, full = _fit(tmp_path_factory.mktemp('full'), data, num_workers=2)
    return data, torch.tensor(full['losses'])


def test_resume_with_workers_reproduces_augmented_losses(tmp_path, augmented_run):
    """With random augmentation in 2 data-loader workers, stopping mid-epoch and resuming gives
    the uninterrupted run's losses; so does loading in the main process (num_workers=0): each
    sample's random numbers depend only on (seed, epoch, sample index)."""
    data, full = augmented_run
    k = 29  # mid-epoch: 22 updates per epoch
    _, first = _fit(tmp_path / 'cut', data, num_workers=2, max_steps=k)
    _, second = _fit(tmp_path / 'cut', data, num_workers=2, resume='auto')
    resumed = torch.tensor(first['losses'] + second['losses'])
    print(f'max relative loss difference, 2 workers, resumed at step {k} vs straight:',
          float(((resumed - full).abs() / full).max()))
    torch.testing.assert_close(resumed, full)
    _, main_process = _fit(tmp_path / 'w0', data, num_workers=0)
    torch.testing.assert_close(torch.tensor(main_process['losses']), full)


_HARD_KILL = '''
import os, signal, sys, torch
sys.path.insert(0, sys.argv[2])
from test_train import _fit, _Augmented
from hrnet_zoo.train.data import DigitsDataset
save = torch.save
def save_then_die(obj, f, *a, **k):  # the third periodic save dies half-written
    if obj['step'] == 15:
        f.write(b'half a checkpoint')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f, *a, **k)
torch.save = save_then_die
_fit(sys.argv[1], _Augmented(DigitsDataset('train', size=8)), num_workers=2, save_every_steps=5)
'''


def test_hard_kill_loses_at_most_save_every_steps(tmp_path, augmented_run):
    """A process (2 workers) killed by SIGKILL while writing its third periodic checkpoint:
    last.pth holds step 10, the half-written temp file is removed when the run restarts, and the
    resumed run gives the uninterrupted run's losses."""
    data, full = augmented_run
    script = tmp_path / 'killed.py'
    script.write_text(_HARD_KILL)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / 'cut'), str(REPO / 'tests')],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    stale = list((tmp_path / 'cut').glob('.last.pth.*.tmp'))
    assert len(stale) == 1 and stale[0].stat().st_size == len(b'half a checkpoint')
    assert load_checkpoint(tmp_path / 'cut' / 'last.pth')['step'] == 10
    _, rest = _fit(tmp_path / 'cut', data, num_workers=0, resume='auto')  # any worker count resumes
    assert rest['start_step'] == 10 and not stale[0].exists()
    torch.testing.assert_close(torch.tensor(rest['losses']), full[10:])


def test_save_every_min_and_stale_temp_cleanup(tmp_path, monkeypatch):
    """save_every_min writes last.pth when the wall-time interval has passed (here: every step;
    the epoch end saves once); on start a run deletes only save_checkpoint's temp files."""
    (tmp_path / 'run').mkdir()
    for name in ('.last.pth.k3j2h1a0.tmp', '.best.pth.abcd_123.tmp', 'notes.tmp', '.hidden.tmp', 'last.pth.tmp'):
        (tmp_path / 'run' / name).write_text('x')
    data = DigitsDataset('train', size=8)
    saved = []
    monkeypatch.setattr(Trainer, 'save', lambda self, path=None, also_best=False: saved.append(self.step))
    _fit(tmp_path / 'run', data, epochs=1, save_every_min=1e-9)
    assert saved == list(range(1, 23))  # 22 updates: one save per update, the last one by the epoch end
    assert sorted(p.name for p in (tmp_path / 'run').iterdir() if p.suffix == '.tmp') == [
        '.hidden.tmp', 'last.pth.tmp', 'notes.tmp']
    saved.clear()
    _fit(tmp_path / 'plain', data, epochs=1)
    assert saved == [22]
    with pytest.raises(ValueError, match='save_every_min'):
        TrainConfig(save_every_min=0)
    with pytest.raises(ValueError, match='save_every_steps'):
        TrainConfig(save_every_steps=0)


def test_sigterm_saves_and_resume_matches(tmp_path):
    """A SIGTERM during step k: the step finishes, last.pth is written, fit() returns; resuming
    reproduces the uninterrupted losses."""
    data = DigitsDataset('train', size=8)
    _, full = _fit(tmp_path / 'full', data, epochs=1)
    calls = {'n': 0}
    loss = ClassificationLoss()

    def loss_with_kill(model, batch):
        calls['n'] += 1
        if calls['n'] == 2 * 7:  # the last micro-batch of step 7
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(model, batch)

    seed_everything(0)
    cfg = _resume_cfg(tmp_path / 'cut', epochs=1)
    killed = Trainer(_tiny_net(), data, loss_with_kill, cfg).fit()
    assert killed['interrupted'] and killed['steps'] == 7
    assert load_checkpoint(tmp_path / 'cut' / 'last.pth')['step'] == 7
    _, rest = _fit(tmp_path / 'cut', data, epochs=1, resume='auto')
    torch.testing.assert_close(torch.tensor(killed['losses'] + rest['losses']), torch.tensor(full['losses']))


def test_resume_mismatch_is_clear_error(tmp_path):
    data = DigitsDataset('train', size=8)
    _fit(tmp_path, data, max_steps=3)
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(CheckpointError, match='does not match the model'):
        Trainer(other, data, ClassificationLoss(), _resume_cfg(tmp_path, resume=str(tmp_path / 'last.pth')))
    with pytest.raises(CheckpointError, match='mid-epoch'):  # a different batch size cannot resume mid-epoch
        Trainer(_tiny_net(), data, ClassificationLoss(), _resume_cfg(tmp_path, batch_size=16, resume='auto'))


def test_nonfinite_loss_and_bad_config_are_clear_errors(tmp_path):
    data = DigitsDataset('train', size=8)
    trainer = Trainer(_tiny_net(), data, lambda m, b: m(b[0]).sum() * float('nan'),
                      _resume_cfg(tmp_path, ema_decay=None))
    with pytest.raises(FloatingPointError, match='loss is nan at step 0'):
        trainer.fit()
    with pytest.raises(ValueError, match='amp'):
        TrainConfig(amp='int8')
    with pytest.raises(ValueError, match='smaller than one update'):
        Trainer(_tiny_net(), torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4).long()),
                ClassificationLoss(), _resume_cfg(tmp_path))


def test_amp_bf16_channels_last_grad_checkpointing_run(tmp_path):
    """The speed / memory switches train (CPU bf16 autocast) and the loss stays finite."""
    data = DigitsDataset('train', size=32)
    seed_everything(0)
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10)
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=1, max_steps=2, batch_size=8, amp='bf16', channels_last=True,
                      grad_checkpointing=True, optimizer='adamw', lr=1e-3, progress=False)
    result = Trainer(model, data, ClassificationLoss(), cfg).fit()
    assert result['steps'] == 2 and all(torch.isfinite(torch.tensor(result['losses'])))


def test_topk_accuracy():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    assert topk_accuracy(logits, torch.tensor([1, 2, 0]), ks=(1, 2)) == {1: 1, 2: 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_DDP_WORKER = '''
import sys, torch, hrnet_zoo
from hrnet_zoo.train import Trainer, TrainConfig, seed_everything
from hrnet_zoo.train.classification import ClassificationLoss
from hrnet_zoo.train.data import DigitsDataset
torch.set_num_threads(1)
out = sys.argv[1]
data = DigitsDataset('train', size=32)

def run(sub, **kw):
    seed_everything(0)
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10, drop_rate=0.2)
    cfg = TrainConfig(out_dir=f'{out}/{sub}', epochs=1, batch_size=8, optimizer='sgd', lr=0.05,
                      sched='constant', progress=False, device='cpu', **kw)
    trainer = Trainer(model, data, ClassificationLoss(), cfg)
    return trainer, trainer.fit()

trainer, full = run('full', max_steps=4)
_, cut = run('cut', max_steps=2)
_, rest = run('cut', max_steps=4, resume='auto')
torch.save({'state': trainer.module.state_dict(), 'losses': full['losses'], 'resumed': cut['losses'] + rest['losses'],
            'world': trainer.dist.world_size, 'len': len(trainer.sampler)}, f'{out}/rank{trainer.dist.rank}.pt')
'''


def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    """torchrun --nproc_per_node 2 on CPU (gloo): 4 DDP steps, both ranks hold the same weights
    (parameters and BN buffers) and see disjoint halves of the data; a 2-rank run stopped after
    step 2 and resumed gives the same losses (per-rank RNG states restored, dropout on)."""
    script = tmp_path / 'worker.py'
    script.write_text(_DDP_WORKER)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
           '--master_port', str(_free_port()), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1))
    assert r0['world'] == r1['world'] == 2 and r0['len'] == r1['len'] == 1437 // 2 + 1
    assert len(r0['losses']) == 4 and r0['losses'] == r1['losses']  # the logged loss is the mean over ranks
    torch.testing.assert_close(torch.tensor(r0['resumed']), torch.tensor(r0['losses']))
    assert r0['state'].keys() == r1['state'].keys()
    for key in r0['state']:
        torch.testing.assert_close(r0['state'][key], r1['state'][key], rtol=0, atol=0, msg=key)
    seed_everything(0)
    init = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10).state_dict()
    assert not torch.equal(init['classifier.weight'], r0['state']['classifier.weight'])  # it trained
    ckpt = load_checkpoint(tmp_path / 'full' / 'last.pth')
    assert ckpt['step'] == 4 and ckpt['world_size'] == 2 and len(ckpt['rng']) == 2
    assert not torch.equal(ckpt['rng'][0]['torch'], ckpt['rng'][1]['torch'])  # each rank's own RNG stream


def test_cli_runs_and_exports_hub_folder(tmp_path):
    """`python -m hrnet_zoo.train` on the digits demo: a couple of steps, then a Hub folder that
    loads back into the classifier."""
    from safetensors.torch import load_file
    out = tmp_path / 'run'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    cmd = [sys.executable, '-m', 'hrnet_zoo.train', '--model', 'hrnet_w18_small', '--dataset', 'digits',
           '--set', 'data.train_size=32', '--set', 'train.epochs=1', '--batch-size', '16', '--max-steps', '2',
           '--workers', '0', '--no-progress', '--out-dir', str(out), '--export-dir', str(tmp_path / 'hub')]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index('{'):])
    assert summary['steps'] == 2
    run = json.loads((out / 'run.json').read_text())
    assert run['recipe']['name'] == 'paper' and run['config']['lr'] == pytest.approx(0.1 * 16 / 256)
    config = json.loads((tmp_path / 'hub' / 'config.json').read_text())
    assert config['architecture'] == 'hrnet_w18_small' and config['num_classes'] == 10
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10)
    model.load_state_dict(load_file(str(tmp_path / 'hub' / 'model.safetensors')))
    torch.testing.assert_close(model.state_dict()['classifier.weight'],
                               load_checkpoint(out / 'last.pth')['model']['classifier.weight'])


def test_cli_errors_exit_2(capsys, tmp_path):
    from hrnet_zoo.train.__main__ import main
    assert main(['--recipe', 'nope']) == 2
    assert 'unknown recipe' in capsys.readouterr().err
    assert main(['--model', 'hrnet_w18_small', '--out-dir', str(tmp_path)]) == 2  # no data given
    assert 'no data: pass --data-dir' in capsys.readouterr().err


def test_cli_timm_names_and_save_flags(capsys):
    """timm train.py's flag names are aliases of recipe values (shown by --show-recipe, listed by
    --help); --save-every / --save-every-min reach the engine; bad values exit 2 with a message."""
    import yaml
    from hrnet_zoo.train.__main__ import _run_overrides, build_parser, main
    flags = ['--img-size', '--input-size', '--opt', '--sched', '--warmup-epochs', '--weight-decay', '--smoothing',
             '--mixup', '--cutmix', '--model-ema-decay', '--save-every', '--save-every-min']
    text = build_parser().format_help()
    assert all(f in text for f in flags)
    assert main(['--show-recipe', '--input-size', '3', '160', '160', '--opt', 'momentum', '--sched', 'multistep',
                 '--warmup-epochs', '2', '--weight-decay', '5e-5', '--smoothing', '0.1', '--mixup', '0.2',
                 '--cutmix', '1', '--model-ema-decay', '0.9998', '--set', 'train.epochs=3']) == 0
    r = yaml.safe_load(capsys.readouterr().out)
    assert (r['data']['train_size'], r['data']['eval_size'], r['data']['eval_resize']) == (160, 160, 183)  # 224/256
    assert (r['train']['optimizer'], r['train']['nesterov'], r['train']['sched']) == ('sgd', False, 'step')
    assert (r['train']['warmup_epochs'], r['train']['weight_decay'], r['train']['ema_decay']) == (2.0, 5e-5, 0.9998)
    assert r['augment'] == {'cutmix': 1.0, 'mixup': 0.2, 'label_smoothing': 0.1} and r['train']['epochs'] == 3
    run = _run_overrides(build_parser().parse_args(['--save-every', '100', '--save-every-min', '30']))
    assert (run['save_every_steps'], run['save_every_min']) == (100, 30.0)
    for argv, message in [(['--opt', 'adamw', '--set', 'train.optimizer=sgd'], 'given both by --set'),
                          (['--input-size', '3', '224', '192'], 'square RGB'),
                          (['--img-size', '224', '--input-size', '3', '256', '256'], 'disagree')]:
        assert main(['--show-recipe'] + argv) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(['--save-every', '0'])
    assert 'must be > 0' in capsys.readouterr().err


def test_imagefolder_pipeline_and_cutmix_loss(tmp_path):
    """An ImageFolder tree goes through timm's create_dataset + the recipe's transforms (RRC 224
    for training, resize 256 / centre crop 224 for evaluation); CutMix gives a finite soft-target loss."""
    from PIL import Image
    from hrnet_zoo.train.classification import build_mixup
    from hrnet_zoo.train.data import build_datasets
    from hrnet_zoo.train.recipes import load_recipe
    rng = torch.Generator().manual_seed(0)
    for split in ('train', 'val'):
        for cls in ('cat', 'dog'):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                pixels = torch.randint(0, 255, (40 + 9 * i, 50, 3), generator=rng, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / split / cls / f'{i}.png')
    recipe = load_recipe('cosine_cutmix_300e')
    train_set, eval_set, num_classes = build_datasets('', str(tmp_path), recipe.data)
    assert num_classes == 2 and len(train_set) == len(eval_set) == 4
    image, target = train_set[0]
    assert image.shape == (3, 224, 224) and target in (0, 1)
    assert eval_set[3][0].shape == (3, 224, 224) and eval_set[3][1] == 1
    mixup = build_mixup(recipe.augment['cutmix'], recipe.augment['mixup'], 0.1, num_classes)
    model = nn.Sequential(nn.Conv2d(3, 4, 7, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    images = torch.stack([train_set[i][0] for i in range(4)])
    loss = ClassificationLoss(0.1, mixup)(model, (images, torch.tensor([0, 0, 1, 1])))
    assert loss.dim() == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match='even batch'):
        ClassificationLoss(0.1, mixup)(model, (images[:3], torch.tensor([0, 0, 1])))
    with pytest.raises(ValueError, match='no data'):
        build_datasets('', None, recipe.data)
