"""Inference throughput of hrnet_zoo's HRNet next to timm's own, measured interleaved in one process.

A minimal first version (eager fp32, CPU); the full benchmark grows from here.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import timm.models.hrnet as timm_hrnet

import hrnet_zoo


def timm_reference(name: str) -> torch.nn.Module:
    """timm's own HighResolutionNet, built from its module (not through the registry we override)."""
    return timm_hrnet.HighResolutionNet(dict(timm_hrnet.cfg_cls[name]))


def time_once(model, x) -> float:
    t0 = time.perf_counter()
    model(x)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--models', nargs='+', default=['hrnet_w18_small'])
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, '
          f'{args.img_size}x{args.img_size}, eager fp32')
    print(f'{"model":20s} {"ours img/s":>11s} {"timm img/s":>11s} {"ours/timm":>10s}')
    for name in args.models:
        ours = hrnet_zoo.create_model(name).eval()
        ref = timm_reference(name).eval()
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
        times = {'ours': [], 'timm': []}
        with torch.inference_mode():
            ours(x), ref(x)  # warm-up
            for _ in range(args.repeats):  # interleaved so machine noise hits both alike
                times['ours'].append(time_once(ours, x))
                times['timm'].append(time_once(ref, x))
        ips = {k: args.batch_size / statistics.median(v) for k, v in times.items()}
        print(f'{name:20s} {ips["ours"]:11.1f} {ips["timm"]:11.1f} {ips["ours"] / ips["timm"]:10.2f}')


if __name__ == '__main__':
    main()
