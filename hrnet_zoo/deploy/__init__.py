"""The deploy path: an inference-only copy of a model on the fastest backend, and ONNX export.

:func:`deploy` returns a new module (the caller's model is left untouched) in which every
BatchNorm that directly follows a convolution is folded into that convolution's weight and bias,
then runs it with one of four backends:

- ``'eager'`` (default): the folded module tree, ``channels_last``, optionally bfloat16 / float16;
  ready at once, any input size, attributes such as ``feature_info`` reachable.
- ``'inductor'``: ``torch.compile`` with freezing (conv + add + ReLU fused into prepacked oneDNN
  ops; a compile of a minute or more for each new input shape).
- ``'openvino'``: the ONNX export compiled by OpenVINO for dynamic batch / height / width, float32,
  bfloat16, float16 or int8 (NNCF post-training quantization on ``calibration`` images); a shape
  seen twice gets a static-shape copy that splits the batch over one CPU stream per core. On CPUs
  with native bf16 this is the fastest path (``benchmarks/RESULTS.md``).
- ``'onnxruntime'``: the ONNX export in ONNX Runtime, float32 or int8 (static QDQ quantization).
- ``'auto'``: the fastest of those installed, by a short measurement.

Outputs come back as torch tensors in the model's structure and the input's dtype, checked
against the original on deploy. :func:`export_onnx` writes the folded model as an ONNX graph with
dynamic batch, height and width, checked with onnxruntime against PyTorch.
"""
from .api import BACKENDS, DTYPES, LOW_PRECISION, DeployedModel, deploy
from .calibration import calibration_images
from .folding import PROBE_SIZE, find_conv_bn_pairs, fold_batchnorm
from .onnx_export import check_onnx, export_onnx, onnx_session
from .runtimes import RuntimeBody

__all__ = ['deploy', 'export_onnx', 'DeployedModel', 'BACKENDS', 'DTYPES', 'LOW_PRECISION', 'find_conv_bn_pairs',
           'fold_batchnorm', 'check_onnx', 'onnx_session', 'calibration_images', 'RuntimeBody', 'PROBE_SIZE']
