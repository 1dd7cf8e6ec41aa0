"""Segmentation: model shapes / params / official key map, loss (ignore, OHEM), mIoU, transforms,
sliding-window and multi-scale inference, datasets and their input checks."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import hrnet_zoo
from hrnet_zoo.tasks.segmentation import (SEG_MODELS, HRNetSegmentation, build_segmentation_model,
                                          convert_official_state_dict, load_official_checkpoint)
from hrnet_zoo.tasks.segmentation.datasets import (CITYSCAPES_ID_TO_TRAINID, CityscapesList, ImageMaskFolder,
                                                   SyntheticShapes, colorize)
from hrnet_zoo.tasks.segmentation.inference import predict, sliding_window
from hrnet_zoo.tasks.segmentation.loss import SegmentationLoss
from hrnet_zoo.tasks.segmentation.metric import ConfusionMatrix
from hrnet_zoo.tasks.segmentation.transforms import RandomCrop, RandomScale, train_transforms

from conftest import randomize_bn


@pytest.fixture(scope='module')
def small():
    return randomize_bn(build_segmentation_model('hrnet_w18_small_seg_cityscapes')).eval()


@functools.lru_cache(maxsize=None)
def _meta(name):
    """Models on the meta device: shapes and keys without allocating (or initialising) weights."""
    with torch.device('meta'):
        return build_segmentation_model(name)


# --- model -------------------------------------------------------------------------------------

def test_w48_cityscapes_params_match_official():
    """Official README: 65.8M. Ours: 65.859M; the README truncates (it is not 65.9), nothing is
    missing: trunk 65.32M + last_layer (720x720 conv + bias, BN, 720x19 conv + bias) 0.534M."""
    n = sum(p.numel() for p in _meta('hrnet_w48_seg_cityscapes').parameters())
    assert math.floor(n / 1e5) / 10 == 65.8
    assert abs(n / 1e6 - 65.8) < 0.06


@pytest.mark.parametrize('name, classes, head_in', [
    ('hrnet_w48_seg_cityscapes', 19, 720), ('hrnet_w48_seg_pascal_context', 59, 720),
    ('hrnet_w18_seg_lip', 20, 270),
    ('hrnet_w18_small_seg_cityscapes', 19, 240)])
def test_head_layout_and_fusion_mode(name, classes, head_in):
    m = _meta(name)
    assert m.last_layer[0].in_channels == head_in == m.last_layer[0].out_channels  # 15C for the standard nets
    assert m.last_layer[3].out_channels == classes and m.last_layer[3].kernel_size == (1, 1)
    assert m.last_layer[0].bias is not None and isinstance(m.last_layer[1], nn.BatchNorm2d)
    fusions = [mod for mod in m.modules() if hasattr(mod, 'upsample_mode')]
    assert fusions and all(f.upsample_mode == 'bilinear' and f.align_corners is False for f in fusions)
    assert name in hrnet_zoo.list_models()


@pytest.mark.parametrize('size', [(64, 64), (33, 47), (65, 97)])
def test_logits_have_input_size(small, size):
    with torch.no_grad():
        out = small(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, *size)
    assert torch.isfinite(out).all()


def test_too_small_input_is_a_clear_error(small):
    with pytest.raises(ValueError, match='at least 32x32'):
        small(torch.randn(1, 3, 16, 64))


def test_align_corners_option_reaches_every_resize():
    m = HRNetSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5, align_corners=True)
    assert m.cfg.align_corners and m.v2.align_corners and m.align_corners
    assert all(f.align_corners for f in m.modules() if hasattr(f, 'upsample_mode'))


def test_official_checkpoint_layout_loads(small, tmp_path):
    """A random state_dict in the official trainer's layout (``FullModel``: ``model.`` prefix and
    the loss's class-weight buffer) loads strictly and reproduces the source model's logits."""
    src = small.state_dict()
    official = {'model.' + k: v.clone() for k, v in src.items()}
    official['loss.criterion.weight'] = torch.rand(19)
    for key in ('model.last_layer.0.weight', 'model.last_layer.0.bias', 'model.last_layer.1.running_var',
                'model.last_layer.3.weight', 'model.last_layer.3.bias', 'model.stage4.0.fuse_layers.0.3.0.weight',
                'model.stage4.0.fuse_layers.3.0.0.0.weight', 'model.transition3.3.0.0.weight',
                'model.layer1.0.downsample.0.weight', 'model.stage2.0.branches.1.1.conv2.weight'):
        assert key in official, key  # the official module names (lib/models/seg_hrnet.py)
    path = tmp_path / 'hrnet_cs.pth'
    torch.save({'state_dict': official}, path)
    fresh = build_segmentation_model('hrnet_w18_small_seg_cityscapes').eval()
    load_official_checkpoint(fresh, str(path))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(fresh(x), small(x), atol=1e-5)


def test_official_key_map_w48_is_complete():
    m = _meta('hrnet_w48_seg_cityscapes')
    assert SEG_MODELS['hrnet_w48_seg_lip'].num_classes == 20 and SEG_MODELS['hrnet_w48_seg_lip'].variant == 'hrnet_w48'
    official = {'module.model.' + k: v for k, v in m.state_dict().items()}
    official['module.loss.criterion.weight'] = torch.empty(19, device='meta')
    converted = convert_official_state_dict(official)
    assert set(converted) == set(m.state_dict())


def test_wrong_checkpoint_is_a_clear_error(small):
    state = {'model.' + k: v for k, v in small.state_dict().items() if not k.startswith('last_layer')}
    with pytest.raises(KeyError, match='missing'):
        load_official_checkpoint(build_segmentation_model('hrnet_w18_small_seg_cityscapes'), state)


def test_pretrained_without_published_weights_explains():
    with pytest.raises(ValueError, match='load_official_checkpoint'):
        hrnet_zoo.create_model('hrnet_w18_small_seg_cityscapes', pretrained=True)


# --- metric ------------------------------------------------------------------------------------

def test_miou_of_ground_truth_is_one():
    gt = torch.randint(0, 5, (2, 17, 23))
    cm = ConfusionMatrix(5)
    cm.update(gt.clone(), gt)
    out = cm.compute()
    assert out['miou'] == 1.0 and out['pixel_acc'] == 1.0


def test_miou_of_known_confusion():
    # 3 classes, 10 pixels. gt:   0 0 0 0 1 1 1 2 2 2 ; pred: 0 0 0 1 1 1 2 2 2 0
    gt = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 2, 2, 2]])
    pred = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: TP 2, FP 1, FN 1 -> 2/4
    expected = [3 / 5, 2 / 4, 2 / 4]
    assert torch.allclose(cm.iou(), torch.tensor(expected, dtype=torch.float64))
    out = cm.compute()
    assert out['miou'] == pytest.approx(sum(expected) / 3)
    assert out['pixel_acc'] == pytest.approx(7 / 10)
    assert cm.matrix.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]


def test_ignore_index_is_ignored_and_logits_accepted():
    gt = torch.tensor([[[0, 1, 255, 255]]])
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = 1  # right where labelled
    logits[0, 1, 0, 2] = logits[0, 0, 0, 3] = 1  # arbitrary where ignored
    cm = ConfusionMatrix(2)
    cm.update(logits, gt)
    assert cm.matrix.sum() == 2 and cm.compute()['miou'] == 1.0


def test_absent_class_is_left_out_of_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    iou = cm.iou()
    assert iou[0] == 0.5 and iou[1] == 0 and iou[2:].isnan().all()
    assert cm.compute()['miou'] == pytest.approx(0.25)


def test_metric_rejects_bad_targets():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match='outside'):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match='differ in size'):
        cm.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))


# --- loss --------------------------------------------------------------------------------------

def test_loss_ignores_the_ignore_index_and_resizes_logits():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :4] = 255
    loss = SegmentationLoss(3)(logits, target)
    ref = nn.functional.cross_entropy(logits[:, :, 4:], target[:, 4:])
    assert torch.allclose(loss, ref)
    loss.backward()
    assert logits.grad[:, :, :4].abs().sum() == 0
    big = SegmentationLoss(3)(logits[:, :, ::2, ::2], target)  # (4x4 logits, 8x8 target)
    assert torch.isfinite(big)


def test_loss_rejects_mask_values_outside_the_classes():
    with pytest.raises(ValueError, match=r'mask values \[5\] are outside the 3 classes'):
        SegmentationLoss(3)(torch.randn(1, 3, 4, 4), torch.full((1, 4, 4), 5))


def test_ohem_keeps_only_hard_pixels():
    # 4 pixels of class 0: two confidently right (p ~ 1), two wrong (p ~ 0).
    logits = torch.tensor([[10., 10., -10., -10.], [0., 0., 0., 0.]]).view(1, 2, 1, 4)
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    ohem = SegmentationLoss(2, ohem=True, thresh=0.7, min_kept=1)(logits, target)
    hard = nn.functional.cross_entropy(logits[..., 2:], target[..., 2:])
    assert torch.allclose(ohem, hard)
    # min_kept larger than the pixel count: the threshold rises to the largest probability
    everything = SegmentationLoss(2, ohem=True, thresh=0.7, min_kept=100)(logits, target)
    assert torch.allclose(everything, hard)  # pixels at exactly the max probability are still dropped
    all_ignored = SegmentationLoss(2, ohem=True)(logits.requires_grad_(), torch.full((1, 1, 4), 255))
    assert all_ignored.item() == 0.0


# --- transforms, inference ---------------------------------------------------------------------

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


class _PixelModel(nn.Module):
    """Translation-equivariant toy model (1x1 conv): sliding windows must equal the whole image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_window_equals_whole_image_for_a_pixelwise_model():
    model = _PixelModel().eval()
    x = torch.randn(1, 3, 50, 70)
    whole = predict(model, x)
    windows = sliding_window(model, x, crop_size=(32, 32))
    assert windows.shape == whole.shape and torch.allclose(windows, whole, atol=1e-6)
    assert torch.allclose(predict(model, x, flip=True, crop_size=(32, 32)), whole, atol=1e-6)


def test_multi_scale_flip_prediction_shape(small):
    probs = predict(small, torch.randn(1, 3, 40, 56), scales=(0.75, 1.0, 1.5), flip=True, crop_size=(48, 48))
    assert probs.shape == (1, 19, 40, 56)
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 56), atol=1e-4)


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


# --- OCR head ----------------------------------------------------------------------------------

def test_ocr_head_keys_outputs_and_checkpoint(tmp_path):
    from hrnet_zoo.tasks.segmentation import HRNetOCRSegmentation
    from hrnet_zoo.tasks.segmentation.training import make_loss_fn
    w48 = _meta('hrnet_w48_ocr_seg_cityscapes')
    assert w48.align_corners is True  # the official OCR configs (alignTrue)
    keys = set(w48.state_dict())
    for key in ('conv3x3_ocr.0.weight', 'conv3x3_ocr.0.bias', 'conv3x3_ocr.1.running_mean', 'cls_head.weight',
                'aux_head.0.weight', 'aux_head.3.weight', 'ocr_distri_head.conv_bn_dropout.0.weight',
                'ocr_distri_head.conv_bn_dropout.1.0.weight', 'ocr_distri_head.object_context_block.f_pixel.2.weight',
                'ocr_distri_head.object_context_block.f_pixel.3.0.running_var',
                'ocr_distri_head.object_context_block.f_up.1.0.bias'):
        assert key in keys, key  # names of the official lib/models/seg_hrnet_ocr.py
    assert w48.conv3x3_ocr[0].out_channels == 512 and w48.cls_head.out_channels == 19
    model = randomize_bn(HRNetOCRSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5))
    x, y = torch.randn(2, 3, 65, 47), torch.randint(0, 5, (2, 65, 47))
    out = model(x)
    assert set(out) == {'out', 'aux'} and out['out'].shape == out['aux'].shape == (2, 5, 65, 47)
    make_loss_fn(SegmentationLoss(5, ohem=True))(model, (x, y)).backward()
    model.eval()
    official = {'model.' + k: v.clone() for k, v in model.state_dict().items()}
    fresh = HRNetOCRSegmentation(hrnet_zoo.get_config('hrnet_w18_small'), 5).eval()
    load_official_checkpoint(fresh, official)
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), atol=1e-5)


def test_cityscapes_through_torchvision(tmp_path):
    from hrnet_zoo.tasks.segmentation.datasets import CityscapesTorchvision
    img_dir = tmp_path / 'leftImg8bit' / 'val' / 'aachen'
    gt_dir = tmp_path / 'gtFine' / 'val' / 'aachen'
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(img_dir / 'aachen_000000_000019_leftImg8bit.png')
    Image.fromarray(np.array([[7, 11, 1], [23, 26, 33]], np.uint8)).save(gt_dir / 'aachen_000000_000019_gtFine_labelIds.png')
    ds = CityscapesTorchvision(tmp_path, 'val')
    image, mask = ds[0]
    assert len(ds) == 1 and image.shape == (3, 2, 3)
    assert mask.tolist() == [[0, 2, 255], [10, 13, 18]] and ds.class_names[10] == 'sky'
