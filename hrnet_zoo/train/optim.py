"""Optimizer and learning-rate schedule from a :class:`~hrnet_zoo.train.engine.TrainConfig`,
through timm's factories (``timm.optim.create_optimizer_v2`` and ``timm.scheduler``).

Schedules are stepped once per optimizer update (``t_in_epochs=False``): before update ``n``
(0-based, counted over the whole run) the engine calls ``scheduler.step_update(n)``, so the lr
of update ``n`` is ``lr_at(scheduler, n)``. Epoch milestones mean what PyTorch's ``MultiStepLR``
and the paper mean: with milestones (30, 60, 90) epochs 0-29 use lr, epoch 30 uses lr * gamma.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler, PolyLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .engine import TrainConfig

__all__ = ['OPTIMIZERS', 'SCHEDULES', 'build_optimizer', 'build_scheduler', 'lr_at']

OPTIMIZERS = ('sgd', 'adam', 'adamw')
SCHEDULES = ('step', 'cosine', 'poly', 'constant')


def build_optimizer(model: nn.Module, cfg: 'TrainConfig') -> torch.optim.Optimizer:
    """SGD (Nesterov or plain momentum), Adam or AdamW over ``model``'s parameters.

    ``cfg.filter_bias_and_bn=False`` (the default, as the official HRNet code) applies weight
    decay to every parameter; ``True`` exempts biases and norm weights (timm's habit)."""
    name = cfg.optimizer.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f'unknown optimizer {cfg.optimizer!r}; choose one of {OPTIMIZERS}')
    kwargs = {}
    if name == 'sgd':
        opt = 'sgd' if cfg.nesterov else 'momentum'  # timm: 'sgd' = Nesterov SGD, 'momentum' = plain
        kwargs['momentum'] = cfg.momentum
    else:
        opt = name
        kwargs['betas'] = tuple(cfg.betas)
    return create_optimizer_v2(model, opt=opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               filter_bias_and_bn=cfg.filter_bias_and_bn, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: 'TrainConfig',
                    updates_per_epoch: int) -> Scheduler:
    """The timm scheduler for ``cfg.sched``, in optimizer updates (see module docstring).

    ``step``: lr * gamma ** (number of ``milestones`` passed), ``cosine``: cosine from lr to
    ``min_lr`` over the run, ``poly``: lr * (1 - t/T) ** ``power``, ``constant``. All take a
    linear warmup of ``warmup_epochs`` from ``warmup_lr``."""
    if updates_per_epoch < 1:
        raise ValueError(f'updates_per_epoch must be >= 1, got {updates_per_epoch}: the dataset is '
                         f'smaller than one (global batch x grad_accum)')
    name = cfg.sched.lower()
    if name not in SCHEDULES:
        raise ValueError(f'unknown schedule {cfg.sched!r}; choose one of {SCHEDULES}')
    u = updates_per_epoch
    total = max(1, round(cfg.epochs * u))
    warmup = dict(warmup_t=round(cfg.warmup_epochs * u), warmup_lr_init=cfg.warmup_lr,
                  t_in_epochs=False)
    if name in ('step', 'constant'):
        milestones = sorted(cfg.milestones) if name == 'step' else []
        # timm applies milestone m at t == m - 1 (its documented convention); shift by one update
        # so that milestone epoch e takes effect at the first update of epoch e.
        return MultiStepLRScheduler(optimizer, decay_t=[round(m * u) + 1 for m in milestones],
                                    decay_rate=cfg.gamma, warmup_prefix=False, **warmup)
    if name == 'cosine':
        return CosineLRScheduler(optimizer, t_initial=total, lr_min=cfg.min_lr, **warmup)
    return PolyLRScheduler(optimizer, t_initial=total, power=cfg.power, lr_min=cfg.min_lr, **warmup)


def lr_at(scheduler: Scheduler, update: int, group: int = 0) -> float:
    """The lr that ``scheduler`` gives parameter group ``group`` at optimizer update ``update``."""
    return float(scheduler._get_lr(update)[group])
