"""Detection: the HRNetV2p backbone for torchvision (levels, strides, channels, official HRFPN
keys), the builders, a few Faster R-CNN training steps on synthetic boxes (loss falls), COCOeval
on its outputs, and the handling of empty / bad box lists."""
from __future__ import annotations

import pytest
import torch

import hrnet_zoo
import hrnet_zoo.detection as det
from hrnet_zoo.configs import get_config
from hrnet_zoo.tasks.detection import (CocoEvaluator, HRNetV2pBackbone, SyntheticBoxes, check_target, collate,
                                       convert_official_detection_state_dict, evaluate_detector)

SMALL = dict(min_size=128, max_size=128)
# Fewer proposals / sampled RoIs than COCO's defaults keep the CPU tests fast (torchvision kwargs).
SMALL_RCNN = dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
                  rpn_post_nms_top_n_test=50, box_batch_size_per_image=64, box_detections_per_img=20)
SMALL_DENSE = dict(topk_candidates=100, detections_per_img=20)


def _small(kind, **kw):
    extra = SMALL_RCNN if kind in ('fasterrcnn', 'maskrcnn') else SMALL_DENSE
    return det.build_detector(kind, 'hrnet_w18_small', num_classes=3, **SMALL, **extra, **kw)


@pytest.mark.parametrize('size', [(128, 192), (100, 75)])
def test_v2p_levels_strides_and_channels(size):
    bb = HRNetV2pBackbone(get_config('hrnet_w18_small')).eval()
    with torch.no_grad():
        out = bb(torch.randn(1, 3, *size))
    assert list(out) == ['0', '1', '2', '3', '4'] and bb.out_channels == 256
    assert bb.strides == [4, 8, 16, 32, 64]
    for (name, level), stride in zip(out.items(), bb.strides):
        assert level.shape == (1, 256, -(-size[0] // stride), -(-size[1] // stride)), name


def test_v2p_official_hrfpn_keys_and_feature_mode():
    bb = HRNetV2pBackbone(get_config('hrnet_w18_small'))
    keys = set(bb.state_dict())
    assert {'neck.reduction_conv.0.weight', 'neck.reduction_conv.0.bias', 'neck.fpn_conv.4.weight',
            'neck.fpn_conv.0.bias'} <= keys
    assert bb.neck.reduction_conv[0].in_channels == 16 + 32 + 64 + 128 and bb.neck.fpn_conv[0].kernel_size == (3, 3)
    assert torch.count_nonzero(bb.neck.fpn_conv[2].bias) == 0  # official init: zero biases
    official = {'backbone.' + k: v for k, v in bb.state_dict().items() if not k.startswith('neck.')}
    official.update({k: v for k, v in bb.state_dict().items() if k.startswith('neck.')})
    official['rpn_head.rpn_conv.weight'] = torch.zeros(1)  # mmdetection head: not converted
    converted = convert_official_detection_state_dict({'state_dict': official})
    assert set(converted) == {'backbone.' + k for k in bb.state_dict()}
    feats = hrnet_zoo.create_model('hrnet_w18_small', features_only=True, feature_location='v2p')
    assert feats.feature_info.channels() == [256] * 5 and feats.feature_info.reduction() == [4, 8, 16, 32, 64]
    assert 'neck.fpn_conv.0.weight' in feats.state_dict()


def test_public_builders():
    m = det.fasterrcnn_hrnetv2p_w32(num_classes=5)
    assert m.backbone.out_channels == 256 and m.roi_heads.box_predictor.cls_score.out_features == 5
    assert m.rpn.anchor_generator.num_anchors_per_location() == [3] * 5
    assert m.transform.size_divisible == 64 and m.backbone.branch_channels == [32, 64, 128, 256]
    assert m.backbone.norm_eval is False
    for name in ('fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32', 'fasterrcnn_hrnetv2p_w40',
                 'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32'):
        assert name in hrnet_zoo.list_models() and callable(getattr(det, name))
    with pytest.raises(ValueError, match='no detection weights'):
        det.fasterrcnn_hrnetv2p_w18(pretrained=True)
    with pytest.raises(ValueError, match='background'):
        det.build_detector('fasterrcnn', 'hrnet_w18_small', num_classes=1)


def test_weights_backbone_loads_trunk_and_freezes_bn(tmp_path):
    src = hrnet_zoo.create_model('hrnet_w18_small')
    path = tmp_path / 'cls.pth'
    torch.save(src.state_dict(), path)
    m = _small('fasterrcnn', weights_backbone=str(path))
    assert torch.equal(m.backbone.stage4[0].branches[3][0].conv1.weight, src.stage4[0].branches[3][0].conv1.weight)
    m.train()
    assert m.backbone.norm_eval and not m.backbone.bn1.training


def test_faster_rcnn_trains_and_goes_through_cocoeval():
    torch.manual_seed(0)
    ds = SyntheticBoxes(8, 128, num_classes=3, empty_ratio=0.3, seed=2)
    samples = [ds[i] for i in range(len(ds))]
    with_objects = next(s for s in samples if len(s[1]['boxes']) >= 2)
    without = next(s for s in samples if len(s[1]['boxes']) == 0)
    images, targets = collate([with_objects, without])  # an image without objects is a negative sample
    model = _small('fasterrcnn')
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = []
    for _ in range(5):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print('Faster R-CNN losses', [round(v, 3) for v in losses])
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-2:]) < losses[0]
    metrics = evaluate_detector(model, [(images, targets)])
    assert set(metrics) >= {'bbox_AP', 'bbox_AP50', 'bbox_AP75'}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_cocoeval_of_perfect_detections_is_one():
    ds = SyntheticBoxes(3, 64, num_classes=3, seed=5, masks=True)
    targets = [ds[i][1] for i in range(3)]
    outputs = [dict(boxes=t['boxes'], labels=t['labels'], scores=torch.ones(len(t['boxes'])),
                    masks=t['masks'][:, None].float()) for t in targets]
    ev = CocoEvaluator(('bbox', 'segm'))
    ev.update(targets, outputs)
    out = ev.compute()
    assert out['bbox_AP'] == pytest.approx(1.0) and out['segm_AP'] == pytest.approx(1.0)
    empty = CocoEvaluator()
    empty.update(targets, [dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long),
                                scores=torch.zeros(0))] * 3)
    assert empty.compute()['bbox_AP'] == 0.0


@pytest.mark.parametrize('kind', ['maskrcnn', 'retinanet', 'fcos'])
def test_other_detectors_forward_and_backward(kind):
    ds = SyntheticBoxes(2, 128, num_classes=3, seed=1, masks=kind == 'maskrcnn')
    images, targets = collate([ds[0], ds[1]])
    model = _small(kind)
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images[:1])
    assert {'boxes', 'scores', 'labels'} <= set(out[0]) and (kind != 'maskrcnn' or 'masks' in out[0])


def test_bad_boxes_are_clear_errors_and_empty_lists_are_negatives():
    image = torch.zeros(3, 32, 32)
    empty = check_target(dict(boxes=[], labels=[]), image, 3)
    assert empty['boxes'].shape == (0, 4) and empty['labels'].dtype == torch.int64
    with pytest.raises(ValueError, match='positive width'):
        check_target(dict(boxes=[[10, 10, 5, 20]], labels=[1]), image, 3)
    with pytest.raises(ValueError, match=r'must be in \[1, 2\]'):
        check_target(dict(boxes=[[1, 1, 5, 5]], labels=[3]), image, 3)
    with pytest.raises(ValueError, match='2 boxes but 1 labels'):
        check_target(dict(boxes=[[1, 1, 5, 5], [2, 2, 6, 6]], labels=[1]), image, 3)
    with pytest.raises(ValueError, match='NaN'):
        check_target(dict(boxes=[[1, 1, float('nan'), 5]], labels=[1]), image, 3)


def test_cli_predict_draws_boxes(tmp_path):
    from PIL import Image
    from hrnet_zoo.tasks.detection.__main__ import main
    image, _ = SyntheticBoxes(1, 96, 3, seed=4)[0]
    Image.fromarray((image * 255).byte().permute(1, 2, 0).numpy()).save(tmp_path / 'in.png')
    written = main(['predict', '--model', 'fasterrcnn_hrnetv2p_w32', '--variant', 'hrnet_w18_small',
                    '--num-classes', '3', '--min-size', '96', '--max-size', '96', '--device', 'cpu',
                    '--image', str(tmp_path / 'in.png'), '--out', str(tmp_path / 'pred'), '--score-thresh', '0'])
    out = Image.open(written[0])
    assert out.size == (96, 96) and out.mode == 'RGB'
