""":func:`deploy`: an inference-only copy of a model on the fastest path this machine has."""
from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils._pytree import tree_map

from .calibration import MIN_CALIBRATION_IMAGES, calibration_images
from .folding import check_close, fold_batchnorm, probe_input
from .onnx_export import other_size
from .runtimes import RUNTIMES, STATIC_SHAPES, build_runtime, dtype_name

LOG = logging.getLogger('hrnet_zoo.deploy')
LOW_PRECISION = (torch.bfloat16, torch.float16)
DTYPES = (None, torch.float32, torch.bfloat16, torch.float16, torch.int8)
DTYPE_NAMES = {dtype_name(d): d for d in DTYPES if d is not None}  # 'float32', 'bfloat16', 'float16', 'int8'
BACKENDS = ('eager', 'inductor', 'onnxruntime', 'openvino', 'auto')
AUTO_CANDIDATES = ('eager', 'openvino', 'onnxruntime')  # not inductor: it compiles for minutes per input shape
# The agreement a deployed model must show with the float32 original on the check inputs, by the
# precision it runs in (float32: max abs difference <= 1e-3 x the output's scale instead).
MIN_COSINE = {None: None, torch.float32: None, torch.bfloat16: 0.99, torch.float16: 0.99, torch.int8: 0.95}
# backend='auto': a more precise candidate within this fraction of the fastest one's time is chosen
# instead (a few % is within the noise of a short timing on a shared CPU).
AUTO_TOLERANCE = 0.05
PRECISION_RANK = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 1, torch.int8: 2}  # lower: more precise


class DeployedModel(nn.Module):
    """Runs ``body`` (folded, channels_last, maybe low precision; or a compiled runtime graph) and
    returns outputs in the input's dtype. ``model`` is the folded module tree (for its attributes,
    e.g. ``feature_info``); ``backend`` and ``precision`` say what runs (``precision``: the dtype
    the backend computes in, e.g. OpenVINO's own choice where no dtype was given); ``reason`` why
    that precision / backend (shown by ``repr``)."""

    def __init__(self, body: nn.Module, model: nn.Module, dtype: Optional[torch.dtype], channels_last: bool,
                 backend: str = 'eager', precision: Optional[torch.dtype] = None, reason: str = ''):
        super().__init__()
        self.body = body
        self.dtype = dtype
        self.channels_last = channels_last
        self.backend = backend
        self.precision = precision if precision is not None else (dtype or torch.float32)
        self.reason = reason
        self.__dict__['model'] = model  # a plain reference: not a second copy in state_dict()

    def forward(self, x: torch.Tensor):
        out_dtype = x.dtype
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is not None:
            x = x.to(self.dtype)
        with torch.no_grad():  # (inductor freezing needs no_grad rather than inference_mode)
            out = self.body(x)
        if self.dtype is None:
            return out
        return tree_map(lambda t: t.to(out_dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out)

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError('a deployed model is inference-only (BatchNorm is folded); train the original model')
        return super().train(False)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self.__dict__.get('model')
            if model is None:
                raise
            return getattr(model, name)

    def extra_repr(self) -> str:
        text = f'backend={self.backend!r}, precision={self.precision}'
        return text + (f', reason={self.reason!r}' if self.reason else '')


def resolve_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """``dtype`` as a torch dtype; its name (``'float32'``, ``'bfloat16'``, ``'float16'``,
    ``'int8'``: a command line's ``--dtype``) is accepted too."""
    if isinstance(dtype, str):
        if dtype not in DTYPE_NAMES:
            raise ValueError(f'deploy(dtype={dtype!r}): the dtype names are {sorted(DTYPE_NAMES)}')
        return DTYPE_NAMES[dtype]
    return dtype


def native_bfloat16(device: Union[str, torch.device] = 'cpu') -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (elsewhere torch emulates bf16 on the CPU, about 100x slower than float32)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != 'cpu':
        return False
    return any(getattr(torch.cpu, f, lambda: False)() for f in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'))


def _reason(backend: str, dtype: Optional[torch.dtype], precision: torch.dtype, images=None) -> str:
    """Why ``backend`` runs ``precision`` (``dtype``: what the caller asked for)."""
    if dtype == torch.int8:
        return f'int8 as asked, calibrated on {len(images)} images' if images is not None else 'int8 as asked'
    if dtype is not None:
        return ''
    if backend == 'openvino':
        return (f"OpenVINO's default inference precision on this CPU ({dtype_name(precision)}; "
                'dtype=torch.float32 forces float32)')
    return (f'float32: no dtype given, and {backend} has no low-precision default of its own (it computes in '
            'the dtype it is given; dtype=torch.bfloat16 asks for bf16)')


def _check_args(dtype, channels_last, backend, streams=None, static_shapes=STATIC_SHAPES):
    if dtype not in DTYPES:
        raise ValueError('deploy(dtype=...) takes None, torch.float32, torch.bfloat16, torch.float16 or torch.int8 '
                         f'(or their names), got {dtype}')
    if backend not in BACKENDS:
        raise ValueError(f'deploy(backend=...) must be one of {BACKENDS}, got {backend!r}')
    if dtype == torch.int8 and backend in ('eager', 'inductor'):
        raise ValueError(f"deploy(dtype=torch.int8) runs on backend='openvino' (NNCF) or 'onnxruntime', "
                         f'not {backend!r}')
    if streams is not None and not (isinstance(streams, int) and streams >= 1):
        raise ValueError(f'deploy(streams=...) takes None or a positive int, got {streams!r}')
    if not (isinstance(static_shapes, int) and static_shapes >= 0):
        raise ValueError(f'deploy(static_shapes=...) takes an int >= 0, got {static_shapes!r}')
    if (streams is not None or static_shapes != STATIC_SHAPES) and backend not in ('openvino', 'auto'):
        raise ValueError(f"deploy(streams=, static_shapes=) tune backend='openvino', not {backend!r}")


def deploy(model: nn.Module, dtype: Union[None, str, torch.dtype] = None, channels_last: bool = True,
           backend: str = 'eager', example_input: Optional[torch.Tensor] = None, check: bool = True, *,
           calibration: Any = None, calibration_size: Optional[int] = None, threads: Optional[int] = None,
           options: Optional[Dict[str, Any]] = None, quantization: Optional[Dict[str, Any]] = None,
           streams: Optional[int] = None, static_shapes: int = STATIC_SHAPES) -> nn.Module:
    """An inference-only copy of ``model``: BatchNorm folded into the convs, then run by ``backend``.

    Args:
        model: any model made of Conv2d/BatchNorm2d/... (classifier, ``features_only``, task model).
        dtype: ``None`` (default): the backend's own default precision where the CPU runs it
            natively: OpenVINO sets no precision hint and runs what it picks (bfloat16 on CPUs with
            AVX512-BF16 / AMX, float32 on other x86 CPUs; read back into ``.precision``); eager,
            inductor and onnxruntime have no low-precision default of their own (they compute in
            the dtype they are given) and run float32. ``torch.float32`` forces float32 everywhere
            (OpenVINO's hint ``f32``). ``torch.bfloat16`` / ``torch.float16``: weights and compute
            (bf16 only where native; OpenVINO refuses it elsewhere). ``torch.int8``: post-training
            quantization on ``calibration`` (OpenVINO or ONNX Runtime). A name (``'bfloat16'``)
            works too. Inputs may be any float dtype; floating outputs come back in the input's dtype.
        channels_last: NHWC weights and inputs (eager / inductor: faster oneDNN convolutions).
        backend: ``'eager'`` (a module tree, ready at once), ``'inductor'`` (``torch.compile`` with
            freezing; compiles on the first call of each input shape), ``'openvino'`` or
            ``'onnxruntime'`` (the folded model exported to ONNX with dynamic batch, height and
            width, compiled once for all sizes; CPU only; extras ``hrnet-zoo[openvino]`` /
            ``hrnet-zoo[onnx]``), or ``'auto'``: every installed backend / precision that runs
            ``dtype`` is built and checked, timed on ``example_input`` in interleaved rounds, and the
            fastest kept (a more precise one within 5 % of it wins). With ``dtype=None`` the
            candidates are eager float32 (and bfloat16 where native), onnxruntime float32 and
            OpenVINO's default (and bfloat16 where native and not its default); int8 (OpenVINO and
            ONNX Runtime) joins them when ``calibration=`` is given. The result says what it chose
            and why (``.backend``, ``.precision``, ``.reason``, ``.auto_candidates``: seconds per
            call, or why a candidate was left out; logged at INFO on ``hrnet_zoo.deploy``).
        example_input: a representative input (default: a 2x3x64x64 random batch), used to find the
            conv -> BN pairs, to export and to check the deployed model (and for ``'auto'`` timing:
            pass the batch size and image size you will run).
        check: compare with ``model`` on the example input (and, for the ONNX backends, one of
            another size), by the precision the backend runs: float32 outputs within 1e-3 of the
            output's scale, bf16/fp16 with cosine similarity >= 0.99, int8 >= 0.95; raise if not.
        calibration: for ``dtype=torch.int8`` (at least 16 images; a few hundred is best): an image
            batch tensor, an iterable of batches (a DataLoader, a list; ``(images, targets)`` items
            are fine), a list of frames (PIL images or uint8 H x W x C arrays, e.g. the first frames
            of a video) or a folder of images; raw images and frames are read with the model's
            ``pretrained_cfg`` preprocessing, tensors are taken as model inputs.
        calibration_size: how many calibration images to use at most (default 300).
        threads: intra-op threads of the ONNX backends (default: theirs, all cores).
        options: extra OpenVINO compile properties / onnxruntime ``SessionOptions`` attributes.
        quantization: extra keyword arguments of ``nncf.quantize`` (openvino) or
            ``onnxruntime.quantization.quantize_static`` (onnxruntime), e.g.
            ``{'fast_bias_correction': False}``.
        streams: OpenVINO: the CPU streams a batch is split over, one slice each, run at once
            (default: the largest divisor of the batch size up to the number of CPUs; 1: never split).
        static_shapes: OpenVINO: how many input shapes get a static-shape compiled copy, made on a
            shape's second call (faster kernels; a few seconds of compile each); other shapes run on
            the dynamic graph. 0: always the dynamic graph.
    Returns:
        A :class:`DeployedModel`; call it like the original. The argument is not modified.
    """
    dtype = resolve_dtype(dtype)
    _check_args(dtype, channels_last, backend, streams, static_shapes)
    if backend == 'auto':
        return _auto(model, dtype, channels_last, example_input, check, calibration=calibration,
                     calibration_size=calibration_size, threads=threads, options=options, quantization=quantization,
                     streams=streams, static_shapes=static_shapes)
    example = probe_input(model, example_input)
    folded = fold_batchnorm(model, example)
    if check:
        check_close(model, folded, example, 'BatchNorm folding',
                    hint='The model uses a conv output elsewhere than its BatchNorm. ')
    for p in folded.parameters():
        p.requires_grad_(False)
    if backend in RUNTIMES:
        return _deploy_runtime(model, folded, example, backend, dtype, check, calibration, calibration_size,
                               threads, options, quantization, streams, static_shapes)
    compute = None if dtype == torch.float32 else dtype  # eager / inductor: the model's own float32
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    if compute is not None:
        folded = folded.to(compute)
    body = torch.compile(folded, options={'freezing': True}) if backend == 'inductor' else folded
    precision = compute or next(folded.parameters(), torch.empty(0)).dtype
    deployed = DeployedModel(body, folded, compute, channels_last, backend, precision,
                             _reason(backend, dtype, precision)).eval()
    if check and backend == 'eager' and compute in LOW_PRECISION:  # (inductor would compile here for minutes)
        check_close(model, deployed, example, f'deploy(dtype={dtype})', rtol=None, min_cosine=MIN_COSINE[compute])
    return deployed


def _deploy_runtime(model, folded, example, backend, dtype, check, calibration, calibration_size, threads, options,
                    quantization, streams, static_shapes):
    folded = folded.cpu().float()
    example = example.detach().cpu().float()
    images = None
    if dtype == torch.int8:
        images = calibration_images(calibration, model, example.shape[1], calibration_size,
                                    minimum=MIN_CALIBRATION_IMAGES)
    elif calibration is not None or quantization is not None:
        raise ValueError('calibration= and quantization= are only used with dtype=torch.int8')
    body = build_runtime(backend, folded, example, dtype, images, threads, options, quantization,
                         streams=streams, static_shapes=static_shapes)
    precision = body.precision
    deployed = DeployedModel(body, folded, None, False, backend, precision,
                             _reason(backend, dtype, precision, images)).eval()
    if check:
        what = f'deploy(backend={backend!r}, dtype={dtype})'
        if dtype == torch.int8:
            hint = 'For int8, calibrate on more / more representative inputs. '
        elif dtype is None and precision != torch.float32:
            what += f', running {dtype_name(precision)} (its default on this CPU),'
            hint = 'dtype=torch.float32 forces float32. '
        else:
            hint = ''
        for x, values in _check_inputs(example, images):
            check_close(folded, deployed, x, what, rtol=1e-3 if precision == torch.float32 and values else None,
                        min_cosine=MIN_COSINE[precision] if values else None, hint=hint)
    return deployed


def _check_inputs(example: torch.Tensor, images):
    """(input, whether to compare values): the example, and a batch of another size; for int8 the
    first calibration images instead (an int8 model is only accurate on inputs like those it was
    calibrated on), and those resized to another size for the output shapes only."""
    if images is None:
        return [(example, True), (other_size(example), True)]
    batch = torch.cat([t for t in images[:8] if t.shape == images[0].shape])
    h, w = batch.shape[-2:]
    return [(batch, True), (torch.nn.functional.interpolate(batch[:2], size=(h + 32, w + 16), mode='bilinear'), False)]


def _available(backend: str, dtype) -> bool:
    import importlib.util
    need = {'openvino': ['openvino', 'onnx'], 'onnxruntime': ['onnxruntime', 'onnx']}.get(backend, [])
    if backend == 'openvino' and dtype == torch.int8:
        need.append('nncf')
    return all(importlib.util.find_spec(m) is not None for m in need)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(fns: Dict[str, Callable], x: torch.Tensor, warmup: int = 3, rounds: int = 5,
                     pause_s: float = 0.05) -> Dict[str, float]:
    """Median seconds per call of each function on ``x``: ``warmup`` calls each first (oneDNN and
    OpenVINO build kernels on the first calls of a shape; OpenVINO compiles its static-shape copy
    on the second), then ``rounds`` rounds that call each once, the order reversed every other
    round so that machine noise hits all alike, with ``pause_s`` of sleep before each call so the
    previous runtime's threads stop spin-waiting (as ``benchmarks/speed.py`` times)."""
    times: Dict[str, List[float]] = {k: [] for k in fns}
    order = list(fns)
    with torch.no_grad():
        for f in fns.values():
            for _ in range(warmup):
                f(x)
        for i in range(rounds):
            for k in (order if i % 2 == 0 else order[::-1]):
                time.sleep(pause_s)
                _sync(x.device)
                t = time.perf_counter()
                fns[k](x)
                _sync(x.device)
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _auto_candidates(device: torch.device, dtype, int8: bool) -> List[Tuple[str, Optional[torch.dtype]]]:
    """(backend, dtype) pairs that ``backend='auto'`` builds and times (the ONNX backends on CPU only,
    where installed)."""
    runtimes = tuple(b for b in AUTO_CANDIDATES if b in RUNTIMES) if device.type == 'cpu' else ()
    if dtype is None:
        floats = [('eager', torch.float32)] + [('eager', torch.bfloat16)] * native_bfloat16(device)
        floats += [(b, None) for b in runtimes]  # OpenVINO: its default precision; onnxruntime: float32
        floats += [('openvino', torch.bfloat16)] * ('openvino' in runtimes and native_bfloat16(device))
    elif dtype == torch.int8:
        floats = []
    else:
        floats = [(b, dtype) for b in ('eager',) + runtimes if not (dtype in LOW_PRECISION and b == 'onnxruntime')]
    ints = [(b, torch.int8) for b in runtimes] if int8 else []
    return [(b, d) for b, d in floats + ints if _available(b, d)]


def _auto(model, dtype, channels_last, example_input, check, **kwargs) -> DeployedModel:
    """Deploy with every available (backend, precision) candidate for ``dtype`` (see :func:`deploy`),
    time them interleaved on the example input and keep the fastest; a more precise candidate within
    :data:`AUTO_TOLERANCE` of it is kept instead. Candidates that fail to build or fail their
    accuracy check are left out (the reason in ``.auto_candidates``)."""
    example = probe_input(model, example_input)
    int8 = dtype == torch.int8 or (dtype is None and (kwargs['calibration'] is not None
                                                      or kwargs['quantization'] is not None))
    candidates = _auto_candidates(example.device, dtype, int8)
    if not candidates:
        raise ValueError("deploy(backend='auto', dtype=torch.int8) needs OpenVINO or ONNX Runtime: "
                         'pip install "hrnet-zoo[openvino]"')
    built: Dict[str, DeployedModel] = {}
    notes: Dict[str, str] = {}
    for backend, d in candidates:
        name = f'{backend} {dtype_name(d) if d is not None else "default"}'
        if backend == 'openvino' and d == torch.bfloat16 and 'openvino bfloat16' in built:
            continue  # OpenVINO's default is bf16 already
        kw = {k: v for k, v in kwargs.items()
              if (d == torch.int8 or k not in ('calibration', 'calibration_size', 'quantization'))
              and (backend == 'openvino' or k not in ('streams', 'static_shapes'))}
        try:
            deployed = deploy(model, d, channels_last, backend, example, check, **kw)
        except (RuntimeError, ValueError, ImportError) as e:
            notes[name] = 'left out: ' + str(e).strip().splitlines()[0]
            continue
        built.setdefault(f'{backend} {dtype_name(deployed.precision)}', deployed)
    if not built:
        raise RuntimeError("deploy(backend='auto'): no candidate could be deployed: "
                           + '; '.join(f'{k} {v}' for k, v in notes.items()))
    times = time_interleaved(dict(built), example)
    fastest = min(times, key=times.get)
    close = [k for k in times if times[k] <= (1 + AUTO_TOLERANCE) * times[fastest]]
    best = min(close, key=lambda k: (PRECISION_RANK.get(built[k].precision, 0), times[k]))
    chosen = built[best]
    chosen.auto_timings = {}  # backend -> its fastest candidate's seconds per call (as before precisions were tried)
    for k, t in times.items():
        b = built[k].backend
        chosen.auto_timings[b] = min(t, chosen.auto_timings.get(b, t))
    chosen.auto_candidates = {**times, **notes}
    chosen.reason = _auto_reason(best, fastest, times, notes, example, dtype, int8, check)
    LOG.info("deploy(backend='auto') chose %s: %s", best, chosen.reason)
    return chosen


def _auto_reason(best: str, fastest: str, times: Dict[str, float], notes: Dict[str, str], example: torch.Tensor,
                 dtype, int8: bool, check: bool) -> str:
    ranked = ', '.join(f'{k} {times[k] * 1e3:.3g} ms' for k in sorted(times, key=times.get))
    met = 'that met their accuracy bounds' if check else '(check=False: accuracy not checked)'
    parts = [f'{best}: {"the fastest" if best == fastest else "chosen"} of {len(times)} candidates {met}, timed on '
             f'the example input {tuple(example.shape)} ({ranked})']
    if best != fastest:
        parts.append(f'kept over {fastest}: more precise and within {AUTO_TOLERANCE:.0%} of its time')
    parts += [f'{k} {v}' for k, v in notes.items()]
    if dtype is None:
        parts.append('int8 tried because calibration= was given' if int8 else
                     'int8 not tried: pass calibration= (or dtype=torch.int8) to include it')
    return '; '.join(parts)
