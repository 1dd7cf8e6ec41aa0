"""Segmentation data (:mod:`hrnet_zoo.tasks.segmentation.data`: datasets and their input checks,
palette / overlay) and the paired image/mask transforms (``.transforms`` on torchvision v2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from hrnet_zoo.tasks.segmentation.data import (CITYSCAPES_ID_TO_TRAINID, CityscapesList, CityscapesTorchvision,
                                               ImageMaskFolder, SyntheticShapes, colorize, overlay, palette)
from hrnet_zoo.tasks.segmentation.transforms import (Normalize, RandomCrop, RandomHorizontalFlip, RandomScale,
                                                     train_transforms)


# --- transforms --------------------------------------------------------------------------------

def test_train_transforms_give_crops_and_normalised_images():
    torch.manual_seed(1)
    t = train_transforms((48, 40))
    image = torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8)
    mask = torch.randint(0, 3, (30, 50))
    for _ in range(5):
        x, y = t(image, mask)
        assert x.shape == (3, 48, 40) and y.shape == (48, 40) and x.dtype == torch.float32
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 255}


def test_crop_pads_the_mask_with_ignore_and_scale_keeps_labels():
    x, y = RandomCrop((8, 8))(torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long))
    assert (y == 255).sum() == 64 - 16
    mask = torch.tensor([[0, 1], [2, 3]])
    _, scaled = RandomScale((2.0, 2.0))(torch.zeros(3, 2, 2), mask)
    assert scaled.shape == (4, 4) and set(scaled.unique().tolist()) == {0, 1, 2, 3}


def test_transform_rejects_image_mask_size_mismatch():
    with pytest.raises(ValueError, match='differ'):
        train_transforms((8, 8))(torch.zeros(3, 10, 10), torch.zeros(9, 10, dtype=torch.long))


def test_transforms_are_v2_on_tv_tensors_and_plain_pairs():
    image = torch.randint(0, 256, (3, 6, 8), dtype=torch.uint8)
    mask = torch.randint(0, 3, (6, 8))
    x, y = Normalize()(image, mask)  # plain tensors in, plain tensors out
    assert type(x) is torch.Tensor and type(y) is torch.Tensor and y.dtype == torch.int64
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(x, (image / 255.0 - mean) / std)
    ti, tm = RandomHorizontalFlip(p=1.0)(tv_tensors.Image(image), tv_tensors.Mask(mask))  # v2 inputs stay v2
    assert isinstance(ti, tv_tensors.Image) and isinstance(tm, tv_tensors.Mask)
    assert torch.equal(tm, mask.flip(-1)) and torch.equal(ti, image.flip(-1))


def test_flip_swaps_left_right_labels():
    mask = torch.tensor([[14, 15, 0, 255], [16, 17, 18, 19]])
    _, flipped = RandomHorizontalFlip(p=1.0, flip_pairs=((14, 15), (16, 17), (18, 19)))(torch.zeros(3, 2, 4), mask)
    assert flipped.tolist() == [[255, 0, 14, 15], [18, 19, 16, 17]]


# --- datasets ----------------------------------------------------------------------------------

def _write_pair(folder, name, image, mask):
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    (folder / 'masks').mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / 'images' / f'{name}.jpg')
    Image.fromarray(mask).save(folder / 'masks' / f'{name}.png')


def test_image_mask_folder(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:20] = 2
    mask[0, 0] = 255
    _write_pair(tmp_path, 'a', np.zeros((20, 30, 3), np.uint8), mask)
    ds = ImageMaskFolder(tmp_path, num_classes=3)
    image, m = ds[0]
    assert image.shape == (3, 20, 30) and image.dtype == torch.uint8
    assert torch.equal(m, torch.from_numpy(mask.astype(np.int64)))


def test_folder_rejects_bad_masks(tmp_path):
    bad = np.zeros((20, 30), np.uint8)
    bad[0, :3] = 7
    _write_pair(tmp_path / 'values', 'a', np.zeros((20, 30, 3), np.uint8), bad)
    with pytest.raises(ValueError, match=r'mask values \[7\] are outside the 3 classes'):
        ImageMaskFolder(tmp_path / 'values', num_classes=3)[0]
    _write_pair(tmp_path / 'size', 'a', np.zeros((20, 30, 3), np.uint8), np.zeros((21, 30), np.uint8))
    with pytest.raises(ValueError, match='differ'):
        ImageMaskFolder(tmp_path / 'size', num_classes=3)[0]
    (tmp_path / 'nomask' / 'images').mkdir(parents=True)
    (tmp_path / 'nomask' / 'masks').mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'nomask' / 'images' / 'x.png')
    with pytest.raises(FileNotFoundError, match='no mask'):
        ImageMaskFolder(tmp_path / 'nomask', num_classes=3)


def test_cityscapes_list_maps_label_ids(tmp_path):
    ids = np.array([[7, 8, 0, 26], [33, 24, 3, 255]], np.uint8)
    (tmp_path / 'leftImg8bit').mkdir()
    (tmp_path / 'gtFine').mkdir()
    Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(tmp_path / 'leftImg8bit' / 'x.png')
    Image.fromarray(ids).save(tmp_path / 'gtFine' / 'x_gtFine_labelIds.png')
    (tmp_path / 'val.lst').write_text('leftImg8bit/x.png gtFine/x_gtFine_labelIds.png\n')
    _, mask = CityscapesList(tmp_path, 'val.lst')[0]
    assert mask.tolist() == [[0, 1, 255, 13], [18, 11, 255, 255]]
    assert CITYSCAPES_ID_TO_TRAINID[26] == 13 and len(CITYSCAPES_ID_TO_TRAINID) == 19


def test_synthetic_shapes_and_colorize():
    ds = SyntheticShapes(3, 64, 4, seed=3)
    image, mask = ds[1]
    again, mask2 = SyntheticShapes(3, 64, 4, seed=3)[1]
    assert torch.equal(image, again) and torch.equal(mask, mask2)  # deterministic
    assert mask.max() >= 1 and mask.max() < 4
    png = colorize(mask, 4)
    assert png.mode == 'P' and png.size == (64, 64)
    assert colorize(torch.full((2, 2), 255), 19).convert('RGB').getpixel((0, 0)) == (255, 255, 255)


def test_overlay_blends_the_palette_colours():
    image = torch.zeros(3, 2, 3, dtype=torch.uint8)
    labels = torch.tensor([[0, 1, 2], [2, 1, 0]])
    out = overlay(image, labels, 19, alpha=1.0)
    assert out.size == (3, 2) and out.getpixel((1, 0)) == palette(19)[1] and out.getpixel((0, 1)) == palette(19)[2]


def test_cityscapes_through_torchvision(tmp_path):
    img_dir = tmp_path / 'leftImg8bit' / 'val' / 'aachen'
    gt_dir = tmp_path / 'gtFine' / 'val' / 'aachen'
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(img_dir / 'aachen_000000_000019_leftImg8bit.png')
    ids = np.array([[7, 11, 1], [23, 26, 33]], np.uint8)
    Image.fromarray(ids).save(gt_dir / 'aachen_000000_000019_gtFine_labelIds.png')
    ds = CityscapesTorchvision(tmp_path, 'val')
    image, mask = ds[0]
    assert len(ds) == 1 and image.shape == (3, 2, 3)
    assert mask.tolist() == [[0, 2, 255], [10, 13, 18]] and ds.class_names[10] == 'sky'
