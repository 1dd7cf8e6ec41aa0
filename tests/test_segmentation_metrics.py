"""mIoU (:mod:`hrnet_zoo.tasks.segmentation.metrics`) and the losses (``.loss``: ignore index, OHEM)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hrnet_zoo.tasks.segmentation.loss import SegmentationLoss
from hrnet_zoo.tasks.segmentation.metrics import ConfusionMatrix


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
