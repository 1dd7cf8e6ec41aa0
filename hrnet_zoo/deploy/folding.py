"""BatchNorm folding: which conv feeds which BatchNorm, and a copy with each such pair merged.

The pairs are found by running the model once on a probe input and matching tensors (a BN is
folded only if every call it gets is on the fresh output of the same conv, and that conv feeds
nothing else); :func:`check_close` then compares the folded model with the original. (torch's
``fuse_conv_bn_eval`` merges one given pair; finding the pairs in an arbitrary model is ours.)
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.utils._pytree import tree_flatten

PROBE_SIZE = 64


def probe_input(model: nn.Module, example_input: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``example_input``, or a fixed random 2 x C x 64 x 64 batch (C: the first conv's input channels)."""
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
            raise ValueError('example_input= must be an image batch tensor (N, C, H, W), got '
                             f'{type(example_input).__name__} {tuple(getattr(example_input, "shape", ()))}')
        return example_input
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError('deploy() found no Conv2d in the model; pass example_input= to describe its input')
    p = next(model.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, first.in_channels, PROBE_SIZE, PROBE_SIZE, generator=g)
    return x.to(device=p.device, dtype=p.dtype)


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor) -> List[Tuple[str, str]]:
    """Names ``(conv, bn)`` of every BatchNorm2d whose input is always the output of one Conv2d
    that feeds only it, found by running ``model`` (in eval mode, no grad) on ``example_input``."""
    convs = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    bns = {m: n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    produced: Dict[int, Tuple[str, torch.Tensor]] = {}  # id(output) -> (conv name, output): kept alive
    calls: Counter = Counter()
    pairs: Counter = Counter()

    def conv_hook(module, inputs, output):
        calls[convs[module]] += 1
        produced[id(output)] = (convs[module], output)

    def bn_hook(module, inputs):
        calls[bns[module]] += 1
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[1] is inputs[0]:
            pairs[(hit[0], bns[module])] += 1

    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_pre_hook(bn_hook) for m in bns]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    conv_uses = Counter(c for c, _ in pairs)
    return [(c, b) for (c, b), k in pairs.items() if k == calls[c] == calls[b] and conv_uses[c] == 1]


def fold_batchnorm(model: nn.Module, example_input: Optional[torch.Tensor] = None) -> nn.Module:
    """A copy of ``model`` (eval mode) with every conv -> BatchNorm pair folded into the conv;
    the folded BatchNorms become ``nn.Identity``. The argument is not modified."""
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    for conv_name, bn_name in find_conv_bn_pairs(folded, probe_input(folded, example_input)):
        conv, bn = modules[conv_name], modules[bn_name]
        weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                            bn.eps, bn.weight, bn.bias)
        conv.weight, conv.bias = weight, bias
        parent_name, _, attr = bn_name.rpartition('.')
        setattr(modules[parent_name] if parent_name else folded, attr, nn.Identity())
    return folded


def flatten(out: Any) -> List[torch.Tensor]:
    """The tensors of a (nested) model output, in order (dict values in insertion order)."""
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def max_error(ref: Any, got: Any) -> List[Tuple[float, float, float]]:
    """Per output tensor: (largest absolute difference, scale = max(|ref|, 1), cosine similarity)."""
    ref, got = flatten(ref), flatten(got)
    if len(ref) != len(got):
        raise RuntimeError(f'the deployed model gives {len(got)} outputs, the original {len(ref)}')
    out = []
    for i, (a, b) in enumerate(zip(ref, got)):
        if a.shape != b.shape:
            raise RuntimeError(f'output {i} has shape {tuple(b.shape)} in the deployed model, {tuple(a.shape)} '
                               'in the original')
        a, b = a.detach().float().cpu().flatten(), b.detach().float().cpu().flatten()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-12).item() if a.numel() else 1.0
        out.append(((a - b).abs().max().item() if a.numel() else 0.0, max(a.abs().max().item() if a.numel() else 0, 1.0), cos))
    return out


# an output difference this small against max(|output|, 1) passes whatever its cosine similarity
NEGLIGIBLE = 1e-4


def check_close(model: nn.Module, deployed, example: torch.Tensor, what: str, rtol: Optional[float] = 1e-3,
                min_cosine: Optional[float] = None, hint: str = '') -> None:
    """Run ``model`` (eval, no grad) and ``deployed`` on ``example``; raise a RuntimeError naming
    ``what`` if an output's largest difference exceeds ``rtol`` x its scale, or its cosine
    similarity to the original is below ``min_cosine``. The cosine does not decide for an output
    whose largest difference is within ``NEGLIGIBLE`` x its scale (an output of ~1e-7 everywhere, as
    a random-weight network gives, has a meaningless cosine)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(example)
            got = deployed(example)
    finally:
        model.train(was_training)
    for i, (err, scale, cos) in enumerate(max_error(ref, got)):
        cosine_fails = min_cosine is not None and not cos >= min_cosine and not err <= NEGLIGIBLE * scale
        if (rtol is not None and not err <= rtol * scale) or cosine_fails:
            raise RuntimeError(f'{what} changed output {i}: max abs difference {err:.3g} (scale {scale:.3g}), '
                               f'cosine similarity {cos:.4f}. {hint}'
                               'Pass check=False to skip this test at your own risk.')
