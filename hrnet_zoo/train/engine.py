"""The training engine: one loop for ImageNet classification and every task fine-tune.

A task supplies a model, a ``Dataset``, ``loss_fn(model, batch) -> scalar`` and optionally
``eval_fn(model) -> {name: value}``; :class:`Trainer` does the rest: DataLoader and
(distributed) sampler, optimizer and lr schedule (timm factories, see :mod:`.optim`), AMP,
channels_last, gradient checkpointing and accumulation, DDP with SyncBatchNorm, EMA,
atomic ``last.pth`` / ``best.pth`` checkpoints with exact resume, a CSV log, a progress bar
and optional TensorBoard.

Exact resume: the checkpoint holds model, optimizer, scheduler, grad scaler, EMA, epoch,
global step, the position inside the epoch and every rank's python / numpy / torch RNG state.
The sampler order depends only on ``(seed, epoch)``, a resumed run skips the samples already
seen, and each sample's augmentation randomness depends only on ``(seed, epoch, sample index)``
(:class:`~hrnet_zoo.train.data.SeededSamples`), so stopping after step k and resuming gives the
uninterrupted run's losses with any number of data-loader workers and processes.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import signal
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from .checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, load_model_state,
                         remove_stale_temp_files, restore_rng_state, save_checkpoint)
from .data import SeededSamples
from .distributed import (DistInfo, ResumableSampler, all_gather_object, all_reduce_mean, barrier,
                          broadcast_object, init_distributed)
from .optim import build_optimizer, build_scheduler

__all__ = ['TrainConfig', 'Trainer', 'seed_everything', 'fit_summary', 'LossFn', 'EvalFn']

LossFn = Callable[[nn.Module, Any], torch.Tensor]
EvalFn = Callable[[nn.Module], Mapping[str, float]]

_AMP_DTYPES = {None: None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class TrainConfig:
    """Everything the engine needs besides model, data and loss. ``batch_size`` is per process;
    the global batch is ``batch_size * world_size * grad_accum``. ``lr`` is used as given (the
    recipes scale it with the global batch before building this config)."""
    out_dir: str = 'runs/train'
    epochs: int = 10
    max_steps: Optional[int] = None            # stop after this many optimizer updates (resumable)
    batch_size: int = 32
    grad_accum: int = 1
    num_workers: int = 0
    drop_last: bool = True
    # optimizer (timm.optim.create_optimizer_v2)
    optimizer: str = 'sgd'                     # 'sgd' | 'adam' | 'adamw'
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    betas: Tuple[float, float] = (0.9, 0.999)
    filter_bias_and_bn: bool = False           # True: no weight decay on biases / norm weights
    clip_grad: Optional[float] = None          # max global grad norm
    # lr schedule (timm.scheduler, stepped per update)
    sched: str = 'step'                        # 'step' | 'cosine' | 'poly' | 'constant'
    milestones: Tuple[float, ...] = (30, 60, 90)
    gamma: float = 0.1
    warmup_epochs: float = 0
    warmup_lr: float = 1e-6
    min_lr: float = 0.0
    power: float = 0.9
    # speed / memory
    amp: Optional[str] = None                  # None | 'bf16' | 'fp16'
    channels_last: bool = False
    grad_checkpointing: bool = False
    sync_bn: bool = True                       # SyncBatchNorm under DDP (CUDA only)
    find_unused_parameters: bool = False
    ema_decay: Optional[float] = None          # e.g. 0.9998: keep an EMA of the weights (timm ModelEmaV3)
    ema_warmup: bool = False
    # bookkeeping
    resume: Optional[str] = None               # checkpoint path, or 'auto' = out_dir/last.pth if present
    seed: int = 0
    device: Optional[str] = None               # None: CUDA when available
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = False
    eval_every: int = 1                        # epochs between evaluations (and best.pth checks)
    eval_all_ranks: bool = False               # False: eval_fn runs on rank 0, metrics are broadcast
    best_metric: str = 'top1'
    best_mode: str = 'max'
    save_every_steps: Optional[int] = None     # also write last.pth every N updates
    save_every_min: Optional[float] = None     # also write last.pth every M minutes (wall time)
    handle_signals: bool = True                # SIGTERM / SIGINT: save last.pth, then stop

    def __post_init__(self) -> None:
        self.milestones = tuple(self.milestones)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        problems = []
        if self.amp not in _AMP_DTYPES:
            problems.append(f'amp={self.amp!r} (use None, "bf16" or "fp16")')
        if self.best_mode not in ('max', 'min'):
            problems.append(f'best_mode={self.best_mode!r} (use "max" or "min")')
        for name in ('epochs', 'batch_size', 'grad_accum', 'log_every', 'eval_every'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f'{name}={getattr(self, name)!r} (must be an integer >= 1)')
        if self.save_every_steps is not None and (not isinstance(self.save_every_steps, int)
                                                  or self.save_every_steps < 1):
            problems.append(f'save_every_steps={self.save_every_steps!r} (must be an integer >= 1 or None)')
        if self.save_every_min is not None and not self.save_every_min > 0:
            problems.append(f'save_every_min={self.save_every_min!r} (must be > 0 or None)')
        if self.max_steps is not None and self.max_steps < 0:
            problems.append(f'max_steps={self.max_steps} (must be >= 0 or None)')
        if self.lr <= 0:
            problems.append(f'lr={self.lr} (must be > 0)')
        if problems:
            raise ValueError('invalid TrainConfig: ' + '; '.join(problems))

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in fields(cls)]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit_summary(result: Dict[str, Any]) -> Dict[str, Any]:
    """What a command reports of :meth:`Trainer.fit`'s result: final metrics, the best metric, the
    number of steps and the checkpoint paths (the per-step losses stay out)."""
    return {k: result[k] for k in ('metrics', 'best', 'steps', 'last_checkpoint', 'best_checkpoint')}


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """Move tensors in (nested) tuples / lists / dicts to ``device``; 4-D float tensors become
    channels_last when asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return type(batch)({k: _to_device(v, device, channels_last) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, '_fields'):  # namedtuple
        return type(batch)(*(_to_device(v, device, channels_last) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


def _truncate_jsonl(path: Path, step: int) -> None:
    """Drop the rows of a JSON-lines log written after ``step`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get('step', 0) <= step]
    tmp = path.with_suffix('.tmp')
    tmp.write_text(''.join(r + '\n' for r in rows))
    os.replace(tmp, path)


class _CsvLog:
    """Append-only CSV with a fixed header; on resume, rows past the resumed step are dropped so
    the log reads like one uninterrupted run."""

    def __init__(self, path: Path, columns: Sequence[str], resume_step: Optional[int]) -> None:
        self.path, self.columns = path, list(columns)
        if resume_step is not None and path.exists():
            self._truncate_after(resume_step)
        new = not path.exists() or path.stat().st_size == 0
        self.file = open(path, 'a', newline='')
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction='ignore')
        if new:
            self.writer.writeheader()
            self.file.flush()

    def _truncate_after(self, step: int) -> None:
        with open(self.path, newline='') as f:
            rows = [r for r in csv.DictReader(f) if int(float(r.get('step') or 0)) <= step]
        tmp = self.path.with_suffix('.tmp')
        with open(tmp, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction='ignore')
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Trainer:
    """Train ``model`` on ``train_set`` with ``loss_fn(model, batch)``; see the module docstring.

    ``eval_fn(model)`` is called every ``cfg.eval_every`` epochs with the unwrapped model in
    eval mode under ``torch.no_grad()`` (and autocast when ``cfg.amp``); by default on rank 0
    only (other ranks get its result), or on every rank with ``cfg.eval_all_ranks`` (for an
    eval_fn that shards and all-reduces itself). With EMA, it also runs on the EMA weights and
    those metrics are reported with an ``ema_`` prefix (``best_metric='ema_top1'`` selects them).
    """

    def __init__(self, model: nn.Module, train_set: Dataset, loss_fn: LossFn, cfg: TrainConfig,
                 eval_fn: Optional[EvalFn] = None, collate_fn: Optional[Callable] = None) -> None:
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f'cfg must be a TrainConfig, got {type(cfg).__name__}')
        self.cfg, self.loss_fn, self.eval_fn = cfg, loss_fn, eval_fn
        self.dist: DistInfo = init_distributed(cfg.device)
        self.device = self.dist.device
        self.out_dir = Path(cfg.out_dir)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.out_dir)  # left by a run killed while saving
        seed_everything(cfg.seed + self.dist.rank)
        self.amp_dtype = _AMP_DTYPES[cfg.amp]

        self.module = self._prepare_model(model)          # unwrapped model on device
        self.model = self._wrap_ddp(self.module)           # what the loss sees (DDP or module)
        self.sampler = ResumableSampler(train_set, rank=self.dist.rank, world_size=self.dist.world_size,
                                        shuffle=True, seed=cfg.seed)
        self._loader_gen = torch.Generator()
        self.samples = SeededSamples(train_set, seed=cfg.seed)  # augmentation fixed per (epoch, sample)
        self.loader = DataLoader(self.samples, batch_size=cfg.batch_size, sampler=self.sampler,
                                 num_workers=cfg.num_workers, collate_fn=collate_fn,
                                 drop_last=cfg.drop_last, pin_memory=self.device.type == 'cuda',
                                 generator=self._loader_gen, persistent_workers=False)
        self.updates_per_epoch = self._count_updates()
        self.optimizer = build_optimizer(self.module, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.updates_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == 'fp16')
        self.ema = self._make_ema()

        self.epoch, self.step, self.step_in_epoch = 0, 0, 0
        self.best: Optional[float] = None
        self.metrics: Dict[str, float] = {}
        self.losses: List[float] = []
        self.start_step = 0
        self._stop_requested = self._save_due = False
        self._last_save = time.time()
        self.resumed_from = self._maybe_resume()
        self.start_step = self.step

    # ----------------------------------------------------------------------------- setup
    def _prepare_model(self, model: nn.Module) -> nn.Module:
        cfg = self.cfg
        if cfg.grad_checkpointing:
            if not hasattr(model, 'set_grad_checkpointing'):
                raise ValueError(f'grad_checkpointing=True but {type(model).__name__} has no '
                                 f'set_grad_checkpointing(); turn it off for this model')
            model.set_grad_checkpointing(True)
        if self.dist.distributed and cfg.sync_bn:
            if self.device.type == 'cuda':
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif self.dist.is_main:
                warnings.warn('sync_bn: SyncBatchNorm needs CUDA; on CPU each rank keeps its own '
                              'batch statistics (DDP still broadcasts rank 0\'s BN buffers)')
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _wrap_ddp(self, module: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return module
        ids = [self.device.index] if self.device.type == 'cuda' else None
        return DistributedDataParallel(module, device_ids=ids,
                                       find_unused_parameters=self.cfg.find_unused_parameters)

    def _count_updates(self) -> int:
        per_rank = self.sampler.num_samples
        b = self.cfg.batch_size
        batches = per_rank // b if self.cfg.drop_last else math.ceil(per_rank / b)
        updates = batches // self.cfg.grad_accum
        if updates < 1:
            raise ValueError(f'the training set ({len(self.sampler.dataset)} samples, {per_rank} per rank) '
                             f'is smaller than one update (batch_size {b} x grad_accum '
                             f'{self.cfg.grad_accum}); lower batch_size or grad_accum')
        return updates

    def _make_ema(self):
        if self.cfg.ema_decay is None:
            return None
        from timm.utils import ModelEmaV3
        return ModelEmaV3(self.module, decay=self.cfg.ema_decay, use_warmup=self.cfg.ema_warmup)

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def last_path(self) -> Path:
        return self.out_dir / 'last.pth'

    @property
    def best_path(self) -> Path:
        return self.out_dir / 'best.pth'

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue this run exactly (rank 0's view + all ranks' RNG)."""
        return {
            'model': self.module.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None,
            'ema': self.ema.module.state_dict() if self.ema is not None else None,
            'epoch': self.epoch, 'step': self.step, 'step_in_epoch': self.step_in_epoch,
            'updates_per_epoch': self.updates_per_epoch, 'world_size': self.dist.world_size,
            'best': self.best, 'best_metric': self.cfg.best_metric, 'metrics': dict(self.metrics),
            'config': asdict(self.cfg),
            # what the model was built as (its heatmap codec, ...): always present, so a checkpoint
            # without it is known to come from before the engine recorded it
            'pretrained_cfg': json.loads(json.dumps(getattr(self.module, 'pretrained_cfg', None) or {}, default=str)),
            'rng': all_gather_object(capture_rng_state()),
        }

    def save(self, path: Optional[Path] = None, also_best: bool = False) -> None:
        """Write ``last.pth`` (or ``path``), and ``best.pth`` too when ``also_best``. Collective:
        call on every rank (RNG states are gathered); rank 0 writes."""
        state = self.state_dict()
        if self.dist.is_main:
            save_checkpoint(path or self.last_path, state)
            if also_best:
                save_checkpoint(self.best_path, state)
        barrier()
        self._last_save = time.time()

    def _resume_path(self) -> Optional[Path]:
        if self.cfg.resume is None:
            return None
        if self.cfg.resume == 'auto':
            return self.last_path if self.last_path.exists() else None
        return Path(self.cfg.resume)

    def _maybe_resume(self) -> Optional[Path]:
        # rank 0 decides (for 'auto'), so every rank resumes from the same file or none does
        path = broadcast_object(self._resume_path())
        if path is None:
            return None
        if not Path(path).is_file() and self.dist.distributed:
            raise CheckpointError(f'rank {self.dist.rank}: {path} is not visible on this node; put out_dir on '
                                  f'a filesystem shared by all nodes, or copy the checkpoint to every node')
        state = load_checkpoint(path, map_location='cpu')
        self.load_state_dict(state, source=str(path))
        return path

    def load_state_dict(self, state: Mapping[str, Any], source: str = 'checkpoint') -> None:
        """Restore a :meth:`state_dict`; a mismatch is a :class:`CheckpointError`."""
        load_model_state(self.module, state['model'], source)
        if state['step_in_epoch'] and state['updates_per_epoch'] != self.updates_per_epoch:
            raise CheckpointError(
                f'{source} stopped mid-epoch with {state["updates_per_epoch"]} updates per epoch, this run '
                f'has {self.updates_per_epoch} (dataset, batch_size, grad_accum or world size changed); '
                f'resume with the same settings, or from a checkpoint saved at an epoch end')
        try:
            self.optimizer.load_state_dict(state['optimizer'])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f'{source}: optimizer state does not fit this optimizer '
                                  f'({self.cfg.optimizer}): {e}') from e
        self.scheduler.load_state_dict(state['scheduler'])
        if self.scaler.is_enabled() and state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        if self.ema is not None:
            if state.get('ema') is None:
                warnings.warn(f'{source} has no EMA weights; the EMA starts from the resumed model')
                self.ema.module.load_state_dict(self.module.state_dict())
            else:
                load_model_state(self.ema.module, state['ema'], f'{source} (EMA)')
        self.epoch, self.step, self.step_in_epoch = state['epoch'], state['step'], state['step_in_epoch']
        self.best, self.metrics = state.get('best'), dict(state.get('metrics') or {})
        rngs = state.get('rng') or []
        if len(rngs) == self.dist.world_size:
            restore_rng_state(rngs[self.dist.rank])
        else:
            warnings.warn(f'{source} was written by {len(rngs)} process(es), this run has '
                          f'{self.dist.world_size}: RNG streams are re-seeded, not restored')
            seed_everything(self.cfg.seed + self.dist.rank + 1000 * self.step)

    # ----------------------------------------------------------------------------- loop
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _install_signal_handlers(self):
        if not self.cfg.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):
            self._stop_requested = True
            signal.signal(signum, old[signum])  # a second signal acts as usual

        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, request_stop)
        return old

    def fit(self) -> Dict[str, Any]:
        """Train until ``cfg.epochs`` (or ``cfg.max_steps`` updates, or a SIGTERM / SIGINT) and
        return ``{'metrics', 'best', 'best_metric', 'steps', 'start_step', 'epochs_completed',
        'losses', 'interrupted', 'last_checkpoint', 'best_checkpoint', 'time_s'}``."""
        cfg, t0 = self.cfg, time.time()
        old_handlers = self._install_signal_handlers()
        self._open_logs()
        stopped = False
        try:
            while self.epoch < cfg.epochs and not stopped:
                epoch_loss = self._train_epoch(self.epoch)
                stopped = self._should_stop()
                if self.step_in_epoch < self.updates_per_epoch:  # stopped mid-epoch
                    self._broadcast_buffers()
                    self.save()
                    break
                self._end_epoch(epoch_loss, t0)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self._close_logs()
        return {
            'metrics': dict(self.metrics), 'best': self.best, 'best_metric': cfg.best_metric,
            'steps': self.step, 'start_step': self.start_step, 'epochs_completed': self.epoch,
            'losses': list(self.losses), 'interrupted': self._stop_requested,
            'last_checkpoint': str(self.last_path) if self.last_path.exists() else None,
            'best_checkpoint': str(self.best_path) if self.best_path.exists() else None,
            'time_s': time.time() - t0,
        }

    def _should_stop(self) -> bool:
        return self._stop_requested or (self.cfg.max_steps is not None and self.step >= self.cfg.max_steps)

    def _train_epoch(self, epoch: int) -> float:
        cfg, accum = self.cfg, self.cfg.grad_accum
        start = self.step_in_epoch
        self.sampler.set_epoch(epoch, start=start * cfg.batch_size * accum)
        self._loader_gen.manual_seed(cfg.seed * 1_000_003 + epoch)  # worker seeds depend on (seed, epoch)
        self.samples.epoch = epoch  # before iter(): the workers get their copy then
        self.model.train()
        batches = iter(self.loader)
        losses: List[float] = []
        bar = self._progress_bar(epoch, start)
        try:
            for _ in range(start, self.updates_per_epoch):
                if self._should_stop():
                    break
                loss = self._train_step(batches)
                losses.append(loss)
                self._after_step(epoch, loss, bar)
        finally:
            if bar is not None:
                bar.close()
            del batches
        return float(np.mean(losses)) if losses else float('nan')

    def _train_step(self, batches) -> float:
        """One optimizer update over ``grad_accum`` micro-batches; returns the mean loss over
        micro-batches and ranks."""
        accum = self.cfg.grad_accum
        self.scheduler.step_update(self.step)
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            batch = _to_device(next(batches), self.device, self.cfg.channels_last)
            sync = (self.model.no_sync() if isinstance(self.model, DistributedDataParallel)
                    and micro < accum - 1 else contextlib.nullcontext())
            with sync:
                with self._autocast():
                    loss = self.loss_fn(self.model, batch)
                if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                    raise TypeError(f'loss_fn must return a scalar tensor, got {type(loss).__name__} '
                                    f'{tuple(getattr(loss, "shape", ()))}')
                self.scaler.scale(loss.float() / accum).backward()
            total += loss.detach().float()
        # one collective for the logged loss and the stop / save flags, so every rank agrees on all
        minutes = self.cfg.save_every_min
        flags = torch.tensor([float(self._stop_requested),
                              float(minutes is not None and time.time() - self._last_save >= 60 * minutes)],
                             device=self.device)
        reduced = all_reduce_mean(torch.cat([(total / accum).view(1), flags]))
        loss_value = float(reduced[0])
        self._stop_requested, self._save_due = bool(reduced[1] > 0), bool(reduced[2] > 0)
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f'loss is {loss_value} at step {self.step} (epoch {self.epoch}); the weights were not '
                f'updated. Lower the lr, add warmup or clip_grad, or use amp="bf16"; '
                f'{self.last_path} holds the last good state')
        if self.cfg.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.step_in_epoch += 1
        if self.ema is not None:
            self.ema.update(self.module, step=self.step)
        return loss_value

    def _after_step(self, epoch: int, loss: float, bar) -> None:
        self.losses.append(loss)
        lr = self.optimizer.param_groups[0]['lr']
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f'{loss:.4f}', lr=f'{lr:.3g}', refresh=False)
        if self.dist.is_main and (self.step % self.cfg.log_every == 0 or self.step == 1):
            self._step_log.write({'epoch': epoch, 'step': self.step, 'lr': lr, 'loss': loss,
                                  'time_s': round(time.time() - self._t_start, 3)})
            if self._tb is not None:
                self._tb.add_scalar('train/loss', loss, self.step)
                self._tb.add_scalar('train/lr', lr, self.step)
        every = self.cfg.save_every_steps
        epoch_end = self.step_in_epoch == self.updates_per_epoch  # _end_epoch saves right after
        if ((every and self.step % every == 0) or self._save_due) and not epoch_end:
            self.save()

    def _broadcast_buffers(self) -> None:
        """Give every rank rank 0's buffers (BN running statistics), as DDP does before each
        forward: without SyncBatchNorm the ranks' statistics drift apart within a step."""
        if isinstance(self.model, DistributedDataParallel):
            for buf in self.module.buffers():
                torch.distributed.broadcast(buf, src=0)

    def _end_epoch(self, epoch_loss: float, t0: float) -> None:
        self._broadcast_buffers()
        epoch = self.epoch
        self.epoch, self.step_in_epoch = epoch + 1, 0
        improved = False
        if self.eval_fn is not None and (self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs):
            self.metrics = self.evaluate()
            improved = self._update_best()
        if self.dist.is_main:
            row = {'epoch': epoch, 'step': self.step, 'train_loss': epoch_loss,
                   'lr': self.optimizer.param_groups[0]['lr'], 'time_s': round(time.time() - t0, 3),
                   **self.metrics, 'best': self.best}
            with open(self.out_dir / 'metrics.jsonl', 'a') as f:
                f.write(json.dumps(row) + '\n')
            if self._tb is not None:
                for k, v in self.metrics.items():
                    self._tb.add_scalar(f'eval/{k}', v, self.step)
        self.save(also_best=improved)

    def _update_best(self) -> bool:
        key = self.cfg.best_metric
        if key not in self.metrics:
            raise KeyError(f'eval_fn returned {sorted(self.metrics)}, but TrainConfig.best_metric is '
                           f'{key!r}; set best_metric to one of those names')
        value = self.metrics[key]
        better = (self.best is None or (value > self.best if self.cfg.best_mode == 'max' else value < self.best))
        if better:
            self.best = value
        return better

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Run ``eval_fn`` (and on the EMA weights, if any); see the class docstring."""
        metrics: Dict[str, float] = {}
        if self.cfg.eval_all_ranks or self.dist.is_main:
            rng = capture_rng_state()  # evaluating must not change the training run's random numbers
            try:
                metrics = self._run_eval(self.module, '')
                if self.ema is not None:
                    metrics.update(self._run_eval(self.ema.module, 'ema_'))
            finally:
                restore_rng_state(rng)
        if not self.cfg.eval_all_ranks:
            metrics = broadcast_object(metrics)
        return metrics

    def _run_eval(self, model: nn.Module, prefix: str) -> Dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            with self._autocast():
                out = self.eval_fn(model)
        finally:
            model.train(was_training)
        if not isinstance(out, Mapping):
            raise TypeError(f'eval_fn must return a dict of metric name -> number, got {type(out).__name__}')
        return {prefix + k: float(v) for k, v in out.items()}

    # ----------------------------------------------------------------------------- logging
    def _progress_bar(self, epoch: int, start: int):
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.updates_per_epoch, initial=start, desc=f'epoch {epoch + 1}/{self.cfg.epochs}',
                    dynamic_ncols=True, leave=False)

    def _open_logs(self) -> None:
        self._t_start = time.time()
        self._step_log, self._tb = None, None
        if not self.dist.is_main:
            return
        resume_step = self.step if self.resumed_from is not None else None
        self._step_log = _CsvLog(self.out_dir / 'log.csv', ['epoch', 'step', 'lr', 'loss', 'time_s'], resume_step)
        if resume_step is not None:
            _truncate_jsonl(self.out_dir / 'metrics.jsonl', resume_step)
        if self.cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out_dir / 'tb'))
            except ImportError:
                warnings.warn('tensorboard=True but the tensorboard package is not installed '
                              '(pip install tensorboard); continuing with the CSV log only')

    def _close_logs(self) -> None:
        if self._step_log is not None:
            self._step_log.close()
        if self._tb is not None:
            self._tb.close()
