"""Speed of hrnet_zoo's HRNet next to timm's own HRNet and the CPU runtimes, measured interleaved
in one process; it closes with the line "fastest on this machine: ...".

For each model, batch size and input size it builds every contender of the chosen modes (ours
and its peer per mode), then times them all in interleaved rounds (each round calls every
contender once, the order reversed every other round, so machine noise hits all alike), after a
warm-up that runs until a contender's timings settle (oneDNN and OpenVINO build kernels on the
first calls of each shape). Fast contenders get several calls per sample so every sample lasts
at least --min-sample-s. Each row gives the median images/s of ours and of the peer, their
spread (max - min over the samples, as a fraction of the median), params, GMACs per image
(torch FlopCounterMode, MACs = FLOPs / 2) next to the official GFLOPs, the achieved GFLOP/s as
a fraction of the measured matmul peak, and peak memory; with --train-modes also a training
step (forward, cross-entropy, backward, SGD step).

Modes: ours | its peer (the second column)
  eager          float32 NCHW | timm's model, float32 NCHW
  channels_last  float32 NHWC | timm, the same
  autocast       channels_last + bf16 autocast (float16 on CUDA) | timm, the same
  compile        torch.compile (inductor, freezing), channels_last | timm, the same
  deploy         hrnet_zoo.deploy(model) (BN folded, channels_last, float32) | timm channels_last
  deploy_lp      hrnet_zoo.deploy(model, dtype=bfloat16) | timm channels_last + bf16 autocast
                 (timm's best easy setting)
  onnx           deploy(backend='onnxruntime') | timm's model exported to ONNX, onnxruntime
  openvino       deploy(backend='openvino'), the natural call with no dtype: OpenVINO's own default
                 precision (bf16 on CPUs with native bf16, else f32; the row's dtype is what it
                 reports) | raw OpenVINO: ov.Core().compile_model on the same ONNX export, default
                 settings
  openvino_bf16  deploy(backend='openvino', dtype=torch.bfloat16) | raw OpenVINO default (as above)
  int8           deploy(backend='openvino', dtype=torch.int8), NNCF post-training quantization on
                 16 calibration images | raw OpenVINO default (as above)
For task models (--task pose | segmentation) the peer is the same model in plain PyTorch (timm
has no task models), under the same settings.
Low-precision modes are skipped on a CPU without native bfloat16 (AVX512-BF16 / AMX): there
bfloat16 is emulated and ~100x slower than float32. --force-low-precision runs them anyway.

    python benchmarks/speed.py                          # defaults: ~2.5 min on 2 CPU cores
    python benchmarks/speed.py --task pose              # hrnet_w32_pose_coco_256x192 at 256x192
    python benchmarks/speed.py --models hrnet_w32 --modes all --json out.json --plot out.png
    python benchmarks/speed.py --models hrnet_w32 --modes openvino openvino_bf16 int8   # the natural call
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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import timm
import timm.models.hrnet as timm_hrnet
import torch
from torch import nn
from tqdm import tqdm

import hrnet_zoo
from hrnet_zoo.deploy import DeployedModel, native_bfloat16

# The smallest classifier and the paper's reference one (the goals are on hrnet_w32); each
# model costs 30-70 s on 2 cores (NNCF's int8 quantization alone 6-25 s): --models adds more.
DEFAULT_MODELS = ('hrnet_w18_small', 'hrnet_w32')
MODES = ('eager', 'channels_last', 'autocast', 'compile', 'deploy', 'deploy_lp', 'onnx', 'openvino', 'openvino_bf16',
         'int8')
# eager, channels_last and compile are left out of the defaults (--modes all runs them; compile
# takes minutes per model), and openvino_bf16 (where bf16 is native it is what the openvino mode
# runs): the defaults must finish in under 3 minutes on 2 cores.
DEFAULT_MODES = ('deploy', 'deploy_lp', 'onnx', 'openvino', 'int8')
LOW_PRECISION_MODES = ('autocast', 'deploy_lp', 'openvino_bf16')
ONNX_MODES = ('onnx', 'openvino', 'openvino_bf16', 'int8')
# Task models at their input sizes (height, width) and default batch (--task).
TASKS = {
    'classification': None,
    'pose': ('hrnet_w32_pose_coco_256x192', (256, 192), 8),
    'segmentation': ('hrnet_w18_seg_cityscapes', (512, 1024), 1),
}
# Official GFLOPs at 224x224 (HRNet-Image-Classification README, as in the project GUIDE).
OFFICIAL_GFLOPS = {
    'hrnet_w18_small': 1.49, 'hrnet_w18_small_v2': 2.42, 'hrnet_w18': 3.99, 'hrnet_w30': 7.55,
    'hrnet_w32': 8.31, 'hrnet_w40': 11.8, 'hrnet_w44': 13.9, 'hrnet_w48': 16.1, 'hrnet_w64': 26.9,
}
CALIBRATION_IMAGES = 16


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
    """Whether low-precision compute is native (CUDA: float16; a CPU with AVX512-BF16 / AMX: bf16)."""
    return device == 'cuda' or native_bfloat16('cpu')


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
    """Ours and its reference with the same (random, seeded) weights, eval mode: timm's model for a
    classifier, a copy of the same model (run in plain PyTorch) for a task model."""
    torch.manual_seed(0)
    if name in OFFICIAL_GFLOPS:
        ref = timm_reference(name)
        ours = hrnet_zoo.create_model(name)
        ours.load_state_dict(ref.state_dict())
    else:
        ours = hrnet_zoo.create_model(name)
        ref = copy.deepcopy(ours)
    return {'ours': ours.to(device).eval(), 'ref': ref.to(device).eval()}


def count_gmacs(model: nn.Module, x: torch.Tensor) -> float:
    """GMACs per image of one forward pass (FlopCounterMode FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 2 / 1e9 / x.shape[0]


# --- contenders: each is a function image batch -> output ---------------------------------------

# mode -> (our contender, its peer); contenders shared between modes are built and timed once.
PAIRS = {
    'eager': ('ours:eager', 'ref:eager'), 'channels_last': ('ours:channels_last', 'ref:channels_last'),
    'autocast': ('ours:autocast', 'ref:autocast'), 'compile': ('ours:compile', 'ref:compile'),
    'deploy': ('ours:deploy', 'ref:channels_last'), 'deploy_lp': ('ours:deploy_lp', 'ref:autocast'),
    'onnx': ('ours:onnx', 'ref:onnx'), 'openvino': ('ours:openvino', 'raw:openvino'),
    'openvino_bf16': ('ours:openvino_bf16', 'raw:openvino'), 'int8': ('ours:int8', 'raw:openvino'),
}


def label(key: str, ref_name: str, lp: str) -> str:
    """A contender's name in the report (``ref_name``: 'timm' or 'PyTorch'; ``lp``: bf16 / fp16)."""
    return {
        'ours:eager': 'ours eager fp32', 'ours:channels_last': 'ours channels_last fp32',
        'ours:autocast': f'ours channels_last + {lp} autocast', 'ours:compile': 'ours torch.compile fp32',
        'ours:deploy': 'hrnet_zoo.deploy() fp32', 'ours:deploy_lp': f'hrnet_zoo.deploy({lp})',
        'ours:onnx': "deploy(backend='onnxruntime') fp32", 'ours:openvino': "deploy(backend='openvino'), no dtype",
        'ours:openvino_bf16': f"deploy(backend='openvino', dtype={lp})",
        'ours:int8': "deploy(backend='openvino') int8", 'raw:openvino': 'OpenVINO default on our ONNX',
        'ref:eager': f'{ref_name} eager fp32', 'ref:channels_last': f'{ref_name} channels_last fp32',
        'ref:autocast': f'{ref_name} channels_last + {lp} autocast', 'ref:compile': f'{ref_name} torch.compile fp32',
        'ref:onnx': f'{ref_name} onnxruntime fp32',
    }[key]


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


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter('ignore')
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _export(model: nn.Module, x: torch.Tensor, path: str, timm_model: bool) -> str:
    with _quiet():
        if not timm_model:
            return hrnet_zoo.export_onnx(model.cpu().float(), path, dynamic_hw=True, check=False)
        with torch.no_grad():  # timm's HRNet upsamples by fixed factors: exported at the benchmark's size
            torch.onnx.export(model.cpu().float(), (x[:1],), path, input_names=['input'], output_names=['output'],
                              dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}},
                              opset_version=18, dynamo=False)
    return path


def _raw_onnxruntime(path: str, threads: Optional[int]) -> Callable:
    from hrnet_zoo.deploy import onnx_session
    session = onnx_session(path, threads)
    return lambda x: session.run(None, {'input': x.numpy()})


def _raw_openvino(path: str, threads: Optional[int]) -> Callable:
    """OpenVINO as a user runs it: read the ONNX file, compile for CPU with default settings
    (the thread's signal stack is kept, as deploy does: it does not change the timings)."""
    import openvino as ov
    from hrnet_zoo.deploy.runtimes import keep_sigaltstack
    with keep_sigaltstack():
        core = ov.Core()
        request = core.compile_model(path, 'CPU', {'INFERENCE_NUM_THREADS': threads} if threads else {}).create_infer_request()
    return lambda x: request.infer({0: x.numpy()})


def calibration_batch(x: torch.Tensor, n: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """``n`` fixed smooth random images of ``x``'s size (speed does not depend on their content)."""
    g = torch.Generator().manual_seed(3)
    low = torch.randn(n, x.shape[1], 8, 8, generator=g)
    return nn.functional.interpolate(low, size=x.shape[-2:], mode='bilinear') + 0.1 * torch.randn(n, *x.shape[1:], generator=g)


def build_contender(key: str, pair: Dict[str, nn.Module], x: torch.Tensor, device: str,
                    threads: Optional[int], workdir: str, timm_ref: bool) -> Callable:
    """The inference function of contender ``key`` (see :data:`PAIRS`)."""
    which, mode = key.split(':')
    model = copy.deepcopy(pair['ref' if which == 'ref' else 'ours'])  # modes may change layout in place
    lp = low_precision_dtype(device)
    if mode == 'eager':
        return model
    if mode == 'channels_last':
        return _channels_last(model)
    if mode == 'autocast':
        return _autocast(model, device)
    if mode == 'compile':
        return _compile(model, x)
    if mode == 'onnx' and which == 'ref':
        return _raw_onnxruntime(_export(model, x, os.path.join(workdir, 'ref.onnx'), timm_ref), threads)
    if which == 'raw':
        return _raw_openvino(_export(model, x, os.path.join(workdir, 'ours.onnx'), False), threads)
    one = x[:1]  # deploy's example input (BN probing, export, output checks): one image is enough
    with _quiet():
        if mode == 'deploy':
            return hrnet_zoo.deploy(model, example_input=one)
        if mode == 'deploy_lp':
            return hrnet_zoo.deploy(model, dtype=lp, example_input=one)
        if mode == 'onnx':
            return hrnet_zoo.deploy(model, backend='onnxruntime', threads=threads, example_input=one)
        if mode == 'openvino':  # the natural call: no dtype, OpenVINO's own default precision
            return hrnet_zoo.deploy(model, backend='openvino', threads=threads, example_input=one)
        if mode == 'openvino_bf16':
            return hrnet_zoo.deploy(model, dtype=lp, backend='openvino', threads=threads, example_input=one)
        if mode == 'int8':  # random weights: deploy's accuracy check means nothing here (see int8_accuracy.py)
            return hrnet_zoo.deploy(model, dtype=torch.int8, backend='openvino', calibration=calibration_batch(x),
                                    threads=threads, check=False, example_input=one)
    raise ValueError(f'unknown contender {key!r}')


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


def settle(fn: Callable, x: torch.Tensor, device: str, now: Callable, min_calls: int, max_calls: int = 10,
           tol: float = 0.1, budget_s: float = 20.0) -> float:
    """Warm ``fn`` up until two consecutive calls agree within ``tol`` (at least ``min_calls``
    calls; at most ``max_calls`` or ``budget_s``); returns the seconds of the faster of the last two."""
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max(max_calls, min_calls):
        sync(device)
        t = now()
        fn(x)
        sync(device)
        times.append(now() - t)
        if len(times) >= max(min_calls, 2) and abs(times[-1] - times[-2]) <= tol * min(times[-2:]):
            break
        if len(times) >= max(min_calls, 2) and time.perf_counter() - start > budget_s:
            break
    return min(times[-2:])


def time_interleaved(fns: Dict[str, Callable], x: torch.Tensor, device: str, repeats: int, warmup: int,
                     timer: str = 'wall', no_grad: bool = True, min_sample_s: float = 0.0,
                     on_round: Optional[Callable[[], None]] = None, pause_s: float = 0.0) -> Dict[str, Dict[str, float]]:
    """Seconds per call of each function: warmed up until its timings settle (at least ``warmup``
    calls), then ``repeats`` interleaved rounds (the order reversed every other round); a sample is
    enough back-to-back calls to last ``min_sample_s``, and ``pause_s`` of sleep before each sample
    lets the threads of the previous runtime stop spin-waiting (OpenMP, onnxruntime and OpenVINO
    thread pools spin after a call and would slow whichever contender comes next). Returns per function the median, the
    spread ((max - min) / median over the samples), the calls per sample and the peak memory (of one
    more call after the timed ones: the sampling thread would slow the timed calls)."""
    now = clock(timer)
    times = {k: [] for k in fns}
    peaks = {k: 0.0 for k in fns}
    inner = {}
    ctx = torch.no_grad if no_grad else contextlib.nullcontext
    with ctx():
        for k, f in fns.items():
            first = settle(f, x, device, now, warmup) if warmup > 0 else float('inf')
            inner[k] = max(1, min(50, int(min_sample_s / first) if first > 0 else 1))
        order = list(fns)
        for i in range(repeats):
            for k in (order if i % 2 == 0 else order[::-1]):
                if pause_s:
                    time.sleep(pause_s)
                sync(device)
                t = now()
                for _ in range(inner[k]):
                    fns[k](x)
                sync(device)
                times[k].append((now() - t) / inner[k])
            if on_round is not None:
                on_round()
        for k, f in fns.items():  # memory in a call of its own: the sampling thread would slow the timed ones
            with PeakMemory(device) as mem:
                f(x)
            peaks[k] = mem.peak_mib
    out = {}
    for k, v in times.items():
        med = statistics.median(v)
        out[k] = {'s': med, 'spread': (max(v) - min(v)) / med if med > 0 else 0.0, 'calls': inner[k],
                  'peak_mib': peaks[k]}
    return out


# --- the benchmark ----------------------------------------------------------------------------

@dataclass
class Row:
    model: str
    mode: str
    batch: int
    size: str
    dtype: str
    params_m: float
    gmacs: float
    official_gflops: Optional[float]
    peer: str = ''
    ours_ips: float = float('nan')
    peer_ips: float = float('nan')
    timm_ips: float = float('nan')  # = peer_ips where the peer is timm's model, else nan
    ratio: float = float('nan')  # ours / peer
    ours_spread: float = float('nan')
    peer_spread: float = float('nan')
    ours_gflops_s: float = float('nan')
    frac_peak: float = float('nan')
    ours_peak_mib: float = float('nan')
    timm_peak_mib: float = float('nan')
    train_ours_ips: float = float('nan')
    train_timm_ips: float = float('nan')
    train_ratio: float = float('nan')
    setup_s: float = float('nan')
    note: str = ''


def mode_dtype(mode: str, device: str, contender: Optional[Callable] = None) -> str:
    """The precision a mode's contender runs: what a deployed model reports (``.precision``: for
    the openvino mode OpenVINO's own choice), else what the mode asks for."""
    if isinstance(contender, DeployedModel):
        return str(contender.precision).replace('torch.', '')
    if mode == 'int8':
        return 'int8'
    if mode in LOW_PRECISION_MODES:
        return str(low_precision_dtype(device)).replace('torch.', '')
    return 'float32'


def size_str(hw: Tuple[int, int]) -> str:
    return str(hw[0]) if hw[0] == hw[1] else f'{hw[0]}x{hw[1]}'


@dataclass
class ConfigResult:
    """All contenders of one model / batch / size: seconds per call and labels (for the verdict)."""
    model: str
    batch: int
    size: str
    ips: Dict[str, float]
    labels: Dict[str, str]


def run_config(args, name: str, batch: int, hw: Tuple[int, int], modes: Sequence[str], peaks: Dict[str, float],
               workdir: str, bar) -> Tuple[List[Row], ConfigResult]:
    device = args.device
    pair = build_pair(name, device)
    timm_ref = name in OFFICIAL_GFLOPS
    ref_name = 'timm' if timm_ref else 'PyTorch'
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *hw, generator=g).to(device)
    params = sum(p.numel() for p in pair['ours'].parameters()) / 1e6
    gmacs = count_gmacs(pair['ours'], x[:1])
    official = OFFICIAL_GFLOPS.get(name) if hw == (224, 224) else None
    lp = str(low_precision_dtype(device)).replace('torch.', '').replace('bfloat16', 'bf16').replace('float16', 'fp16')
    keys = list(dict.fromkeys(k for m in modes for k in PAIRS[m]))
    fns, setup = {}, {}
    for key in keys:
        bar.set_description(f'{name} b{batch} {size_str(hw)} build {key}')
        t0 = time.perf_counter()
        fns[key] = build_contender(key, pair, x, device, args.threads, workdir, timm_ref)
        setup[key] = time.perf_counter() - t0
        bar.update(1)
    bar.set_description(f'{name} b{batch} {size_str(hw)} timing {len(fns)} contenders')
    res = time_interleaved(fns, x, device, args.repeats, args.warmup, args.timer, min_sample_s=args.min_sample_s,
                           on_round=lambda: bar.update(1), pause_s=args.pause_s)
    rows = []
    for mode in modes:
        ours, peer = PAIRS[mode]
        row = Row(name, mode, batch, size_str(hw), mode_dtype(mode, device, fns[ours]), round(params, 2), round(gmacs, 3),
                  official, peer=label(peer, ref_name, lp))
        row.setup_s = round(setup[ours], 2)
        row.ours_ips, row.peer_ips = batch / res[ours]['s'], batch / res[peer]['s']
        if peer.startswith('ref:') and timm_ref:
            row.timm_ips = row.peer_ips
        row.ratio = row.ours_ips / row.peer_ips
        row.ours_spread, row.peer_spread = res[ours]['spread'], res[peer]['spread']
        row.ours_peak_mib, row.timm_peak_mib = res[ours]['peak_mib'], res[peer]['peak_mib']
        row.ours_gflops_s = 2 * gmacs * row.ours_ips
        row.frac_peak = row.ours_gflops_s / peaks['fp32' if row.dtype == 'float32' else 'bf16']
        if mode in args.train_modes:
            steps = {k: train_step_fn(copy.deepcopy(pair[k]), mode, device) for k in ('ours', 'ref')}
            tr = time_interleaved(steps, x, device, args.train_repeats, 1, args.timer, no_grad=False)
            row.train_ours_ips, row.train_timm_ips = batch / tr['ours']['s'], batch / tr['ref']['s']
            row.train_ratio = row.train_ours_ips / row.train_timm_ips
        rows.append(row)
    result = ConfigResult(name, batch, size_str(hw), {k: batch / v['s'] for k, v in res.items()},
                          {k: label(k, ref_name, lp) for k in res})
    return rows, result


def verdict(result: ConfigResult) -> List[str]:
    """The closing lines of one configuration: the fastest contender, and the goal ratios."""
    ips, lab = result.ips, result.labels
    where = f'{result.model} b{result.batch} {result.size}'
    best = max(ips, key=ips.get)
    easy = 'ref:autocast' if 'ref:autocast' in ips else ('ref:channels_last' if 'ref:channels_last' in ips else None)
    lines = []
    ratios = []
    if easy:
        ratios.append(f'{ips[best] / ips[easy]:.2f}x {lab[easy]}')
    if 'raw:openvino' in ips and best != 'raw:openvino':
        ratios.append(f'{ips[best] / ips["raw:openvino"]:.2f}x {lab["raw:openvino"]}')
    goals = []
    if 'ours:openvino' in ips and 'raw:openvino' in ips:
        goals.append(f"deploy(backend='openvino') (no dtype) / raw OpenVINO default "
                     f"{ips['ours:openvino'] / ips['raw:openvino']:.2f} (goal >= 0.97)")
    if 'ours:openvino_bf16' in ips and 'raw:openvino' in ips:
        ratio = ips['ours:openvino_bf16'] / ips['raw:openvino']
        goals.append(f"{lab['ours:openvino_bf16']} / raw OpenVINO default {ratio:.2f}")
    ours = [k for k in ips if k.startswith('ours:') and k != 'ours:int8']
    if easy and ours:
        top = max(ours, key=ips.get)
        goals.append(f'best of ours without int8 ({lab[top]}) / {lab[easy]} {ips[top] / ips[easy]:.2f} (goal >= 1.3)')
    if 'ours:int8' in ips and 'raw:openvino' in ips:
        goals.append(f'int8 / OpenVINO default {ips["ours:int8"] / ips["raw:openvino"]:.2f} (goal >= 1.8)')
    if goals:
        lines.append(f'{where}: ' + '; '.join(goals))
    lines.append(f'fastest on this machine: {lab[best]} for {where}, {ips[best]:.1f} img/s'
                 + (f' ({", ".join(ratios)})' if ratios else ''))
    return lines


def select_modes(args) -> List[str]:
    modes = list(MODES) if args.modes == ['all'] else list(args.modes)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f'unknown mode(s) {bad}; choose from {MODES} or "all"')
    notes = []
    if args.device == 'cuda' and any(m in ONNX_MODES for m in modes):
        notes.append(f'{", ".join(m for m in modes if m in ONNX_MODES)} skipped: the benchmark runs onnxruntime / '
                     'OpenVINO on CPU only')
        modes = [m for m in modes if m not in ONNX_MODES]
    from hrnet_zoo.deploy.api import _available  # what each deploy backend needs installed
    missing = [m for m, backend, dtype in (('onnx', 'onnxruntime', None), ('openvino', 'openvino', None),
                                           ('openvino_bf16', 'openvino', None), ('int8', 'openvino', torch.int8))
               if m in modes and not _available(backend, dtype)]
    if missing:
        modes = [m for m in modes if m not in missing]
        notes.append(f'{", ".join(missing)} skipped: pip install "hrnet-zoo[onnx,openvino]" to run them')
    if not native_low_precision(args.device) and not args.force_low_precision:
        skipped = [m for m in modes if m in LOW_PRECISION_MODES]
        modes = [m for m in modes if m not in LOW_PRECISION_MODES]
        if skipped:
            notes.append(f'{", ".join(skipped)} skipped: this CPU has no native bfloat16 (no AVX512-BF16/AMX), '
                         'bfloat16 is emulated and ~100x slower than float32; --force-low-precision runs them')
    if args.train_modes:
        args.train_modes = [m for m in args.train_modes if m in modes and m in ('eager', 'channels_last', 'autocast')]
        if args.task != 'classification' and args.train_modes:
            notes.append('--train-modes ignored for task models (the step is a classifier cross-entropy step)')
            args.train_modes = []
    return modes, notes


CPU_FLAGS = ('avx512_bf16', 'amx_bf16', 'amx_int8', 'avx512_vnni', 'avx512f', 'avx2')


def machine_info(args, peaks) -> Dict:
    info = {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'device': torch.cuda.get_device_name() if args.device == 'cuda' else cpu_name(),
        'cpu_flags': [f for f in CPU_FLAGS if f in cpu_flags()],
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'native_low_precision': native_low_precision(args.device),
        'threads': torch.get_num_threads(), 'cores': os.cpu_count(),
        'torch': torch.__version__, 'timm': timm.__version__,
        'hrnet_zoo': hrnet_zoo.__version__, 'python': platform.python_version(),
        'timer': args.timer, 'repeats': args.repeats, 'warmup': args.warmup, 'min_sample_s': args.min_sample_s,
        'pause_s': args.pause_s,
        'load_average': os.getloadavg() if hasattr(os, 'getloadavg') else None,
    }
    for pkg in ('onnxruntime', 'openvino', 'nncf'):
        with contextlib.suppress(Exception):
            info[pkg] = __import__(pkg).__version__
    info.update({f'matmul_peak_{k}_gflops': round(v, 1) for k, v in peaks.items()})
    return info


FIELDS = [  # (header, Row attribute, format)
    ('model', 'model', '{}'), ('mode', 'mode', '{}'), ('dtype', 'dtype', '{}'), ('batch', 'batch', '{}'),
    ('size', 'size', '{}'), ('params(M)', 'params_m', '{:.1f}'), ('GMACs', 'gmacs', '{:.2f}'),
    ('off.GFLOPs', 'official_gflops', '{}'),
    ('ours img/s', 'ours_ips', '{:.1f}'), ('+-', 'ours_spread', '{:.0%}'), ('peer', 'peer', '{}'),
    ('peer img/s', 'peer_ips', '{:.1f}'), ('+- ', 'peer_spread', '{:.0%}'), ('ours/peer', 'ratio', '{:.2f}'),
    ('GFLOP/s', 'ours_gflops_s', '{:.0f}'), ('%peak', 'frac_peak', '{:.0%}'),
    ('peak MiB', 'ours_peak_mib', '{:.0f}'), ('train img/s', 'train_ours_ips', '{:.1f}'),
    ('ref train', 'train_timm_ips', '{:.1f}'), ('train o/r', 'train_ratio', '{:.2f}'),
]
LEFT = ('model', 'mode', 'dtype', 'peer')


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return '-'
    return fmt.format(v)


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table; columns whose every cell is empty (e.g. training when not timed) are left out."""
    fields = [f for f in FIELDS if any(_fmt(f[2], getattr(r, f[1])) != '-' for r in rows)] or FIELDS
    cells = [[h for h, _, _ in fields]] + [[_fmt(f, getattr(r, a)) for _, a, f in fields] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(fields))]
    lines = ['  '.join(c.ljust(w) if fields[i][1] in LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
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
        ax.plot([r.gmacs for r in rs], [r.peer_ips for r in rs], 'o--', color=color, mfc='none', label=f'peer {mode}')
        for r in rs:
            ax.annotate(r.model.replace('hrnet_', ''), (r.gmacs, r.ours_ips), fontsize=7,
                        textcoords='offset points', xytext=(3, 3))
    ax.set_xlabel('GMACs per image')
    ax.set_ylabel('images / s')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title('HRNet inference throughput (ours solid, peer dashed)')
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix='.png')
    os.close(fd)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--task', choices=tuple(TASKS), default='classification',
                   help='pose / segmentation: time that task model at its input size (--models, --img-sizes ignored)')
    p.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS))
    p.add_argument('--batch-sizes', nargs='+', type=int, default=None,
                   help='default 8 (segmentation: 1)')
    p.add_argument('--img-sizes', nargs='+', type=int, default=[224], help='square input sides (multiples of 32: timm)')
    p.add_argument('--modes', nargs='+', default=list(DEFAULT_MODES), help=f'{MODES} or "all"')
    p.add_argument('--train-modes', nargs='*', default=[],
                   help='modes (eager, channels_last, autocast) that also time a training step (classifiers)')
    p.add_argument('--repeats', type=int, default=5,
                   help='timed rounds (median; every contender once per round, the order reversed each round)')
    p.add_argument('--train-repeats', type=int, default=1, help='timed training steps (median)')
    p.add_argument('--warmup', type=int, default=2,
                   help='warm-up calls at least; warm-up goes on until two calls agree within 10%% (at most 10)')
    p.add_argument('--min-sample-s', type=float, default=0.25,
                   help='a timed sample repeats a fast contender until it lasts this long (at most 50 calls)')
    p.add_argument('--pause-s', type=float, default=0.05,
                   help='sleep before each timed sample, so the previous contender\'s threads stop spinning')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch / onnxruntime / OpenVINO threads (default: theirs)')
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
    if args.task == 'classification':
        unknown = [m for m in args.models if m not in OFFICIAL_GFLOPS]
        if unknown:
            p.error(f'unknown model(s) {unknown}; choose from {sorted(OFFICIAL_GFLOPS)} (task models: --task)')
        bad = [s for s in args.img_sizes if s < 32 or s % 32]
        if bad:
            p.error(f'--img-sizes {bad}: timm\'s HRNet needs multiples of 32 (>= 32) to be compared')
    if args.repeats < 1 or args.train_repeats < 1 or args.warmup < 0:
        p.error('--repeats and --train-repeats must be at least 1, --warmup at least 0')
    return args


def configs_of(args) -> List[Tuple[str, int, Tuple[int, int]]]:
    """(model, batch, (height, width)) of each configuration to time."""
    if args.task != 'classification':
        name, hw, batch = TASKS[args.task]
        return [(name, b, hw) for b in (args.batch_sizes or [batch])]
    return [(m, b, (s, s)) for m in args.models for b in (args.batch_sizes or [8]) for s in args.img_sizes]


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes, notes = select_modes(args)
    lp = low_precision_dtype(args.device)
    peaks = {'fp32': matmul_peak(torch.float32, args.device)['gflops'], 'bf16': matmul_peak(lp, args.device)['gflops']}
    info = machine_info(args, peaks)
    print(f'{info["device"]} ({info["cpu_capability"]}; flags: {" ".join(info["cpu_flags"]) or "none of interest"}; '
          f'native bf16: {"yes" if info["native_low_precision"] else "no"}), {info["threads"]} threads, '
          f'torch {info["torch"]}, timm {info["timm"]}, onnxruntime {info.get("onnxruntime", "-")}, '
          f'openvino {info.get("openvino", "-")}, {info["date"]}, load average {info["load_average"][0]:.2f}')
    print(f'measured matmul peak: float32 {peaks["fp32"]:.0f} GFLOP/s, {lp} {peaks["bf16"]:.1f} GFLOP/s; '
          f'timer: {args.timer}, median of {args.repeats} interleaved rounds after warm-up until settled '
          f'(>= {args.warmup} calls), samples >= {args.min_sample_s} s')
    for n in notes:
        print('note:', n)
    configs = configs_of(args)
    n_contenders = len(dict.fromkeys(k for m in modes for k in PAIRS[m]))
    rows: List[Row] = []
    results: List[ConfigResult] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, \
            tqdm(total=len(configs) * (n_contenders + args.repeats), disable=args.no_progress, file=sys.stderr) as bar:
        for name, batch, hw in configs:
            config_rows, result = run_config(args, name, batch, hw, modes, peaks, workdir, bar)
            rows += config_rows
            results.append(result)
    print(format_table(rows))
    print('ours/peer (ours/timm where the peer is timm\'s model) > 1: ours faster. +-: spread of the samples, (max - min) / median. The peer of each mode is '
          'named in its row (timm\'s best easy setting: channels_last + bf16 autocast). %peak: achieved inference '
          'GFLOP/s (2 x GMACs x img/s) over the measured matmul peak of the row\'s dtype (int8: the bf16 peak). '
          f'Took {time.perf_counter() - t0:.0f} s.')
    closing = [line for r in results for line in verdict(r)]
    for line in closing:
        print(line)
    result = {'machine': info, 'notes': notes, 'rows': [asdict(r) for r in rows],
              'contenders': [asdict(r) for r in results], 'verdict': closing}
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        plot(args.plot, rows)
    return result


if __name__ == '__main__':
    main()
