"""Recipes as data: every shipped recipe parses and builds optimizer + schedule; the paper's lr
schedule; validation errors; the listing."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hrnet_zoo.train import build_optimizer, build_scheduler, lr_at
from hrnet_zoo.train.__main__ import recipes_table
from hrnet_zoo.train.recipes import RecipeError, list_recipes, load_recipe


def test_shipped_recipes():
    assert {'paper', 'cosine_cutmix_300e'} <= set(list_recipes())


@pytest.mark.parametrize('name', list_recipes(task='classification'))
def test_every_recipe_builds_optimizer_and_scheduler(name):
    recipe = load_recipe(name)
    assert recipe.reproduces['top1'] and recipe.description
    cfg = recipe.train_config(world_size=8)
    assert cfg.batch_size * 8 == recipe.global_batch == 256
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, updates_per_epoch=100)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults['nesterov'] and opt.defaults['momentum'] == 0.9
    assert opt.param_groups[0]['weight_decay'] == 1e-4 and len(opt.param_groups) == 1  # decay on every param
    assert lr_at(sched, 0) == pytest.approx(0.1)
    assert lr_at(sched, cfg.epochs * 100 - 1) < 0.001


def test_paper_lr_schedule_at_epoch_boundaries():
    """Paper: lr 0.1 (batch 256), divided by 10 at epochs 30, 60 and 90."""
    cfg = load_recipe('paper').train_config(world_size=1)
    assert (cfg.batch_size, cfg.epochs) == (256, 100)
    u = 5005  # ImageNet: 1,281,167 images / 256
    sched = build_scheduler(build_optimizer(nn.Linear(2, 2), cfg), cfg, u)
    for epoch, lr in [(0, 0.1), (29, 0.1), (30, 0.01), (60, 0.001), (90, 0.0001)]:
        assert lr_at(sched, epoch * u) == pytest.approx(lr), epoch
        assert lr_at(sched, (epoch + 1) * u - 1) == pytest.approx(lr), epoch  # the whole epoch
    sched.step_update(30 * u)
    assert sched.optimizer.param_groups[0]['lr'] == pytest.approx(0.01)


def test_lr_scales_linearly_with_global_batch():
    recipe = load_recipe('paper')
    assert recipe.train_config(world_size=4, batch_size=256).lr == pytest.approx(0.4)
    assert recipe.train_config(world_size=4, batch_size=32).lr == pytest.approx(0.05)  # official 4 GPUs x 32
    assert recipe.train_config(world_size=2, batch_size=32, grad_accum=2).lr == pytest.approx(0.05)
    with pytest.raises(RecipeError, match='does not split'):
        recipe.train_config(world_size=3)


def test_cosine_recipe_cutmix_and_options():
    recipe = load_recipe('cosine_cutmix_300e')
    assert recipe.train['epochs'] == 300 and recipe.train['sched'] == 'cosine' and recipe.augment['cutmix'] == 1.0
    assert recipe.reproduces['top1'] == {'hrnet_w18': 77.9, 'hrnet_w48': 81.1}
    tuned = recipe.with_overrides(['augment.label_smoothing=0.1', 'train.ema_decay=0.9998'])
    assert tuned.augment['label_smoothing'] == 0.1 and tuned.train_config().ema_decay == 0.9998
    sched = build_scheduler(build_optimizer(nn.Linear(2, 2), tuned.train_config()), tuned.train_config(), 10)
    assert lr_at(sched, 1500) == pytest.approx(0.05, rel=1e-3)  # half-way down the cosine


def test_unknown_and_bad_keys_are_clear_errors(tmp_path):
    with pytest.raises(RecipeError, match='unknown key train.epoch;.*valid keys'):
        load_recipe('paper').with_overrides(['train.epoch=3'])
    with pytest.raises(RecipeError, match='unknown key data.crop'):
        load_recipe('paper').with_overrides(['data.crop=224'])
    with pytest.raises(RecipeError, match='invalid train section.*amp'):
        load_recipe('paper').with_overrides(['train.amp=int8'])
    with pytest.raises(RecipeError, match='unknown recipe'):
        load_recipe('nope')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\ntrain: {epochs: 1}\nschedule: {}\n')
    with pytest.raises(RecipeError, match='unknown key recipe.schedule'):
        load_recipe(bad)
    bad.write_text('name: x\ntrain: {epochs: 1, out_dir: /tmp}\n')
    with pytest.raises(RecipeError, match='unknown key train.out_dir'):  # run settings are not recipe data
        load_recipe(bad)


def test_listing(capsys):
    table = recipes_table()
    assert 'paper' in table and 'cosine_cutmix_300e' in table and 'hrnet_w48 81.1' in table
    from hrnet_zoo.train.__main__ import main
    assert main(['--list-recipes']) == 0
    assert capsys.readouterr().out == table + '\n'


def test_hrnet_zoo_cli_recipes_verb(capsys):
    from hrnet_zoo.cli import main
    assert main(['recipes']) == 0
    assert capsys.readouterr().out == recipes_table() + '\n'


# --- task recipes (pose / landmarks / segmentation / detection) -----------------------------------
@pytest.mark.parametrize('task', ['pose', 'landmarks', 'segmentation', 'detection'])
def test_every_task_has_recipes_that_build_a_train_config(task):
    names = list_recipes(task=task)
    assert names, task
    for name in names:
        recipe = load_recipe(name)
        assert recipe.task == task and recipe.description and recipe.reproduces, name
        cfg = recipe.train_config(batch_size=2)
        assert cfg.batch_size == 2 and cfg.epochs >= 1 and cfg.lr > 0, name
    assert not set(names) & set(list_recipes(task='classification'))


def test_task_recipe_overrides_must_name_declared_keys_with_their_types(tmp_path):
    path = tmp_path / 'toy_pose.yaml'
    path.write_text('name: toy\ntask: pose\ntrain: {epochs: 3, batch_size: 8, lr: 0.001, optimizer: adam}\n'
                    'data: {sigma: 2.0, flip: true, half_body_prob: 0.3}\neval: {flip_test: true}\n')
    recipe = load_recipe(path)
    assert recipe.data == {'sigma': 2.0, 'flip': True, 'half_body_prob': 0.3} and recipe.eval == {'flip_test': True}
    changed = recipe.with_overrides(['data.sigma=3', 'eval.flip_test=false', 'train.epochs=5'])
    assert (changed.data['sigma'], changed.eval['flip_test'], changed.train['epochs']) == (3, False, 5)
    assert recipe.data['sigma'] == 2.0  # the original is untouched
    with pytest.raises(RecipeError, match=r'no data\.sigmaa; valid keys in data: flip, half_body_prob, sigma'):
        recipe.with_overrides(['data.sigmaa=3'])
    with pytest.raises(RecipeError, match=r'data\.flip is bool .* got str'):
        recipe.with_overrides(['data.flip=maybe'])
    with pytest.raises(RecipeError, match='section must be one of train, data, augment, eval'):
        recipe.with_overrides(['loss.ohem=true'])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: bad\ntask: depth\ntrain: {epochs: 1}\n')
    with pytest.raises(RecipeError, match="task must be one of .* got 'depth'"):
        load_recipe(bad)
