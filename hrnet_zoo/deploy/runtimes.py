"""ONNX Runtime and OpenVINO backends of :func:`hrnet_zoo.deploy`: the folded model is exported
to ONNX (dynamic batch, height and width), optionally quantized to int8 (NNCF post-training
quantization for OpenVINO, onnxruntime's static QDQ quantization for ONNX Runtime), compiled, and
wrapped in a module that takes and returns torch tensors in the model's own output structure."""
from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from .onnx_export import onnx_session, require, write_onnx

RUNTIMES = ('onnxruntime', 'openvino')
STATIC_SHAPES = 4  # deploy(static_shapes=) default: input shapes that get an OpenVINO static-shape copy
# deploy(dtype=...) -> OpenVINO's INFERENCE_PRECISION_HINT. dtype=None sets no hint: OpenVINO's default, bf16
# on CPUs with native bf16 (AVX512-BF16 / AMX), f32 on other x86 CPUs (OpenVINO docs, "CPU Device", floating-
# point data types; OpenVINO 2026.4 on an AMD EPYC with avx512_bf16 reports bf16), read back from the compiled model.
OV_PRECISION = {torch.float32: 'f32', torch.bfloat16: 'bf16', torch.float16: 'f16'}
OV_DTYPE = {name: dtype for dtype, name in OV_PRECISION.items()}
OV_CAPABILITY = {torch.bfloat16: 'BF16', torch.float16: 'FP16'}


class RuntimeBody(nn.Module):
    """Calls ``run`` (float32 NCHW numpy -> list of numpy outputs) on a torch batch and rebuilds
    the model's output structure (``spec``); outputs come back on the input's device, floating
    ones in its dtype. ``precision``: what the runtime computes in (for OpenVINO with no dtype
    given, its own choice, read back from the compiled model). Not thread-safe (one infer
    request): deploy one model per thread."""

    def __init__(self, run: Callable[[np.ndarray], Sequence[np.ndarray]], spec: TreeSpec, in_channels: int, name: str,
                 precision: torch.dtype = torch.float32):
        super().__init__()
        self.run, self.spec, self.in_channels, self.name = run, spec, in_channels, name
        self.precision = precision

    def forward(self, x: torch.Tensor):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'the {self.name} model takes an image batch tensor (N, {self.in_channels}, H, W), got '
                             f'{type(x).__name__} {tuple(getattr(x, "shape", ()))}')
        arr = x.detach().to('cpu', torch.float32).contiguous().numpy()
        try:
            outs = self.run(arr)
        except Exception as e:  # the runtimes' own errors name graph nodes, not the input
            raise RuntimeError(f'{self.name} failed on an input of shape {tuple(x.shape)}: {e}') from e
        dtype = x.dtype if x.is_floating_point() else torch.float32
        leaves = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        leaves = [t.to(x.device, dtype) if t.is_floating_point() else t.to(x.device) for t in leaves]
        return tree_unflatten(leaves, self.spec)

    def extra_repr(self) -> str:
        return self.name


def output_spec(folded: nn.Module, example: torch.Tensor) -> TreeSpec:
    with torch.no_grad():
        leaves, spec = tree_flatten(folded(example))
    if not all(isinstance(t, torch.Tensor) for t in leaves):
        raise ValueError('the ONNX-based backends need a model whose outputs are tensors (or lists / tuples / '
                         f'dicts of tensors); this one returns {[type(t).__name__ for t in leaves]}')
    return spec


# --- ONNX Runtime -------------------------------------------------------------------------------

def _ort_int8(path: str, out_path: str, images: List[torch.Tensor], kwargs: Optional[dict]) -> str:
    """onnxruntime static quantization (QDQ, per-channel int8 weights, uint8 activations: the
    U8S8 format ONNX Runtime recommends on x86), MinMax calibration on ``images``."""
    q = require('onnxruntime.quantization')

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter(images)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {'input': x.numpy()}

    pre = out_path + '.pre.onnx'
    q.quant_pre_process(path, pre, skip_symbolic_shape=True)
    kwargs = {'quant_format': q.QuantFormat.QDQ, 'per_channel': True, 'activation_type': q.QuantType.QUInt8,
              'weight_type': q.QuantType.QInt8, **(kwargs or {})}
    q.quantize_static(pre, out_path, Reader(), **kwargs)
    return out_path


def onnxruntime_runner(path: str, dtype, images: Optional[List[torch.Tensor]], threads: Optional[int],
                       options: Optional[dict], quantization: Optional[dict]) -> Callable:
    if dtype in (torch.bfloat16, torch.float16):
        raise ValueError(f"backend='onnxruntime' runs float32 and int8 on CPU (its CPU provider has no {dtype} "
                         "convolutions); for bfloat16 use backend='openvino' or 'eager'")
    if dtype == torch.int8:
        path = _ort_int8(path, path[:-len('.onnx')] + '.int8.onnx', images, quantization)
    session = onnx_session(path, threads, options)
    return lambda arr: session.run(None, {'input': arr})


# --- OpenVINO -----------------------------------------------------------------------------------

class _StackT(ctypes.Structure):  # Linux stack_t
    _fields_ = [('ss_sp', ctypes.c_void_p), ('ss_flags', ctypes.c_int), ('ss_size', ctypes.c_size_t)]


def _libc_sigaltstack():
    try:
        return ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):  # not a POSIX libc (Windows): nothing to keep
        return None


_SIGALTSTACK = _libc_sigaltstack() if os.name == 'posix' else None


@contextlib.contextmanager
def keep_sigaltstack() -> Iterator[None]:
    """Give the calling thread back its signal stack after OpenVINO calls.

    Written by hand because it works around OpenVINO 2026.4 itself: loading the CPU plugin in a Core
    (``compile_model``, ``get_property('CPU', ...)``) installs a signal stack of its own on the
    calling thread, and freeing that Core later puts
    back the stack that was there at its install, in any order; with two Cores the thread is left
    pointing at freed memory, and the next signal whose Python handler runs on that stack (SIGCHLD
    when a DataLoader worker or a subprocess exits) kills the process with SIGSEGV (reproduced:
    two deploys, freed, then ``subprocess.run``). Putting the caller's stack back after each call
    keeps every later restore pointing at a live stack."""
    if _SIGALTSTACK is None:
        yield
        return
    saved = _StackT()
    if _SIGALTSTACK(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        now = _StackT()
        if _SIGALTSTACK(None, ctypes.byref(now)) == 0 and (now.ss_sp, now.ss_size) != (saved.ss_sp, saved.ss_size):
            saved.ss_flags &= ~1  # SS_ONSTACK is a report, not a flag one may set
            _SIGALTSTACK(ctypes.byref(saved), None)


def _nncf_int8(ov_model, images: List[torch.Tensor], kwargs: Optional[dict]):
    """NNCF post-training quantization (symmetric 'performance' preset, fast bias correction) with
    one calibration image per item, as NNCF recommends for exact statistics, and activation ranges
    from the global min / max over the calibration images (NNCF's default aggregates per-image
    ranges; min-max lost less accuracy on both trained models of benchmarks/int8_accuracy.py).
    ``kwargs`` go to ``nncf.quantize`` (``advanced_parameters=`` replaces the min-max choice)."""
    nncf = require('nncf')
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    dataset = nncf.Dataset(images, lambda t: t.numpy())
    kwargs = {'subset_size': len(images), 'advanced_parameters': AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX), **(kwargs or {})}
    return nncf.quantize(ov_model, dataset, **kwargs)


def openvino_config(core, dtype, threads: Optional[int], options: Optional[dict]) -> Dict[str, Any]:
    """Compile properties: the inference precision hint of ``dtype`` (none for ``dtype=None``:
    OpenVINO's default; int8 keeps that default for the layers left in floating point), and the
    thread count."""
    config: Dict[str, Any] = {}
    if dtype in OV_PRECISION:
        want = OV_CAPABILITY.get(dtype)
        if want and want not in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
            raise ValueError(f"backend='openvino', dtype={dtype}: this CPU has no native {want} "
                             f"(OpenVINO capabilities {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}); "
                             "use dtype=None (OpenVINO's default precision), torch.float32 or torch.int8")
        config['INFERENCE_PRECISION_HINT'] = OV_PRECISION[dtype]
    if threads:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    config.update(options or {})
    return config


def compiled_precision(compiled) -> torch.dtype:
    """The floating-point precision an OpenVINO compiled model runs in: its
    ``INFERENCE_PRECISION_HINT`` property, which the CPU plugin fills in with its own choice when
    none was asked for (``f32``, ``bf16`` or ``f16``)."""
    name = compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name()
    if name not in OV_DTYPE:
        raise RuntimeError(f'OpenVINO compiled the model for inference precision {name!r}, which deploy() does not '
                           f'know (it knows {sorted(OV_DTYPE)}); pass dtype=torch.float32')
    return OV_DTYPE[name]


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OpenVINORunner:
    """Runs an OpenVINO model with a dynamic input shape the fast way, compiled lazily per shape.

    Written by hand because OpenVINO leaves both to the caller: its CPU plugin picks faster
    kernels for a static shape than for the dynamic graph, and one synchronous request runs a
    batch on one stream, while one stream per core on a slice of the batch each is faster
    (hrnet_w32 int8 b8 224 on 2 cores: +13 % static, +19 % with 2 streams, +32 % both;
    benchmarks/RESULTS.md). The first call of an input shape runs on the dynamic graph; its second
    call compiles a static-shape copy (a few seconds) that the later calls of that shape use, up to
    ``static_shapes`` shapes (then the dynamic graph serves the rest). That copy splits the batch
    into ``streams`` equal slices run at once on as many CPU streams; ``streams=None``: the largest
    divisor of the batch size that is at most the number of CPUs (``threads``) this process has.
    ``compiled`` is the dynamic graph's compiled model; ``precision`` the floating-point precision
    it runs in (:func:`compiled_precision`; the static copies share its config).
    """

    def __init__(self, core, model, config: Dict[str, Any], streams: Optional[int], static_shapes: int,
                 threads: Optional[int] = None):
        self.core, self.model, self.config = core, model, config
        self.streams, self.static_shapes = streams, int(static_shapes)
        self.cpus = threads or cpu_count()
        self.compiled = self._compile(model, config)
        with keep_sigaltstack():
            self.precision = compiled_precision(self.compiled)
        self.dynamic = self.compiled.create_infer_request()
        self.seen: Dict[tuple, int] = {}
        self.static: Dict[tuple, List[Any]] = {}  # input shape -> infer requests, one per slice

    def _compile(self, model, config: Dict[str, Any]):
        with keep_sigaltstack():
            return self.core.compile_model(model, 'CPU', config)

    def _compile_static(self, shape: tuple) -> List[Any]:
        if self.streams is None:
            split = max(d for d in range(1, min(shape[0], self.cpus) + 1) if shape[0] % d == 0)
        else:
            split = self.streams if shape[0] % self.streams == 0 else 1
        model = self.model.clone()
        model.reshape({0: [shape[0] // split, *shape[1:]]})
        config = dict(self.config)
        if split > 1:
            config.setdefault('PERFORMANCE_HINT', 'THROUGHPUT')
            config.setdefault('NUM_STREAMS', split)
        compiled = self._compile(model, config)
        return [compiled.create_infer_request() for _ in range(split)]

    def requests(self, shape: tuple) -> Optional[List[Any]]:
        if shape in self.static:
            return self.static[shape]
        if len(self.static) >= self.static_shapes:  # full: the dynamic graph serves every other shape
            return None
        self.seen[shape] = self.seen.get(shape, 0) + 1
        if self.seen[shape] >= 2:
            self.static[shape] = self._compile_static(shape)
            return self.static[shape]
        return None

    def __call__(self, arr: np.ndarray) -> Sequence[np.ndarray]:
        requests = self.requests(arr.shape)
        if requests is None:
            return self.dynamic.infer({0: arr}).to_tuple()
        if len(requests) == 1:
            return requests[0].infer({0: arr}).to_tuple()
        for request, part in zip(requests, np.split(arr, len(requests))):
            request.start_async({0: part})
        for request in requests:
            request.wait()
        n = len(requests[0].model_outputs)
        return [np.concatenate([r.get_output_tensor(i).data for r in requests]) for i in range(n)]


def openvino_runner(path: str, dtype, images: Optional[List[torch.Tensor]], threads: Optional[int],
                    options: Optional[dict], quantization: Optional[dict], streams: Optional[int] = None,
                    static_shapes: int = STATIC_SHAPES) -> Callable:
    ov = require('openvino')
    with keep_sigaltstack():  # loading the CPU plugin (ours, and NNCF's own Cores) swaps it
        core = ov.Core()
        ov_model = core.read_model(path)  # the dynamic N, H, W of the ONNX file stay dynamic
        if dtype == torch.int8:
            ov_model = _nncf_int8(ov_model, images, quantization)
        return OpenVINORunner(core, ov_model, openvino_config(core, dtype, threads, options), streams, static_shapes,
                              threads)


def build_runtime(backend: str, folded: nn.Module, example: torch.Tensor, dtype,
                  images: Optional[List[torch.Tensor]] = None, threads: Optional[int] = None,
                  options: Optional[dict] = None, quantization: Optional[dict] = None, opset: int = 18,
                  streams: Optional[int] = None, static_shapes: int = STATIC_SHAPES) -> RuntimeBody:
    """Export ``folded`` (float32, CPU) to ONNX in a temporary folder and compile it with ``backend``
    (``streams`` / ``static_shapes``: OpenVINO only, see :class:`OpenVINORunner`). ``dtype=None``:
    onnxruntime runs float32 (the exported graph's precision: its CPU provider has no lower-precision
    mode of its own), OpenVINO its own default precision for this CPU."""
    require('openvino' if backend == 'openvino' else 'onnxruntime')
    spec = output_spec(folded, example)
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_deploy_') as workdir:
        path = os.path.join(workdir, 'model.onnx')
        write_onnx(folded, path, example, dynamic_hw=True, opset=opset)
        if backend == 'openvino':
            run = openvino_runner(path, dtype, images, threads, options, quantization, streams, static_shapes)
        else:
            run = onnxruntime_runner(path, dtype, images, threads, options, quantization)
    precision = torch.int8 if dtype == torch.int8 else getattr(run, 'precision', dtype or torch.float32)
    return RuntimeBody(run, spec, example.shape[1], f'{backend} {dtype_name(precision)}', precision)


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    """``torch.bfloat16`` -> ``'bfloat16'`` (``None``: ``'float32'``)."""
    return str(dtype or torch.float32).replace('torch.', '')
