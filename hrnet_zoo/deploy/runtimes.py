"""ONNX Runtime and OpenVINO backends of :func:`hrnet_zoo.deploy`: the folded model is exported
to ONNX (dynamic batch, height and width), optionally quantized to int8 (NNCF post-training
quantization for OpenVINO, onnxruntime's static QDQ quantization for ONNX Runtime), compiled, and
wrapped in a module that takes and returns torch tensors in the model's own output structure."""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from .onnx_export import onnx_session, require, write_onnx

RUNTIMES = ('onnxruntime', 'openvino')
OV_PRECISION = {None: 'f32', torch.bfloat16: 'bf16', torch.float16: 'f16'}
OV_CAPABILITY = {torch.bfloat16: 'BF16', torch.float16: 'FP16'}


class RuntimeBody(nn.Module):
    """Calls ``run`` (float32 NCHW numpy -> list of numpy outputs) on a torch batch and rebuilds
    the model's output structure (``spec``); outputs come back on the input's device, floating
    ones in its dtype. Not thread-safe (one infer request): deploy one model per thread."""

    def __init__(self, run: Callable[[np.ndarray], Sequence[np.ndarray]], spec: TreeSpec, in_channels: int, name: str):
        super().__init__()
        self.run, self.spec, self.in_channels, self.name = run, spec, in_channels, name

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
    """Compile properties: the inference precision for ``dtype`` (int8 keeps OpenVINO's default
    for the layers left in floating point), and the thread count."""
    config: Dict[str, Any] = {}
    if dtype != torch.int8:
        want = OV_CAPABILITY.get(dtype)
        if want and want not in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
            raise ValueError(f"backend='openvino', dtype={dtype}: this CPU has no native {want} "
                             f"(OpenVINO capabilities {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}); "
                             'use dtype=None (float32) or torch.int8')
        config['INFERENCE_PRECISION_HINT'] = OV_PRECISION[dtype]
    if threads:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    config.update(options or {})
    return config


def openvino_runner(path: str, dtype, images: Optional[List[torch.Tensor]], threads: Optional[int],
                    options: Optional[dict], quantization: Optional[dict]) -> Callable:
    ov = require('openvino')
    core = ov.Core()
    ov_model = core.read_model(path)  # the dynamic N, H, W of the ONNX file stay dynamic
    if dtype == torch.int8:
        ov_model = _nncf_int8(ov_model, images, quantization)
    compiled = core.compile_model(ov_model, 'CPU', openvino_config(core, dtype, threads, options))
    request = compiled.create_infer_request()
    return lambda arr: request.infer({0: arr}).to_tuple()


RUNNERS = {'onnxruntime': onnxruntime_runner, 'openvino': openvino_runner}


def build_runtime(backend: str, folded: nn.Module, example: torch.Tensor, dtype,
                  images: Optional[List[torch.Tensor]] = None, threads: Optional[int] = None,
                  options: Optional[dict] = None, quantization: Optional[dict] = None, opset: int = 18) -> RuntimeBody:
    """Export ``folded`` (float32, CPU) to ONNX in a temporary folder and compile it with ``backend``."""
    require('openvino' if backend == 'openvino' else 'onnxruntime')
    spec = output_spec(folded, example)
    with tempfile.TemporaryDirectory(prefix='hrnet_zoo_deploy_') as workdir:
        path = os.path.join(workdir, 'model.onnx')
        write_onnx(folded, path, example, dynamic_hw=True, opset=opset)
        run = RUNNERS[backend](path, dtype, images, threads, options, quantization)
    name = f'{backend} {str(dtype or torch.float32).replace("torch.", "")}'
    return RuntimeBody(run, spec, example.shape[1], name)
