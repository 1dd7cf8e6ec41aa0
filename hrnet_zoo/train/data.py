"""Datasets for classifier training: ImageNet-style data through timm's pipeline, and a tiny
real dataset (scikit-learn's handwritten digits) for smoke runs and tests.

``build_datasets`` turns a recipe's ``data`` section into timm transforms
(``timm.data.create_transform``: random-resized crop + flip for training, resize + centre crop
for evaluation) on datasets from ``timm.data.create_dataset`` (an ImageFolder tree by default;
any dataset string timm accepts, e.g. ``torch/cifar10``, ``hfds/...``).

:class:`SeededSamples` (used by the engine for every training set) fixes each sample's random
augmentation by ``(seed, epoch, sample index)``, which is what makes a resumed run exact with
any number of data-loader workers.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

__all__ = ['DigitsDataset', 'SeededSamples', 'build_datasets', 'build_transforms', 'DIGITS']


@contextlib.contextmanager
def seeded_rng(*key: int, restore: bool = True) -> Iterator[None]:
    """Seed python's ``random``, numpy's global generator and torch's CPU generator from ``key``
    (mixed by numpy's ``SeedSequence``) for the block; with ``restore``, give back the caller's
    states afterwards (saving numpy's state is most of the cost: skip it where nothing else
    draws from these generators)."""
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state()) if restore else None
    torch_seed, py_seed, np_seed = np.random.SeedSequence([k % 2**64 for k in key]).generate_state(3, np.uint64)
    random.seed(int(py_seed))
    np.random.seed(int(np_seed) % 2**32)
    torch.random.default_generator.manual_seed(int(torch_seed))
    try:
        yield
    finally:
        if states is not None:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.random.set_rng_state(states[2])


class SeededSamples(Dataset):
    """``dataset`` whose sample ``i`` is loaded with random numbers fixed by ``(seed, epoch, i)``
    (python ``random``, numpy's global generator, torch's CPU generator: what torchvision, timm
    and albumentations transforms draw from; see :func:`seeded_rng`).

    A sample's augmentation then depends neither on the worker process that loads it nor on how
    many samples that worker loaded before, so a run resumed mid-epoch, with any number of
    workers or processes, augments every remaining sample as the uninterrupted run does. In the
    main process (``num_workers=0``) the caller's random streams are restored after each sample,
    so dropout and Mixup in the training loop draw the same numbers as with workers. Set ``epoch``
    before creating the epoch's DataLoader iterator (workers receive a copy at that point)."""

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        # a worker process's generators serve only its samples: no state to give back there
        in_worker = get_worker_info() is not None
        with seeded_rng(self.seed, self.epoch, int(i), restore=not in_worker):
            return self.dataset[i]

DIGITS = 'digits'


class DigitsDataset(Dataset):
    """scikit-learn's 1797 handwritten digits (8x8, 10 classes, shipped with the package),
    upsampled (bilinear) to ``size`` x ``size`` and repeated to 3 channels, values in [-1, 1].

    ``split``: ``'train'`` or ``'test'``, a stratified hold-out of ``test_fraction`` fixed by
    ``seed`` (the same seed always gives the same split, disjoint between the two)."""

    num_classes = 10

    def __init__(self, split: str = 'train', size: int = 64, test_fraction: float = 0.2, seed: int = 0) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f'split must be "train" or "test", got {split!r}')
        if size < 8:
            raise ValueError(f'size must be >= 8 (the digits are 8x8), got {size}')
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        digits = load_digits()
        idx_train, idx_test = train_test_split(np.arange(len(digits.target)), test_size=test_fraction,
                                               random_state=seed, stratify=digits.target)
        idx = idx_train if split == 'train' else idx_test
        images = torch.from_numpy(digits.images[idx]).float().unsqueeze(1) / 16.0  # N,1,8,8 in [0,1]
        images = F.interpolate(images, size=(size, size), mode='bilinear', align_corners=False)
        self.images = (images - 0.5) / 0.5
        self.targets = torch.from_numpy(digits.target[idx]).long()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.images[i].expand(3, -1, -1), self.targets[i]


def build_transforms(data_cfg: Mapping[str, Any]) -> Tuple[Any, Any]:
    """(train, eval) transforms from a recipe's ``data`` section via ``timm.data.create_transform``."""
    from timm.data import create_transform
    size = data_cfg['train_size']
    train_tf = create_transform(size, is_training=True, scale=tuple(data_cfg['scale']),
                                ratio=tuple(data_cfg['ratio']), hflip=data_cfg['hflip'],
                                color_jitter=data_cfg.get('color_jitter'),
                                auto_augment=data_cfg.get('auto_augment'),
                                interpolation=data_cfg['interpolation'],
                                re_prob=data_cfg.get('re_prob', 0.0))
    eval_tf = create_transform(data_cfg['eval_size'], is_training=False,
                               crop_pct=data_cfg['eval_size'] / data_cfg['eval_resize'],
                               interpolation=data_cfg['interpolation'])
    return train_tf, eval_tf


def build_datasets(dataset: str, data_dir: Optional[str], data_cfg: Mapping[str, Any],
                   train_split: str = 'train', eval_split: str = 'validation') -> Tuple[Dataset, Dataset, int]:
    """(train_set, eval_set, num_classes). ``dataset='digits'`` gives :class:`DigitsDataset`
    (no download, at ``data_cfg['train_size']``); anything else goes to timm's ``create_dataset``
    (``''`` = an ImageFolder tree under ``data_dir`` with ``train/`` and ``val/`` folders)."""
    if dataset == DIGITS:
        size = data_cfg['train_size']
        return DigitsDataset('train', size=size), DigitsDataset('test', size=size), DigitsDataset.num_classes
    if not data_dir and not dataset:
        raise ValueError('no data: pass --data-dir DIR (an ImageFolder tree with train/ and val/), '
                         'or --dataset NAME (a timm dataset string, or "digits" for a quick demo)')
    from timm.data import create_dataset
    train_tf, eval_tf = build_transforms(data_cfg)
    train_set = create_dataset(dataset, root=data_dir, split=train_split, is_training=True)
    eval_set = create_dataset(dataset, root=data_dir, split=eval_split, is_training=False)
    train_set.transform, eval_set.transform = train_tf, eval_tf
    num_classes = _count_classes(train_set)
    return train_set, eval_set, num_classes


def _count_classes(ds: Dataset) -> int:
    reader = getattr(ds, 'reader', None)
    class_to_idx = getattr(reader, 'class_to_idx', None) or getattr(ds, 'class_to_idx', None)
    if class_to_idx:
        return len(class_to_idx)
    classes = getattr(ds, 'classes', None)
    if classes is not None:
        return len(classes)
    raise ValueError('cannot tell the number of classes of this dataset; pass --num-classes')
