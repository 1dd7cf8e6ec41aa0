"""Training: the engine every task reuses, ImageNet recipes as data, checkpoints with exact resume.

``python -m hrnet_zoo.train --recipe paper --model hrnet_w32 --data-dir /imagenet`` trains a
classifier; ``torchrun --nproc_per_node N -m hrnet_zoo.train ...`` does the same with DDP.
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .engine import TrainConfig, Trainer, seed_everything
from .optim import build_optimizer, build_scheduler, lr_at

__all__ = ['Trainer', 'TrainConfig', 'seed_everything', 'save_checkpoint', 'load_checkpoint',
           'CheckpointError', 'build_optimizer', 'build_scheduler', 'lr_at']
