"""hrnet_zoo.tasks.drawing: people (per-person colours, track ids), landmarks, segmentation masks
and detections on (3, H, W) uint8 frames, the PIL drawing of the predict commands, atomic PNGs.
Expected pixels are worked out from torchvision's drawing rules (noted at each check)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_zoo.tasks.drawing import (COLORS, as_uint8_image, draw_detections, draw_keypoints, draw_landmarks,
                                     draw_people, draw_segmentation, save_png)

H, W = 60, 80


def px(image: torch.Tensor, x: int, y: int):
    return tuple(image[:, y, x].tolist())


def test_people_get_their_track_colour_and_hidden_joints_stay_hidden():
    image = torch.zeros(3, H, W, dtype=torch.uint8)
    kpts = np.array([[[20, 30], [40, 30], [30, 55]], [[60, 20], [70, 20], [70, 40]]], np.float32)
    scores = np.array([[0.9, 0.9, 0.1], [0.9, 0.9, 0.9]])
    out = draw_people(image, kpts, scores, skeleton=[(0, 1), (1, 2)], track_ids=[3, 12])
    assert out.dtype == torch.uint8 and out.shape == image.shape and image.sum() == 0  # a copy
    assert px(out, 40, 30) == px(out, 37, 30) == COLORS[3]  # track 3 -> colour 3: a dot, limb (0, 1)
    assert px(out, 30, 55) == (0, 0, 0) and px(out, 35, 43) == (0, 0, 0)  # score 0.1 <= 0.2: no dot, no limb
    assert px(out, 70, 30) == COLORS[12 % 10]  # track 12 -> colour 2, limb (1, 2)
    # no boxes given: each id's label box runs around its visible keypoints grown by 2 x radius
    # (radius max(2, 60 / 150) = 2): person 3 spans x 20..40 -> box edges at x = 16 and 44
    assert px(out, 44, 30) == COLORS[3]
    # the label '#3' sits on a patch of colour 3 inside the box's top-left corner (16, 26), in
    # white (luma of (0, 130, 200) = 0.587 * 130 + 0.114 * 200 = 99 < 128); Pillow antialiases it
    patch = out[:, 29:39, 16:32].reshape(3, -1).T
    assert (patch == torch.tensor(COLORS[3])).all(1).sum() > 40 and (patch.min(1).values > 180).any()


def test_people_with_boxes_and_no_ids():
    image = torch.zeros(3, H, W, dtype=torch.uint8)
    out = draw_people(image, np.array([[[20, 20]], [[50, 40]]]), boxes=[[5, 5, 30, 30], [40, 30, 20, 20]])
    assert px(out, 20, 20) == COLORS[0] and px(out, 50, 40) == COLORS[1]  # colour by position
    assert px(out, 5, 20) == COLORS[0] and px(out, 60, 40) == COLORS[1]  # [x, y, w, h] edges: x 5, x 40 + 20
    assert draw_people(image, np.zeros((0, 17, 2))).sum() == 0  # nobody: unchanged


def test_landmarks_and_face_box():
    out = draw_landmarks(torch.zeros(3, H, W, dtype=torch.uint8), [[20, 20], [40, 30]], box=[10, 10, 40, 30])
    assert px(out, 20, 20) == px(out, 40, 30) == (0, 255, 0)
    assert px(out, 30, 10) == (255, 255, 255) and px(out, 50, 25) == (255, 255, 255)  # box x 10..50, y 10..40


def test_segmentation_blends_the_palette_and_leaves_ignore_alone():
    image = torch.full((3, H, W), 100, dtype=torch.uint8)
    labels = torch.full((H, W), 255)
    labels[:, :40] = 0
    labels[:10, :10] = 11
    out = draw_segmentation(image, labels, num_classes=19)
    # Cityscapes colours: road (128, 64, 128), person (220, 20, 60); alpha 0.5:
    # 0.5 * 100 + 0.5 * (128, 64, 128) = (114, 82, 114); 0.5 * 100 + 0.5 * (220, 20, 60) = (160, 60, 80)
    assert px(out, 20, 30) == (114, 82, 114) and px(out, 5, 5) == (160, 60, 80)
    assert px(out, 60, 30) == (100, 100, 100)  # 255 = ignore: not drawn
    with pytest.raises(ValueError, match='differ in size'):
        draw_segmentation(image, labels[:10], 19)


def test_detections_boxes_labels_and_masks():
    image = torch.zeros(3, H, W, dtype=torch.uint8)
    masks = torch.zeros(1, 1, H, W)
    masks[..., 20:25, 20:25] = 0.9
    out = draw_detections(image, [[5, 5, 40, 30]], labels=[1], scores=[0.93], masks=masks,
                          class_names=['background', 'person'])
    assert px(out, 20, 5) == COLORS[1]  # top edge in the colour of class 1
    # mask: 0.6 * 0 + 0.4 * (60, 180, 75) = (24, 72, 30)
    assert px(out, 22, 22) == (24, 72, 30)
    plain = draw_detections(image, [[5, 5, 40, 30]], labels=[1])
    assert not torch.equal(plain, draw_detections(image, [[5, 5, 40, 30]]))  # the label text is drawn
    assert draw_detections(image, np.zeros((0, 4))).sum() == 0


def test_as_uint8_image_accepts_every_image_type():
    arr = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ref = torch.from_numpy(arr).permute(2, 0, 1)
    assert torch.equal(as_uint8_image(arr), ref) and torch.equal(as_uint8_image(Image.fromarray(arr)), ref)
    assert as_uint8_image(torch.full((3, 2, 2), 0.2)).unique().tolist() == [51]  # 0.2 * 255 = 51
    with pytest.raises(ValueError, match='3, H, W'):
        as_uint8_image(torch.zeros(1, 4, 4))


def test_draw_keypoints_keeps_its_pil_interface():
    im = Image.new('RGB', (W, H))
    out = draw_keypoints(im, np.array([[[10, 10], [30, 30]]]), np.array([[0.9, 0.9]]), skeleton=[(0, 1)],
                         box=[5, 5, 50, 40])
    assert isinstance(out, Image.Image) and out.size == (W, H)
    assert out.getpixel((10, 10)) == COLORS[0] and out.getpixel((30, 30)) == COLORS[1]  # colour per keypoint


def test_save_png_is_atomic_and_takes_tensors(tmp_path):
    image = torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    path = tmp_path / 'sub' / 'a.png'
    assert save_png(image, str(path)) == str(path)
    assert torch.equal(as_uint8_image(Image.open(path)), image)
    save_png(Image.new('RGB', (4, 4)), str(path))  # replaces it
    assert Image.open(path).size == (4, 4) and [p.name for p in path.parent.iterdir()] == ['a.png']
