"""Speed of hrnet_zoo's HRNet next to timm's own HRNet, measured interleaved in one process.

For each model, batch size, input size and mode it times inference (images/s, the median of
repeated runs after warm-up, ours and timm's alternating so machine noise hits both alike) and,
with --train-modes, a training step (forward, cross-entropy, backward, SGD step). Each row also
gives params, GMACs per image (torch FlopCounterMode, MACs = FLOPs / 2) next to the official
GFLOPs, the achieved GFLOP/s as a fraction of the machine's measured matmul peak, and peak memory.

Modes (ours and timm's model get the same treatment unless said otherwise):
  eager          float32, NCHW
  channels_last  float32, NHWC weights and input
  autocast       channels_last + bfloat16 autocast (float16 on CUDA)
  compile        torch.compile (inductor, freezing on), channels_last, float32
  deploy         ours: hrnet_zoo.deploy(model) (BN folded, channels_last, float32);
                 timm: its best easy float32 setting, channels_last
  deploy_lp      ours: hrnet_zoo.deploy(model, dtype=bfloat16 | float16);
                 timm: its best easy setting, channels_last + autocast
  onnx           both exported to ONNX (float32) and run with onnxruntime (CPU only)
Low-precision modes are skipped on a CPU without native bfloat16 (AVX512-BF16 / AMX): there
bfloat16 is emulated and ~100x slower than float32. --force-low-precision runs them anyway.

    python benchmarks/speed.py                          # defaults: < 3 min on 2 CPU cores
    python benchmarks/speed.py --models hrnet_w32 --modes all --json out.json --plot out.png
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import ctypes
import datetime
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import timm
import timm.models.hrnet as timm_hrnet
import torch
from torch import nn
from tqdm import tqdm

import hrnet_zoo

DEFAULT_MODELS = ('hrnet_w18_small', 'hrnet_w18', 'hrnet_w32')
MODES = ('eager', 'channels_last', 'autocast', 'compile', 'deploy', 'deploy_lp', 'onnx')
# channels_last alone is left out of the defaults (--modes channels_last): the deploy rows already
# compare against timm in channels_last, and the defaults must finish in about 3 minutes.
DEFAULT_MODES = ('eager', 'autocast', 'deploy', 'deploy_lp', 'onnx')
LOW_PRECISION_MODES = ('autocast', 'deploy_lp')
# Official GFLOPs at 224x224 (HRNet-Image-Classification README, as in the project GUIDE).
OFFICIAL_GFLOPS = {
    'hrnet_w18_small': 1.49, 'hrnet_w18_small_v2': 2.42, 'hrnet_w18': 3.99, 'hrnet_w30': 7.55,
    'hrnet_w32': 8.31, 'hrnet_w40': 11.8, 'hrnet_w44': 13.9, 'hrnet_w48': 16.1, 'hrnet_w64': 26.9,
}


# --- machine ----------------------------------------------------------------------------------

def cpu_flags() -> set:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def native_low_precision(device: str) -> bool:
    """Whether low-precision compute is native (CUDA, or a CPU with AVX512-BF16 / AMX-BF16)."""
    if device == 'cuda':
        return True
    return bool(cpu_flags() & {'avx512_bf16', 'amx_bf16'})


def low_precision_dtype(device: str) -> torch.dtype:
    return torch.float16 if device == 'cuda' else torch.bfloat16


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, device: str, max_n: int = 2048, budget_s: float = 0.3,
                repeats: int = 5) -> Dict[str, float]:
    """Measured matmul GFLOP/s: the median of ``repeats`` square matmuls, ``max_n`` = 2048 unless
    one would take longer than ``budget_s`` (emulated bf16), then the largest power of 2 that fits."""
    def timed(n):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b
        times = []
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    n = 256
    t = timed(n)
    while n < max_n and t * 8 <= budget_s:
        n *= 2
        t = timed(n)
    return {'n': n, 'gflops': 2 * n ** 3 / t / 1e9}


# --- models -----------------------------------------------------------------------------------

def timm_reference(name: str) -> nn.Module:
    """timm's own HighResolutionNet, built from its module (not through the registry we override)."""
    return timm_hrnet.HighResolutionNet(dict(timm_hrnet.cfg_cls[name]))


def build_pair(name: str, device: str) -> Dict[str, nn.Module]:
    """Ours and timm's model with the same (random, seeded) weights, eval mode."""
    torch.manual_seed(0)
    ref = timm_reference(name)
    ours = hrnet_zoo.create_model(name)
    ours.load_state_dict(ref.state_dict())
    return {'ours': ours.to(device).eval(), 'timm': ref.to(device).eval()}


def count_gmacs(model: nn.Module, x: torch.Tensor) -> float:
    """GMACs per image of one forward pass (FlopCounterMode FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 2 / 1e9 / x.shape[0]


# --- modes: each returns a function image batch -> output, for ours or timm ------------------

def _channels_last(model: nn.Module) -> Callable:
    model = model.to(memory_format=torch.channels_last)
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def _autocast(model: nn.Module, device: str) -> Callable:
    run = _channels_last(model)
    dtype = low_precision_dtype(device)

    def f(x):
        with torch.autocast(device, dtype=dtype):
            return run(x)
    return f


def _compile(model: nn.Module, x: torch.Tensor) -> Callable:
    import torch._inductor.config as inductor_config
    model = model.to(memory_format=torch.channels_last)
    with inductor_config.patch(freezing=True):
        compiled = torch.compile(model)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            compiled(x)  # compiles here, outside the timed runs

    def f(x):
        with inductor_config.patch(freezing=True):
            return compiled(x.contiguous(memory_format=torch.channels_last))
    return f


def _onnx(model: nn.Module, x: torch.Tensor, ours: bool, threads: Optional[int], workdir: str) -> Callable:
    from hrnet_zoo.deploy import onnx_session
    path = os.path.join(workdir, f'{"ours" if ours else "timm"}.onnx')
    model = model.cpu().float()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        if ours:
            hrnet_zoo.export_onnx(model, path, dynamic_hw=True)
        else:  # timm's HRNet upsamples by fixed factors: exported at the benchmark's size
            with torch.no_grad():
                torch.onnx.export(model, (x[:1],), path, input_names=['input'], output_names=['output'],
                                  dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}},
                                  opset_version=18, dynamo=False)
    session = onnx_session(path, threads)
    return lambda x: session.run(None, {'input': x.numpy()})


def make_runner(mode: str, which: str, model: nn.Module, x: torch.Tensor, device: str,
                threads: Optional[int], workdir: str) -> Callable:
    """The inference function of ``mode`` for ours (``which='ours'``) or timm's model."""
    if mode == 'eager':
        return model
    if mode == 'channels_last' or (mode == 'deploy' and which == 'timm'):
        return _channels_last(model)
    if mode == 'autocast' or (mode == 'deploy_lp' and which == 'timm'):
        return _autocast(model, device)
    if mode == 'compile':
        return _compile(model, x)
    if mode == 'deploy':
        return hrnet_zoo.deploy(model)
    if mode == 'deploy_lp':
        return hrnet_zoo.deploy(model, dtype=low_precision_dtype(device))
    if mode == 'onnx':
        return _onnx(model, x, which == 'ours', threads, workdir)
    raise ValueError(f'unknown mode {mode!r}; choose from {MODES}')


def train_step_fn(model: nn.Module, mode: str, device: str, num_classes: int = 1000) -> Callable:
    """One SGD step (forward, cross-entropy, backward, step) in ``mode`` (eager, channels_last, autocast)."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if mode != 'eager':
        model = model.to(memory_format=torch.channels_last)
    dtype = low_precision_dtype(device) if mode == 'autocast' else None

    def step(x):
        if mode != 'eager':
            x = x.contiguous(memory_format=torch.channels_last)
        target = torch.arange(x.shape[0], device=x.device) % num_classes
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


# --- timing and memory ------------------------------------------------------------------------

class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]


def _malloc_in_use() -> Optional[Callable[[], int]]:
    """glibc's bytes in use by malloc (heap + mmapped), or None off glibc >= 2.33."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return info.uordblks + info.hblkhd
    return in_use


class PeakMemory:
    """Peak memory above the level at entry, in MiB: CUDA max_memory_allocated, or on CPU the
    bytes in use by malloc (glibc mallinfo2: live tensors and scratch, whatever malloc caches),
    sampled every millisecond by a thread; the process RSS where mallinfo2 is missing.
    onnxruntime keeps its own arena: after its first run its peaks do not show."""
    _in_use = _malloc_in_use()

    def __init__(self, device: str):
        self.device = device
        self.peak_mib = float('nan')

    @classmethod
    def _rss(cls) -> int:
        if cls._in_use is not None:
            return cls._in_use()
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def __enter__(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        elif self._in_use is not None or os.path.exists('/proc/self/statm'):
            self._base = self._peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2 ** 20
        elif hasattr(self, '_thread'):
            self._stop.set()
            self._thread.join()
            self.peak_mib = (max(self._peak, self._rss()) - self._base) / 2 ** 20
        return False


def clock(timer: str) -> Callable[[], float]:
    return time.process_time if timer == 'process' else time.perf_counter


def time_interleaved(fns: Dict[str, Callable], x: torch.Tensor, device: str, repeats: int, warmup: int,
                     timer: str = 'wall', no_grad: bool = True) -> Dict[str, Dict[str, float]]:
    """Median seconds per call of each function, calls alternating between them (and their order
    alternating between rounds); with peak memory per function over its timed calls."""
    now = clock(timer)
    times = {k: [] for k in fns}
    peaks = {k: 0.0 for k in fns}
    ctx = torch.no_grad if no_grad else contextlib.nullcontext
    with ctx():
        for _ in range(warmup):
            for f in fns.values():
                f(x)
        order = list(fns)
        for i in range(repeats):
            for k in (order if i % 2 == 0 else order[::-1]):
                with PeakMemory(device) as mem:
                    sync(device)
                    t = now()
                    fns[k](x)
                    sync(device)
                    times[k].append(now() - t)
                peaks[k] = max(peaks[k], mem.peak_mib)
    return {k: {'s': statistics.median(v), 'peak_mib': peaks[k]} for k, v in times.items()}


# --- the benchmark ----------------------------------------------------------------------------

@dataclass
class Row:
    model: str
    mode: str
    batch: int
    size: int
    dtype: str
    params_m: float
    gmacs: float
    official_gflops: Optional[float]
    ours_ips: float = float('nan')
    timm_ips: float = float('nan')
    ratio: float = float('nan')
    ours_gflops_s: float = float('nan')
    frac_peak: float = float('nan')
    ours_peak_mib: float = float('nan')
    timm_peak_mib: float = float('nan')
    train_ours_ips: float = float('nan')
    train_timm_ips: float = float('nan')
    train_ratio: float = float('nan')
    setup_s: float = float('nan')
    note: str = ''


def mode_dtype(mode: str, device: str) -> torch.dtype:
    return low_precision_dtype(device) if mode in LOW_PRECISION_MODES else torch.float32


def run_config(args, name: str, batch: int, size: int, modes: Sequence[str], peaks: Dict[str, float],
               workdir: str, bar) -> List[Row]:
    device = args.device
    pair = build_pair(name, device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    params = sum(p.numel() for p in pair['ours'].parameters()) / 1e6
    gmacs = count_gmacs(pair['ours'], x[:1])
    official = OFFICIAL_GFLOPS.get(name) if size == 224 else None
    rows = []
    for mode in modes:
        bar.set_description(f'{name} b{batch} {size}px {mode}')
        dtype = mode_dtype(mode, device)
        row = Row(name, mode, batch, size, str(dtype).replace('torch.', ''), round(params, 2), round(gmacs, 3), official)
        t0 = time.perf_counter()
        fresh = {k: copy.deepcopy(m) for k, m in pair.items()}  # modes may change layout / mode in place
        fns = {k: make_runner(mode, k, fresh[k], x, device, args.threads, workdir) for k in ('ours', 'timm')}
        row.setup_s = round(time.perf_counter() - t0, 2)
        res = time_interleaved(fns, x.cpu() if mode == 'onnx' else x, device, args.repeats, args.warmup, args.timer)
        row.ours_ips, row.timm_ips = batch / res['ours']['s'], batch / res['timm']['s']
        row.ratio = row.ours_ips / row.timm_ips
        row.ours_peak_mib, row.timm_peak_mib = res['ours']['peak_mib'], res['timm']['peak_mib']
        row.ours_gflops_s = 2 * gmacs * row.ours_ips
        peak = peaks['bf16' if dtype != torch.float32 else 'fp32']
        row.frac_peak = row.ours_gflops_s / peak
        if mode in args.train_modes:
            steps = {k: train_step_fn(copy.deepcopy(m), mode, device) for k, m in pair.items()}
            tr = time_interleaved(steps, x, device, args.train_repeats, args.warmup, args.timer, no_grad=False)
            row.train_ours_ips, row.train_timm_ips = batch / tr['ours']['s'], batch / tr['timm']['s']
            row.train_ratio = row.train_ours_ips / row.train_timm_ips
        rows.append(row)
        bar.update(1)
    return rows


def select_modes(args) -> List[str]:
    modes = list(MODES) if args.modes == ['all'] else list(args.modes)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f'unknown mode(s) {bad}; choose from {MODES} or "all"')
    notes = []
    if args.device == 'cuda' and 'onnx' in modes:
        modes.remove('onnx')
        notes.append('onnx skipped: the benchmark runs onnxruntime on CPU only')
    if not native_low_precision(args.device) and not args.force_low_precision:
        skipped = [m for m in modes if m in LOW_PRECISION_MODES]
        modes = [m for m in modes if m not in LOW_PRECISION_MODES]
        if skipped:
            notes.append(f'{", ".join(skipped)} skipped: this CPU has no native bfloat16 (no AVX512-BF16/AMX), '
                         'bfloat16 is emulated and ~100x slower than float32; --force-low-precision runs them')
    if args.train_modes:
        args.train_modes = [m for m in args.train_modes if m in modes and m in ('eager', 'channels_last', 'autocast')]
    return modes, notes


def machine_info(args, peaks) -> Dict:
    info = {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'device': torch.cuda.get_device_name() if args.device == 'cuda' else cpu_name(),
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'native_low_precision': native_low_precision(args.device),
        'threads': torch.get_num_threads(), 'cores': os.cpu_count(),
        'torch': torch.__version__, 'timm': timm.__version__,
        'hrnet_zoo': hrnet_zoo.__version__, 'python': platform.python_version(),
        'timer': args.timer, 'repeats': args.repeats, 'warmup': args.warmup,
        'load_average': os.getloadavg() if hasattr(os, 'getloadavg') else None,
    }
    info.update({f'matmul_peak_{k}_gflops': round(v, 1) for k, v in peaks.items()})
    return info


FIELDS = [  # (header, Row attribute, format)
    ('model', 'model', '{}'), ('mode', 'mode', '{}'), ('batch', 'batch', '{}'), ('size', 'size', '{}'),
    ('params(M)', 'params_m', '{:.1f}'), ('GMACs', 'gmacs', '{:.2f}'), ('off.GFLOPs', 'official_gflops', '{}'),
    ('ours img/s', 'ours_ips', '{:.1f}'), ('timm img/s', 'timm_ips', '{:.1f}'), ('ours/timm', 'ratio', '{:.2f}'),
    ('GFLOP/s', 'ours_gflops_s', '{:.0f}'), ('%peak', 'frac_peak', '{:.0%}'),
    ('peak MiB', 'ours_peak_mib', '{:.0f}'), ('timm MiB', 'timm_peak_mib', '{:.0f}'),
    ('train img/s', 'train_ours_ips', '{:.1f}'), ('timm train', 'train_timm_ips', '{:.1f}'),
    ('train o/t', 'train_ratio', '{:.2f}'),
]


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return '-'
    return fmt.format(v)


def format_table(rows: Sequence[Row]) -> str:
    cells = [[h for h, _, _ in FIELDS]] + [[_fmt(f, getattr(r, a)) for _, a, f in FIELDS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(FIELDS))]
    lines = ['  '.join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def write_csv(path: str, rows: Sequence[Row]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])) if rows else ['model'])
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    write_atomic(path, buf.getvalue())


def plot(path: str, rows: Sequence[Row]) -> None:
    """Inference throughput against GMACs per image: ours filled, timm's hollow, one colour per mode."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, mode in enumerate(dict.fromkeys(r.mode for r in rows)):
        rs = [r for r in rows if r.mode == mode]
        color = f'C{i}'
        ax.plot([r.gmacs for r in rs], [r.ours_ips for r in rs], 'o-', color=color, label=f'ours {mode}')
        ax.plot([r.gmacs for r in rs], [r.timm_ips for r in rs], 'o--', color=color, mfc='none', label=f'timm {mode}')
        for r in rs:
            ax.annotate(r.model.replace('hrnet_', ''), (r.gmacs, r.ours_ips), fontsize=7,
                        textcoords='offset points', xytext=(3, 3))
    ax.set_xlabel('GMACs per image')
    ax.set_ylabel('images / s')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title('HRNet inference throughput (ours solid, timm dashed)')
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix='.png')
    os.close(fd)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS))
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[8])
    p.add_argument('--img-sizes', nargs='+', type=int, default=[224], help='square input sides (multiples of 32: timm)')
    p.add_argument('--modes', nargs='+', default=list(DEFAULT_MODES), help=f'{MODES} or "all"')
    p.add_argument('--train-modes', nargs='*', default=['eager'],
                   help='modes (eager, channels_last, autocast) that also time a training step; none: --train-modes')
    p.add_argument('--repeats', type=int, default=2,
                   help='timed runs per model and mode (median; ours and timm alternate, order swapped each round)')
    p.add_argument('--train-repeats', type=int, default=1, help='timed training steps (median)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch / onnxruntime threads (default: torch default)')
    p.add_argument('--timer', choices=('wall', 'process'), default='wall',
                   help='process: CPU time of this process, steadier on a busy machine with --threads 1')
    p.add_argument('--force-low-precision', action='store_true', help='run bf16 modes even where bf16 is emulated')
    p.add_argument('--json', metavar='FILE')
    p.add_argument('--csv', metavar='FILE')
    p.add_argument('--plot', metavar='FILE.png')
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    unknown = [m for m in args.models if m not in OFFICIAL_GFLOPS]
    if unknown:
        p.error(f'unknown model(s) {unknown}; choose from {sorted(OFFICIAL_GFLOPS)}')
    bad = [s for s in args.img_sizes if s < 32 or s % 32]
    if bad:
        p.error(f'--img-sizes {bad}: timm\'s HRNet needs multiples of 32 (>= 32) to be compared')
    if args.repeats < 1 or args.train_repeats < 1:
        p.error('--repeats and --train-repeats must be at least 1')
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes, notes = select_modes(args)
    lp = low_precision_dtype(args.device)
    peaks = {'fp32': matmul_peak(torch.float32, args.device)['gflops'], 'bf16': matmul_peak(lp, args.device)['gflops']}
    info = machine_info(args, peaks)
    print(f'{info["device"]} ({info["cpu_capability"]}), {info["threads"]} threads, torch {info["torch"]}, '
          f'timm {info["timm"]}, {info["date"]}')
    print(f'measured matmul peak: float32 {peaks["fp32"]:.0f} GFLOP/s, {lp} {peaks["bf16"]:.1f} GFLOP/s; '
          f'timer: {args.timer}, median of {args.repeats} after {args.warmup} warm-up')
    for n in notes:
        print('note:', n)
    configs = [(m, b, s) for m in args.models for b in args.batch_sizes for s in args.img_sizes]
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as workdir, \
            tqdm(total=len(configs) * len(modes), disable=args.no_progress, file=sys.stderr) as bar:
        for name, batch, size in configs:
            rows += run_config(args, name, batch, size, modes, peaks, workdir, bar)
    print(format_table(rows))
    print('ours/timm > 1: ours faster. deploy rows: timm in its best easy setting of the same precision '
          '(channels_last, + autocast for deploy_lp). %peak: achieved inference GFLOP/s (2 x GMACs x img/s) '
          'over the measured matmul peak of the row\'s dtype. peak MiB: memory above the level before the call.')
    result = {'machine': info, 'notes': notes, 'rows': [asdict(r) for r in rows]}
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        plot(args.plot, rows)
    return result


if __name__ == '__main__':
    main()
