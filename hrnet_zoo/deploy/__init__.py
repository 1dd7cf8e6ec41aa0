"""The deploy path: an inference-only copy of a model on the fastest backend, and ONNX export.

:func:`deploy` returns a new module (the caller's model is left untouched) in which every
BatchNorm that directly follows a convolution is folded into that convolution's weight and bias,
then runs it with one of four backends:

- ``'eager'`` (default): the folded module tree, ``channels_last``, float32 or bfloat16 / float16;
  ready at once, any input size, attributes such as ``feature_info`` reachable.
- ``'inductor'``: ``torch.compile`` with freezing (conv + add + ReLU fused into prepacked oneDNN
  ops; a compile of a minute or more for each new input shape).
- ``'openvino'``: the ONNX export compiled by OpenVINO for dynamic batch / height / width, in
  OpenVINO's own default precision when no dtype is given (bfloat16 on CPUs with AVX512-BF16 /
  AMX, float32 elsewhere; ``.precision`` says which), or float32, bfloat16, float16 or int8 (NNCF
  post-training quantization on ``calibration`` images); a shape seen twice gets a static-shape
  copy that splits the batch over one CPU stream per core. On CPUs with native bf16 this is the
  fastest path (``benchmarks/RESULTS.md``).
- ``'onnxruntime'``: the ONNX export in ONNX Runtime, float32 or int8 (static QDQ quantization).
- ``'auto'``: the fastest backend and precision of those installed within the accuracy bounds,
  by a short interleaved measurement (``.reason`` says what was chosen and why).

Outputs come back as torch tensors in the model's structure and the input's dtype, checked
against the original on deploy by the bound of the precision that runs (float32 within 1e-3 of
the output scale, bf16 / fp16 cosine >= 0.99, int8 >= 0.95). :func:`export_onnx` writes the folded model as an ONNX graph with
dynamic batch, height and width, checked with onnxruntime against PyTorch.
"""
from .api import BACKENDS, DTYPES, LOW_PRECISION, DeployedModel, deploy, native_bfloat16
from .calibration import calibration_images
from .folding import PROBE_SIZE, find_conv_bn_pairs, fold_batchnorm
from .onnx_export import check_onnx, export_onnx, onnx_session
from .runtimes import RuntimeBody

__all__ = ['deploy', 'export_onnx', 'DeployedModel', 'BACKENDS', 'DTYPES', 'LOW_PRECISION', 'native_bfloat16',
           'find_conv_bn_pairs',
           'fold_batchnorm', 'check_onnx', 'onnx_session', 'calibration_images', 'RuntimeBody', 'PROBE_SIZE']
