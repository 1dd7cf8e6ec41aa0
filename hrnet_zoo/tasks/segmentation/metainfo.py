"""Segmentation datasets as data: each one's class names, palette and label convention, read from
mmsegmentation's dataset classes (``mmseg/datasets/*.py`` ``METAINFO``, mmsegmentation 1.2.2; the
class and file are named per entry) so that every model of the table can name its outputs.

``reduce_zero_label`` is the dataset class's default: its label files count the classes from 1 and
keep 0 for "unlabelled"; mmseg's ``LoadAnnotations(reduce_zero_label=True)`` maps 0 -> 255 (ignored)
and k -> k - 1 (ADE20K, PASCAL-Context 59, LoVeDA, Potsdam, Vaihingen): :func:`label_map` gives that
map for our datasets' ``label_map=``. The keys are the ``dataset`` of the model specs:

- ``pascal_context`` is the 59-class set (mmseg's ``PascalContextDataset59``; the official
  HRNet-Semantic-Segmentation PASCAL-Context models use the same 59 classes), ``pascal_context_60``
  the 60-class one with ``background`` (mmseg's ``PascalContextDataset``);
- ``voc12aug`` is PASCAL VOC 2012 with the SBD augmentation (21 classes, ``PascalVOCDataset``);
- ``vaihingen`` is mmseg's ``ISPRSDataset``;
- ``lip`` (``LIPDataset``): the official LIP models' 20 classes (left/right pairs 14/15, 16/17, 18/19).

ADE20K's ``'bed '`` carries a trailing space in mmseg; it is stripped here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

__all__ = ['SegDataset', 'DATASETS', 'get_dataset', 'label_map']

Colour = Tuple[int, int, int]
MMSEG_DATASETS = 'https://github.com/open-mmlab/mmsegmentation/tree/v1.2.2/mmseg/datasets/'


@dataclass(frozen=True)
class SegDataset:
    """One dataset's metadata: ``name`` (our key), mmseg's dataset class and file it was read from,
    whether its label files reserve 0 for "unlabelled" (``reduce_zero_label``), class names and
    RGB palette (one colour per class)."""
    name: str
    mmseg_class: str
    source_file: str
    reduce_zero_label: bool
    classes: Tuple[str, ...]
    palette: Tuple[Colour, ...]

    def __post_init__(self):
        if len(self.classes) != len(self.palette):
            raise ValueError(f'{self.name}: {len(self.classes)} classes but {len(self.palette)} colours')

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def source(self) -> str:
        """Where the table was read: mmseg's file and class."""
        return f'{MMSEG_DATASETS}{self.source_file} {self.mmseg_class}.METAINFO'


# ADE20K's 150 colours; mmseg's PASCAL-Context tables reuse them (60 classes: the first 60, 59: colours 1-59)
_ADE20K_PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70),
    (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200),
    (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220),
    (255, 9, 92), (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0), (0, 0, 255),
    (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245),
    (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0),
    (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0),
    (0, 255, 153), (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194), (0, 255, 82),
    (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0),
    (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170),
    (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112),
    (92, 255, 0), (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0),
    (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255),
    (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0),
    (25, 194, 194), (102, 255, 0), (92, 0, 255))
# Potsdam and Vaihingen (ISPRSDataset): the same six classes and colours
_ISPRS = (
    ('impervious_surface', 'building', 'low_vegetation', 'tree', 'car', 'clutter'),
    ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)))

_TABLES = {
    'cityscapes': ('CityscapesDataset', 'cityscapes.py', False,
        ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
         'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'),
        ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
         (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
         (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))),
    'ade20k': ('ADE20KDataset', 'ade.py', True,
        ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass', 'cabinet',
         'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
         'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
         'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
         'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand',
         'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge',
         'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove',
         'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus',
         'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
         'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet',
         'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything',
         'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven',
         'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher',
         'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier',
         'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag'),
        _ADE20K_PALETTE),
    'voc12aug': ('PascalVOCDataset', 'voc.py', False,
        ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
         'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'),
        ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
         (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
         (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128))),
    'pascal_context': ('PascalContextDataset59', 'pascal_context.py', True,
        ('aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle', 'building',
         'bus', 'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog',
         'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light', 'motorbike',
         'mountain', 'mouse', 'person', 'plate', 'platform', 'pottedplant', 'road', 'rock', 'sheep', 'shelves',
         'sidewalk', 'sign', 'sky', 'snow', 'sofa', 'table', 'track', 'train', 'tree', 'truck', 'tvmonitor', 'wall',
         'water', 'window', 'wood'),
        _ADE20K_PALETTE[1:60]),
    'pascal_context_60': ('PascalContextDataset', 'pascal_context.py', False,
        ('background', 'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle',
         'building', 'bus', 'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain',
         'dog', 'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light',
         'motorbike', 'mountain', 'mouse', 'person', 'plate', 'platform', 'pottedplant', 'road', 'rock', 'sheep',
         'shelves', 'sidewalk', 'sign', 'sky', 'snow', 'sofa', 'table', 'track', 'train', 'tree', 'truck',
         'tvmonitor', 'wall', 'water', 'window', 'wood'),
        _ADE20K_PALETTE[:60]),
    'lip': ('LIPDataset', 'lip.py', False,
        ('Background', 'Hat', 'Hair', 'Glove', 'Sunglasses', 'UpperClothes', 'Dress', 'Coat', 'Socks', 'Pants',
         'Jumpsuits', 'Scarf', 'Skirt', 'Face', 'Left-arm', 'Right-arm', 'Left-leg', 'Right-leg', 'Left-shoe',
         'Right-shoe'),
        ((0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85), (0, 119, 221),
         (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221),
         (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0))),
    'loveda': ('LoveDADataset', 'loveda.py', True,
        ('background', 'building', 'road', 'water', 'barren', 'forest', 'agricultural'),
        ((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0), (255, 195, 128))),
    'potsdam': ('PotsdamDataset', 'potsdam.py', True, *_ISPRS),
    'vaihingen': ('ISPRSDataset', 'isprs.py', True, *_ISPRS),
    'isaid': ('iSAIDDataset', 'isaid.py', False,
        ('background', 'ship', 'store_tank', 'baseball_diamond', 'tennis_court', 'basketball_court',
         'Ground_Track_Field', 'Bridge', 'Large_Vehicle', 'Small_Vehicle', 'Helicopter', 'Swimming_pool',
         'Roundabout', 'Soccer_ball_field', 'plane', 'Harbor'),
        ((0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255), (0, 127, 63),
         (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 191, 127), (0, 127, 191), (0, 127, 255),
         (0, 100, 155))),
}

DATASETS: Dict[str, SegDataset] = {name: SegDataset(name, *values) for name, values in _TABLES.items()}


def get_dataset(name: str) -> SegDataset:
    """The metadata of dataset ``name`` (a key of :data:`DATASETS`); a clear error otherwise."""
    if name not in DATASETS:
        raise KeyError(f'unknown segmentation dataset {name!r}; known: {", ".join(DATASETS)}')
    return DATASETS[name]


def label_map(name: str) -> Dict[int, int]:
    """Raw label -> class index for dataset ``name``'s label files: with ``reduce_zero_label``
    ``{k: k - 1}`` for k = 1..255 (0, "unlabelled", and 255 become the ignore index, as mmseg's
    ``LoadAnnotations``), else the identity over the classes (other values are ignored)."""
    ds = get_dataset(name)
    if ds.reduce_zero_label:
        return {k: k - 1 for k in range(1, 256) if k - 1 < ds.num_classes}
    return {k: k for k in range(ds.num_classes)}
