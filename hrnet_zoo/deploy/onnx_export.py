"""ONNX export of a (BatchNorm-folded) model with dynamic batch, height and width, checked with
onnxruntime against PyTorch."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from typing import Any, List, Optional

import torch
from torch import nn

from .folding import flatten, fold_batchnorm, probe_input

EXTRAS = {'onnxruntime': 'onnx', 'onnx': 'onnx', 'openvino': 'openvino', 'nncf': 'openvino'}


def require(module: str):
    """Import an optional dependency, or raise an ImportError naming the extra that installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = EXTRAS.get(module.split('.')[0], module)
        raise ImportError(f'this needs the optional package {module.split(".")[0]!r}: '
                          f'pip install "hrnet-zoo[{extra}]"') from e


def output_names(out: Any) -> List[str]:
    n = len(flatten(out))
    return ['output'] if n == 1 else [f'output{i}' for i in range(n)]


def write_onnx(folded: nn.Module, path: str, example: torch.Tensor, dynamic_hw: bool = True, opset: int = 18) -> List[str]:
    """Export ``folded`` (eval, float32) to ``path`` with input ``'input'`` (dynamic batch and,
    if ``dynamic_hw``, height and width); returns the output names. Quiet: the exporter's
    tracer warnings and prints are swallowed."""
    require('onnx')
    with torch.no_grad():
        names = output_names(folded(example))
    axes = {'input': {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw else {0: 'batch'}}
    axes.update({n: {0: 'batch'} for n in names})
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        torch.onnx.export(folded, (example,), path, input_names=['input'], output_names=names,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return names


def export_onnx(model: nn.Module, path: str, dynamic_hw: bool = True, example_input: Optional[torch.Tensor] = None,
                opset: int = 18, check: bool = True, atol: float = 1e-3) -> str:
    """Export ``model`` (BatchNorm folded, float32) to ONNX at ``path``, with a dynamic batch and,
    if ``dynamic_hw``, dynamic height and width (each at least 32 px for HRNet).

    With ``check`` the file is run with onnxruntime on the example input and on one of another size
    (when ``dynamic_hw``) and compared with PyTorch (``allclose`` with ``atol`` relative to the
    output's scale); a mismatch raises. The file is written atomically. Returns ``path``.
    """
    example = probe_input(model, example_input)
    folded = fold_batchnorm(model, example).cpu().float()
    example = example.cpu().float()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=directory)
    os.close(fd)
    try:
        write_onnx(folded, tmp, example, dynamic_hw, opset)
        if check:
            session = onnx_session(tmp)
            for x in [example] + ([other_size(example)] if dynamic_hw else []):
                check_onnx(tmp, folded, x, atol=atol, session=session)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def other_size(x: torch.Tensor) -> torch.Tensor:
    """A fixed random batch of one image, 32 px taller and 16 px wider than ``x``."""
    g = torch.Generator().manual_seed(1)
    h, w = x.shape[-2:]
    return torch.randn(1, x.shape[1], h + 32, w + 16, generator=g).to(x.dtype)


def onnx_session(path: str, threads: Optional[int] = None, options: Optional[dict] = None):
    """An onnxruntime CPU ``InferenceSession`` for ``path`` (``threads`` intra-op threads;
    ``options``: further ``SessionOptions`` attributes)."""
    ort = require('onnxruntime')
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    for k, v in (options or {}).items():
        setattr(opts, k, v)
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


def check_onnx(path: str, model: nn.Module, x: torch.Tensor, atol: float = 1e-3, session=None) -> float:
    """Run the ONNX file and ``model`` on ``x``; raise if any output differs by more than ``atol``
    times the output's scale (at least 1). Returns the largest absolute difference."""
    session = session or onnx_session(path)
    got = session.run(None, {'input': x.numpy()})
    with torch.no_grad():
        ref = flatten(model(x))
    if len(got) != len(ref):
        raise RuntimeError(f'{path}: onnxruntime gives {len(got)} outputs, PyTorch {len(ref)}')
    worst = 0.0
    for i, (a, b) in enumerate(zip(ref, got)):
        b = torch.from_numpy(b)
        if a.shape != b.shape:
            raise RuntimeError(f'{path}: output {i} has shape {tuple(b.shape)} in onnxruntime, '
                               f'{tuple(a.shape)} in PyTorch (input {tuple(x.shape)})')
        err = (a - b).abs().max().item()
        worst = max(worst, err)
        if not err <= atol * max(a.abs().max().item(), 1.0):
            raise RuntimeError(f'{path}: output {i} differs from PyTorch by {err:.3g} (input {tuple(x.shape)})')
    return worst
