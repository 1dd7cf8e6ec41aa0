"""The HRNet trunk (paper Sec. 3): stem, stage 1, and stages 2-4 of parallel multi-resolution
branches joined by repeated multi-resolution fusions.

Module names follow the official code (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1..3``, ``stage2..4`` with ``branches`` and ``fuse_layers``), so official checkpoints
(classification, pose, segmentation, landmarks) keep their keys.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
try:  # torch >= 2.6: true under fx.symbolic_trace only, not under torch.export / compile
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as is_fx_tracing
except ImportError:  # pragma: no cover
    from torch.fx._symbolic_trace import is_fx_tracing
from torch.utils.checkpoint import checkpoint

from .configs import HRNetConfig, StageConfig
from .layers import BLOCKS, BN_MOMENTUM, conv_bn, init_weights, make_layer

MIN_INPUT_SIZE = 32


def check_input_size(x: torch.Tensor) -> None:
    """Raise a clear ValueError for inputs too small to reach stride 32 (skipped under fx)."""
    if is_fx_tracing() or torch.jit.is_scripting():
        return
    if x.dim() != 4:
        raise ValueError(f'HRNet expects a 4-D NCHW batch, got a tensor of shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
        raise ValueError(
            f'HRNet needs an input of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels (its lowest '
            f'branch has stride 32), got {h}x{w}; resize or pad the image.')


def upsample_to(x: torch.Tensor, ref: torch.Tensor, mode: str = 'nearest',
                align_corners: bool = False) -> torch.Tensor:
    """Resize ``x`` to the spatial size of ``ref`` (not by a fixed factor, so odd sizes work)."""
    size = ref.shape[-2:]
    if mode == 'nearest':
        return F.interpolate(x, size=size, mode='nearest')
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


class HighResolutionModule(nn.Module):
    """One modular block: a residual ``branch`` per resolution, then the multi-resolution fusion.

    Fusion (paper Eq. 1, Fig. 3): ``out_r = sum_x f_xr(in_x)`` where ``f_rr`` is the identity,
    ``f_xr`` for a higher-resolution input (x < r) is ``r - x`` stride-2 3x3 convs, and for a
    lower-resolution input (x > r) a 1x1 conv (+BN) followed by upsampling to branch r's size.
    With ``multi_scale_output=False`` only the highest-resolution output is fused (HRNetV1 for pose).
    """

    def __init__(self, stage: StageConfig, in_channels: Sequence[int], multi_scale_output: bool = True,
                 upsample_mode: str = 'nearest', align_corners: bool = False):
        super().__init__()
        block = BLOCKS[stage.block]
        if len(in_channels) != stage.num_branches:
            raise ValueError(f'{stage.num_branches} branches need {stage.num_branches} input widths, '
                             f'got {list(in_channels)}')
        self.upsample_mode = upsample_mode
        self.align_corners = align_corners
        self.branches = nn.ModuleList([
            make_layer(block, in_channels[i], stage.num_channels[i], stage.num_blocks[i])
            for i in range(stage.num_branches)
        ])
        self.out_channels = [c * block.expansion for c in stage.num_channels]
        self.fuse_layers = self._make_fuse_layers(self.out_channels, multi_scale_output)
        self.fuse_act = nn.ReLU(inplace=True)

    @staticmethod
    def _make_fuse_layers(channels: Sequence[int], multi_scale_output: bool) -> nn.ModuleList:
        n = len(channels)
        if n == 1:
            return nn.ModuleList()
        fuse_layers = []
        for r in range(n if multi_scale_output else 1):
            row = []
            for x in range(n):
                if x > r:  # lower resolution: 1x1 conv to r's width, upsampled in forward
                    row.append(conv_bn(channels[x], channels[r], kernel_size=1, act=False))
                elif x == r:
                    row.append(nn.Identity())
                else:  # higher resolution: (r - x) stride-2 3x3 convs, ReLU between them
                    steps = r - x
                    row.append(nn.Sequential(*[
                        conv_bn(channels[x], channels[r] if k == steps - 1 else channels[x],
                                stride=2, act=k < steps - 1)
                        for k in range(steps)
                    ]))
            fuse_layers.append(nn.ModuleList(row))
        return nn.ModuleList(fuse_layers)

    def fuse(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        """The multi-resolution fusion: every output is the sum of all transformed inputs."""
        if len(self.fuse_layers) == 0:
            return xs
        out = []
        for r, row in enumerate(self.fuse_layers):
            y = None
            for x, f in enumerate(row):  # summed in branch order x = 0, 1, ... (as the official code)
                t = f(xs[x])
                if x > r:
                    t = upsample_to(t, xs[r], self.upsample_mode, self.align_corners)
                if y is None:
                    y = t
                elif y is xs[r]:
                    y = y + t  # a new tensor: never write into a branch output (xs[r] is shared)
                else:
                    y += t  # in place into the sum this row owns: saves an allocation per term
            out.append(self.fuse_act(y))
        return out

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        return self.fuse(xs)


def make_transition(in_channels: Sequence[int], out_channels: Sequence[int]) -> nn.ModuleList:
    """Stage transition: a 3x3 conv where a branch changes width, and a new lower-resolution branch
    made from the lowest existing one by a stride-2 3x3 conv (keys as in the official code)."""
    layers = []
    for i, c_out in enumerate(out_channels):
        if i < len(in_channels):
            layers.append(nn.Identity() if in_channels[i] == c_out else conv_bn(in_channels[i], c_out))
        else:
            steps = i + 1 - len(in_channels)
            c_in = in_channels[-1]
            layers.append(nn.Sequential(*[
                conv_bn(c_in, c_out if k == steps - 1 else c_in, stride=2) for k in range(steps)
            ]))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """The HRNet trunk: ``forward`` maps an image to the four branch outputs of stage 4, at strides
    4, 8, 16 and 32 with widths C, 2C, 4C and 8C (``self.branch_channels``).

    Subclasses add heads (classification, pose, segmentation, ...) beside these modules, so the
    trunk's parameters keep the official names at the top level of every model's state_dict.
    """

    def __init__(self, cfg: HRNetConfig, in_chans: int = 3, multi_scale_output: bool = True):
        super().__init__()
        self.cfg = cfg
        self.grad_checkpointing = False
        # Stem: two stride-2 3x3 convs to 1/4 resolution.
        self.conv1 = nn.Conv2d(in_chans, cfg.stem_width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem_width, momentum=BN_MOMENTUM)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cfg.stem_width, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.act2 = nn.ReLU(inplace=True)
        # Stage 1: bottleneck units on the single 1/4 branch.
        s1 = cfg.stages[0]
        block = BLOCKS[s1.block]
        self.layer1 = make_layer(block, 64, s1.num_channels[0], s1.num_blocks[0])
        channels = [s1.num_channels[0] * block.expansion]
        # Stages 2-4: one more branch at each transition.
        for k, stage in enumerate(cfg.stages[1:], start=2):
            widths = [c * BLOCKS[stage.block].expansion for c in stage.num_channels]
            setattr(self, f'transition{k - 1}', make_transition(channels, widths))
            last = k == 4
            modules = []
            for m in range(stage.num_modules):
                module = HighResolutionModule(
                    stage, widths, multi_scale_output=multi_scale_output or not last or m < stage.num_modules - 1,
                    upsample_mode=cfg.upsample_mode, align_corners=cfg.align_corners)
                widths = module.out_channels
                modules.append(module)
            setattr(self, f'stage{k}', nn.Sequential(*modules))
            channels = widths
        self.branch_channels = list(channels)
        self.stem_channels = cfg.stem_width
        init_weights(self)  # subclasses initialise the heads they add with the same function

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each residual unit / modular block in backward to save activation memory."""
        self.grad_checkpointing = enable

    def _run(self, module: nn.Module, x):
        if self.grad_checkpointing and torch.is_grad_enabled() and not is_fx_tracing():
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def stem_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The stem's two stride-2 convs: returns the 1/2 and the 1/4 resolution maps."""
        check_input_size(x)
        return self._run(self._stem, x)  # checkpointed too: the stem's maps are the largest

    def _stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        half = self.act1(self.bn1(self.conv1(x)))
        return half, self.act2(self.bn2(self.conv2(half)))

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem (1/4 resolution, 64 channels)."""
        return self.stem_features(x)[1]

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Stage 1 to 4 on the stem output; returns the branch outputs, highest resolution first."""
        for block in self.layer1:
            x = self._run(block, x)
        xs = [x]
        for k in (2, 3, 4):
            transition = getattr(self, f'transition{k - 1}')
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            for module in getattr(self, f'stage{k}'):
                xs = self._run(module, xs)
        return xs

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.forward_stages(self.forward_stem(x))
