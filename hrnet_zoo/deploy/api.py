""":func:`deploy`: an inference-only copy of a model on the fastest path this machine has."""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_map

from .calibration import calibration_images
from .folding import check_close, fold_batchnorm, probe_input
from .onnx_export import other_size
from .runtimes import RUNTIMES, STATIC_SHAPES, build_runtime

LOW_PRECISION = (torch.bfloat16, torch.float16)
DTYPES = (None, torch.float32, torch.bfloat16, torch.float16, torch.int8)
BACKENDS = ('eager', 'inductor', 'onnxruntime', 'openvino', 'auto')
AUTO_CANDIDATES = ('eager', 'openvino', 'onnxruntime')  # inductor compiles for minutes per input shape
# The agreement a deployed model must show with the float32 original on the check inputs.
MIN_COSINE = {None: None, torch.bfloat16: 0.99, torch.float16: 0.99, torch.int8: 0.95}


class DeployedModel(nn.Module):
    """Runs ``body`` (folded, channels_last, maybe low precision; or a compiled runtime graph) and
    returns outputs in the input's dtype. ``model`` is the folded module tree (for its attributes,
    e.g. ``feature_info``); ``backend`` and ``precision`` say what runs."""

    def __init__(self, body: nn.Module, model: nn.Module, dtype: Optional[torch.dtype], channels_last: bool,
                 backend: str = 'eager', precision: Optional[torch.dtype] = None):
        super().__init__()
        self.body = body
        self.dtype = dtype
        self.channels_last = channels_last
        self.backend = backend
        self.precision = precision if precision is not None else (dtype or torch.float32)
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
        return f'backend={self.backend!r}, precision={self.precision}'


def _check_args(dtype, channels_last, backend, streams=None, static_shapes=STATIC_SHAPES):
    if dtype not in DTYPES:
        raise ValueError('deploy(dtype=...) takes None, torch.float32, torch.bfloat16, torch.float16 or torch.int8, '
                         f'got {dtype}')
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


def deploy(model: nn.Module, dtype: Optional[torch.dtype] = None, channels_last: bool = True,
           backend: str = 'eager', example_input: Optional[torch.Tensor] = None, check: bool = True, *,
           calibration: Any = None, calibration_size: Optional[int] = None, threads: Optional[int] = None,
           options: Optional[Dict[str, Any]] = None, quantization: Optional[Dict[str, Any]] = None,
           streams: Optional[int] = None, static_shapes: int = STATIC_SHAPES) -> nn.Module:
    """An inference-only copy of ``model``: BatchNorm folded into the convs, then run by ``backend``.

    Args:
        model: any model made of Conv2d/BatchNorm2d/... (classifier, ``features_only``, task model).
        dtype: ``None`` / ``torch.float32`` (float32), ``torch.bfloat16`` / ``torch.float16`` (weights
            and compute; native bf16 on CPUs with AVX512-BF16 / AMX), or ``torch.int8``
            (post-training quantization with ``calibration``; OpenVINO or ONNX Runtime). Inputs may
            be any float dtype; floating outputs come back in the input's dtype.
        channels_last: NHWC weights and inputs (eager / inductor: faster oneDNN convolutions).
        backend: ``'eager'`` (a module tree, ready at once), ``'inductor'`` (``torch.compile`` with
            freezing; compiles on the first call of each input shape), ``'openvino'`` or
            ``'onnxruntime'`` (the folded model exported to ONNX with dynamic batch, height and
            width, compiled once for all sizes; CPU only; extras ``hrnet-zoo[openvino]`` /
            ``hrnet-zoo[onnx]``), or ``'auto'``: the fastest of eager / openvino / onnxruntime for
            ``dtype`` that is installed, by a short timing on ``example_input``.
        example_input: a representative input (default: a 2x3x64x64 random batch), used to find the
            conv -> BN pairs, to export and to check the deployed model (and for ``'auto'`` timing).
        check: compare with ``model`` on the example input (and, for the ONNX backends, one of
            another size): float32 outputs within 1e-3 of the output's scale, bf16/fp16 with cosine
            similarity >= 0.99, int8 >= 0.95; raise if not.
        calibration: for ``dtype=torch.int8``: an image batch tensor, an iterable of batches (a
            DataLoader, a list; ``(images, targets)`` items are fine) or a folder of images (read
            with the model's ``pretrained_cfg`` preprocessing).
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
    _check_args(dtype, channels_last, backend, streams, static_shapes)
    dtype = None if dtype == torch.float32 else dtype
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
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    if dtype is not None:
        folded = folded.to(dtype)
    body = torch.compile(folded, options={'freezing': True}) if backend == 'inductor' else folded
    return DeployedModel(body, folded, dtype, channels_last, backend).eval()


def _deploy_runtime(model, folded, example, backend, dtype, check, calibration, calibration_size, threads, options,
                    quantization, streams, static_shapes):
    folded = folded.cpu().float()
    example = example.detach().cpu().float()
    images = None
    if dtype == torch.int8:
        images = calibration_images(calibration, model, example.shape[1], calibration_size)
    elif calibration is not None or quantization is not None:
        raise ValueError('calibration= and quantization= are only used with dtype=torch.int8')
    body = build_runtime(backend, folded, example, dtype, images, threads, options, quantization,
                         streams=streams, static_shapes=static_shapes)
    deployed = DeployedModel(body, folded, None, False, backend, dtype or torch.float32).eval()
    if check:
        what = f'deploy(backend={backend!r}, dtype={dtype})'
        for x, values in _check_inputs(example, images):
            check_close(folded, deployed, x, what, rtol=1e-3 if dtype is None and values else None,
                        min_cosine=MIN_COSINE[dtype] if values else None,
                        hint='For int8, calibrate on more / more representative inputs. ' if dtype == torch.int8 else '')
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


def _median_call_s(fn, x: torch.Tensor, warmup: int = 3, repeats: int = 5) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _auto(model, dtype, channels_last, example_input, check, **kwargs) -> DeployedModel:
    """Deploy with every available candidate backend that runs ``dtype`` and keep the fastest on
    the example input (timings in ``.auto_timings``, seconds per call)."""
    example = probe_input(model, example_input)
    on_cpu = example.device.type == 'cpu'
    candidates = [b for b in AUTO_CANDIDATES if (b == 'eager' or (on_cpu and _available(b, dtype)))
                  and not (dtype == torch.int8 and b == 'eager')
                  and not (dtype in LOW_PRECISION and b == 'onnxruntime')]
    if not candidates:
        raise ValueError("deploy(backend='auto', dtype=torch.int8) needs OpenVINO or ONNX Runtime: "
                         'pip install "hrnet-zoo[openvino]"')
    openvino_only = ('streams', 'static_shapes')
    built = {b: deploy(model, dtype, channels_last, b, example, check,
                       **{k: v for k, v in kwargs.items() if b == 'openvino' or k not in openvino_only})
             for b in candidates}
    timings = {b: _median_call_s(m, example) for b, m in built.items()}
    best = min(timings, key=timings.get)
    built[best].auto_timings = timings
    return built[best]
