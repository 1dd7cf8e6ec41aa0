"""Accuracy cost of hrnet_zoo.deploy's low-precision paths on really trained models.

Trains two small models from scratch on the project's demo data sets, then evaluates each
deployed variant on the held-out split:
  classification  hrnet_w18_small on scikit-learn's digits (hrnet_zoo.train.data.DigitsDataset,
                  32x32, 1437 train / 360 held-out), 3 epochs AdamW + cosine: top-1 (%)
  segmentation    HRNetV2 W18-small on SyntheticShapes (64x64, 4 classes), 150 steps AdamW: mIoU (%)
Variants: float32 eager (the reference), OpenVINO with no dtype (its own default precision: bf16
where native, f32 elsewhere; the note says which), bf16 (deploy eager and OpenVINO), int8 (OpenVINO + NNCF
post-training quantization as deploy() does it, with min-max activation ranges; the same with
NNCF's default ranges; ONNX Runtime static quantization), each calibrated on --calibration images
of the training split. Prints one table; the goal is an int8 drop of at
most 0.5 points.

    python benchmarks/int8_accuracy.py                 # ~3-5 min on 2 CPU cores
    python benchmarks/int8_accuracy.py --tasks classification --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List

import torch
from torch.utils.data import DataLoader

import hrnet_zoo
from hrnet_zoo.train import TrainConfig, Trainer, seed_everything
from hrnet_zoo.train.classification import ClassificationLoss
from hrnet_zoo.train.data import DigitsDataset

try:
    from hrnet_zoo.tasks.segmentation import Compose, Normalize, RandomHorizontalFlip, SegmentationLoss, SyntheticShapes, evaluate, fit
except ImportError:  # until the task restructure exports these names at the package level
    from hrnet_zoo.tasks.segmentation.datasets import SyntheticShapes
    from hrnet_zoo.tasks.segmentation.loss import SegmentationLoss
    from hrnet_zoo.tasks.segmentation.training import evaluate, fit
    from hrnet_zoo.tasks.segmentation.transforms import Compose, Normalize, RandomHorizontalFlip

def nncf_default_ranges() -> dict:
    """nncf.quantize arguments for NNCF's own default activation ranges (aggregated per-image
    statistics) instead of deploy()'s global min / max."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    return {'advanced_parameters': AdvancedQuantizationParameters()}


VARIANTS = [  # (label, deploy kwargs; a callable value is called when the variant is built)
    ('fp32 eager', dict(backend='eager')),
    ('openvino, no dtype', dict(backend='openvino')),
    ('bf16 eager', dict(backend='eager', dtype=torch.bfloat16)),
    ('bf16 openvino', dict(backend='openvino', dtype=torch.bfloat16)),
    ('int8 openvino (deploy default)', dict(backend='openvino', dtype=torch.int8)),
    ('int8 openvino, NNCF ranges', dict(backend='openvino', dtype=torch.int8, quantization=nncf_default_ranges)),
    ('int8 onnxruntime', dict(backend='onnxruntime', dtype=torch.int8)),
]
SEG_CLASSES = 4


def top1(model: Callable, dataset) -> float:
    correct = 0
    with torch.no_grad():
        for images, targets in DataLoader(dataset, batch_size=120):
            correct += (model(images).argmax(1) == targets).sum().item()
    return 100.0 * correct / len(dataset)


def train_classifier(workdir: str, epochs: int):
    train_set, test_set = DigitsDataset('train', size=32), DigitsDataset('test', size=32)
    seed_everything(0)
    model = hrnet_zoo.create_model('hrnet_w18_small', num_classes=10)
    cfg = TrainConfig(out_dir=workdir, epochs=epochs, batch_size=32, optimizer='adamw', lr=2e-3, weight_decay=0.05,
                      sched='cosine', warmup_epochs=0.2, eval_every=epochs, progress=False)
    Trainer(model, train_set, ClassificationLoss(), cfg).fit()
    return model.eval(), train_set, test_set, lambda m: top1(m, test_set), 'top-1 %'


def train_segmenter(workdir: str, steps: int, batch: int = 4):
    from hrnet_zoo.configs import get_config
    from hrnet_zoo.tasks.segmentation import HRNetSegmentation
    torch.manual_seed(0)
    train_set = SyntheticShapes(steps * batch, 64, SEG_CLASSES, seed=0,
                                transform=Compose([RandomHorizontalFlip(), Normalize()]))
    val_set = SyntheticShapes(64, 64, SEG_CLASSES, seed=100_000, transform=Compose([Normalize()]))
    model = HRNetSegmentation(get_config('hrnet_w18_small'), SEG_CLASSES)
    fit(model, train_set, SegmentationLoss(SEG_CLASSES), steps=steps, out_dir=workdir, batch_size=batch,
        optimizer='adamw', lr=5e-3, weight_decay=1e-4, progress=False, device='cpu')
    calib = SyntheticShapes(256, 64, SEG_CLASSES, seed=50_000, transform=Compose([Normalize()]))

    def miou(m):
        return 100.0 * evaluate(m, val_set, SEG_CLASSES, batch_size=16, device=torch.device('cpu'))['miou']
    return model.eval(), calib, val_set, miou, 'mIoU %'


def measure(task: str, model, calib_set, metric: Callable, n_calib: int) -> List[Dict]:
    calibration = DataLoader(torch.utils.data.Subset(calib_set, range(n_calib)), batch_size=16)
    example = next(iter(DataLoader(calib_set, batch_size=2)))[0]
    rows, ref = [], None
    for label, kw in VARIANTS:
        t0 = time.perf_counter()
        kw = {k: v() if callable(v) else v for k, v in kw.items()}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                deployed = hrnet_zoo.deploy(model, example_input=example,
                                            calibration=calibration if kw.get('dtype') == torch.int8 else None, **kw)
        except (ImportError, ValueError) as e:  # an extra not installed, or bf16 not native here
            rows.append({'task': task, 'variant': label, 'value': None, 'drop': None, 'note': str(e).split(';')[0]})
            continue
        build_s = time.perf_counter() - t0
        value = metric(deployed)
        ref = value if ref is None else ref
        note = '' if 'dtype' in kw else f'runs {str(deployed.precision).replace("torch.", "")}'
        rows.append({'task': task, 'variant': label, 'value': value, 'drop': ref - value, 'build_s': build_s,
                     'note': note})
    return rows


def format_table(rows: List[Dict], metrics: Dict[str, str]) -> str:
    lines = [f'{"task":<15} {"variant":<31} {"metric":<8} {"value":>7} {"drop":>6}  note',
             '-' * 80]
    for r in rows:
        value = '-' if r['value'] is None else f'{r["value"]:.2f}'
        drop = '-' if r['drop'] is None else f'{r["drop"]:+.2f}'
        lines.append(f'{r["task"]:<15} {r["variant"]:<31} {metrics[r["task"]]:<8} {value:>7} {drop:>6}  {r["note"]}')
    return '\n'.join(lines)


def cpu_flags() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            flags = next(line for line in f if line.startswith('flags')).split()
    except (OSError, StopIteration):
        return 'unknown'
    return ' '.join(f for f in ('avx512_bf16', 'amx_bf16', 'amx_int8', 'avx512_vnni', 'avx2') if f in flags) or 'none'


def main(argv=None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tasks', nargs='+', default=['classification', 'segmentation'],
                   choices=['classification', 'segmentation'])
    p.add_argument('--epochs', type=int, default=3, help='digits classifier epochs')
    p.add_argument('--seg-steps', type=int, default=150, help='segmentation training steps (batch 4)')
    p.add_argument('--calibration', type=int, default=128, help='calibration images (from the training split)')
    p.add_argument('--max-drop', type=float, default=0.5, help='goal: largest int8 drop, in points')
    p.add_argument('--json', metavar='FILE')
    args = p.parse_args(argv)
    print(f'CPU flags: {cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads')
    rows, metrics = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        for task in args.tasks:
            t0 = time.perf_counter()
            if task == 'classification':
                model, calib, _, metric, name = train_classifier(os.path.join(workdir, task), args.epochs)
            else:
                model, calib, _, metric, name = train_segmenter(os.path.join(workdir, task), args.seg_steps)
            print(f'{task}: trained in {time.perf_counter() - t0:.0f} s', file=sys.stderr)
            metrics[task] = name
            rows += measure(task, model, calib, metric, args.calibration)
    print(format_table(rows, metrics))
    for label in dict.fromkeys(r['variant'] for r in rows if r['variant'].startswith('int8')):
        drops = [r for r in rows if r['variant'] == label and r['drop'] is not None]
        if drops:
            worst = max(drops, key=lambda r: r['drop'])
            verdict = 'met' if worst['drop'] <= args.max_drop else 'NOT met'
            print(f'{label}: largest drop {worst["drop"]:+.2f} points ({worst["task"]}); '
                  f'goal <= {args.max_drop}: {verdict}')
    result = {'cpu_flags': cpu_flags(), 'rows': rows}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
