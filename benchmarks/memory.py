"""Peak memory of HRNet inference and training steps, with and without gradient checkpointing.

Each configuration runs in a fresh subprocess, so one cannot inherit another's memory. After a
warm-up step (which allocates gradients and optimizer state), the peak is reset and the timed
steps run; the figure is the peak above the level before them, i.e. the activations and
temporaries of a step:
  - CPU: the peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs; glibc is
    told to mmap every large block so that freed activations go back to the OS);
  - CUDA: torch.cuda.max_memory_allocated() above memory_allocated().
timm's own HRNet (no gradient checkpointing: timm raises "not supported") is a reference row.

    python benchmarks/memory.py                              # defaults: about a minute on 2 cores
    python benchmarks/memory.py --models hrnet_w32 --batch-sizes 8 16 --json mem.json
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODELS = ('hrnet_w18_small', 'hrnet_w32')
# (implementation, phase, gradient checkpointing)
VARIANTS = (('ours', 'infer', False), ('ours', 'train', False), ('ours', 'train', True), ('timm', 'train', False))
CHILD_ENV = {  # every block >= 128 KiB is mmapped and unmapped on free: RSS follows live memory
    'MALLOC_MMAP_THRESHOLD_': '131072', 'MALLOC_TRIM_THRESHOLD_': '131072', 'MALLOC_ARENA_MAX': '2'}


# --- the child: one configuration ------------------------------------------------------------

def _proc_status(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _build(impl: str, name: str):
    import timm.models.hrnet as timm_hrnet
    import hrnet_zoo
    if impl == 'timm':
        return timm_hrnet.HighResolutionNet(dict(timm_hrnet.cfg_cls[name]))
    return hrnet_zoo.create_model(name)


def run_child(cfg: Dict) -> Dict:
    """Measure one configuration in this process; returns the figures (MiB, seconds)."""
    import gc
    import torch
    if cfg.get('threads'):
        torch.set_num_threads(cfg['threads'])
    device, train = cfg['device'], cfg['phase'] == 'train'
    torch.manual_seed(0)
    model = _build(cfg['impl'], cfg['model']).to(device).train(train)
    if cfg['checkpointing']:
        model.set_grad_checkpointing(True)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9) if train else None
    x = torch.randn(cfg['batch'], 3, cfg['size'], cfg['size'], device=device)
    target = torch.arange(cfg['batch'], device=device) % 1000

    def step():
        if not train:
            with torch.no_grad():
                model(x)
            return
        loss = torch.nn.functional.cross_entropy(model(x), target)
        opt.zero_grad(set_to_none=False)  # gradients stay allocated: not counted as a step's peak
        loss.backward()
        opt.step()

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    step()  # warm-up: gradients and momentum buffers now exist
    gc.collect()
    sync()
    if device == 'cuda':
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        reset = _reset_peak_rss()
        base = _proc_status('VmRSS')
    now = time.process_time if cfg.get('timer') == 'process' else time.perf_counter
    times = []
    for _ in range(cfg['steps']):
        sync()
        t = now()
        step()
        sync()
        times.append(now() - t)
    if device == 'cuda':
        peak, total = torch.cuda.max_memory_allocated() - base, torch.cuda.max_memory_allocated()
    else:
        total = _proc_status('VmHWM')
        peak = total - base if reset else float('nan')
    mib = 2 ** 20
    return dict(cfg, step_s=statistics.median(times), peak_mib=peak / mib, total_peak_mib=total / mib,
                base_mib=base / mib, params_m=sum(p.numel() for p in model.parameters()) / 1e6)


# --- the parent: one subprocess per configuration ---------------------------------------------

def measure(cfg: Dict, timeout: float = 1800) -> Dict:
    """Run one configuration in a fresh Python process and return its figures."""
    env = dict(os.environ, **CHILD_ENV)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', json.dumps(cfg)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'memory benchmark child failed for {cfg}:\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1])


def summarize(results: List[Dict]) -> List[Dict]:
    """Per model and batch: checkpointing's activation-memory and step-time ratios, ours/timm memory."""
    out = []
    keyed = {(r['model'], r['batch'], r['impl'], r['phase'], r['checkpointing']): r for r in results}
    for model, batch in dict.fromkeys((r['model'], r['batch']) for r in results):
        plain = keyed.get((model, batch, 'ours', 'train', False))
        ckpt = keyed.get((model, batch, 'ours', 'train', True))
        ref = keyed.get((model, batch, 'timm', 'train', False))
        row = dict(model=model, batch=batch)
        if plain and ckpt:
            row.update(ckpt_memory_ratio=ckpt['peak_mib'] / plain['peak_mib'],
                       ckpt_time_ratio=ckpt['step_s'] / plain['step_s'])
        if plain and ref:
            row.update(ours_timm_memory_ratio=plain['peak_mib'] / ref['peak_mib'])
        out.append(row)
    return out


def format_table(results: List[Dict]) -> str:
    head = f'{"model":16s} {"impl":5s} {"phase":6s} {"ckpt":5s} {"batch":>5s} {"size":>5s} ' \
           f'{"step peak MiB":>13s} {"process peak MiB":>16s} {"step s":>8s} {"img/s":>7s}'
    lines = [head, '-' * len(head)]
    for r in results:
        lines.append(f'{r["model"]:16s} {r["impl"]:5s} {r["phase"]:6s} {str(r["checkpointing"]):5s} '
                     f'{r["batch"]:5d} {r["size"]:5d} {r["peak_mib"]:13.0f} {r["total_peak_mib"]:16.0f} '
                     f'{r["step_s"]:8.3f} {r["batch"] / r["step_s"]:7.1f}')
    return '\n'.join(lines)


def _write(path: str, text: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS))
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[8])
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--steps', type=int, default=2, help='timed steps after the warm-up (median time)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--timer', choices=('wall', 'process'), default='wall',
                   help='process: CPU time of the child, steadier on a busy machine with --threads 1')
    p.add_argument('--no-timm', action='store_true', help="skip timm's reference rows")
    p.add_argument('--phases', nargs='+', choices=('infer', 'train'), default=['infer', 'train'])
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--json', metavar='FILE')
    p.add_argument('--csv', metavar='FILE')
    p.add_argument('--child', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.img_size < 32 or args.img_size % 32:
        p.error(f'--img-size {args.img_size}: use a multiple of 32 (>= 32) so timm\'s HRNet runs too')
    if args.steps < 1:
        p.error('--steps must be at least 1')
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return {}
    from tqdm import tqdm
    variants = [v for v in VARIANTS if not (args.no_timm and v[0] == 'timm') and v[1] in args.phases]
    configs = [dict(model=m, batch=b, size=args.img_size, impl=impl, phase=phase, checkpointing=ckpt,
                    device=args.device, steps=args.steps, threads=args.threads, timer=args.timer)
               for m in args.models for b in args.batch_sizes for impl, phase, ckpt in variants]
    results = []
    with tqdm(configs, disable=args.no_progress, file=sys.stderr) as bar:
        for cfg in bar:
            bar.set_description(f'{cfg["model"]} b{cfg["batch"]} {cfg["impl"]} {cfg["phase"]}'
                                f'{" ckpt" if cfg["checkpointing"] else ""}')
            results.append(measure(cfg))
    print(format_table(results))
    summary = summarize(results)
    for s in summary:
        parts = [f'{s["model"]} batch {s["batch"]}:']
        if 'ckpt_memory_ratio' in s:
            parts.append(f'checkpointing: step peak x{s["ckpt_memory_ratio"]:.2f}, step time x{s["ckpt_time_ratio"]:.2f}')
        if 'ours_timm_memory_ratio' in s:
            parts.append(f'train step peak ours/timm x{s["ours_timm_memory_ratio"]:.2f}')
        print(' '.join(parts))
    out = {'results': results, 'summary': summary}
    if args.json:
        _write(args.json, json.dumps(out, indent=2))
    if args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
        _write(args.csv, buf.getvalue())
    return out


if __name__ == '__main__':
    main()
