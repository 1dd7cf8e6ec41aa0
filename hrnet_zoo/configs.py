"""The HRNet variant table: every architecture is data, not a subclass.

Widths and block counts follow Table XIV / Appendix A of the paper and the official
HRNet-Image-Classification configs (``experiments/cls_hrnet_*.yaml``), which timm also uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Tuple

BlockType = Literal['basic', 'bottleneck']
UpsampleMode = Literal['nearest', 'bilinear']


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``num_modules`` modular blocks, each with one branch per resolution.

    ``num_blocks[i]`` residual units of type ``block`` on branch ``i``, whose width is
    ``num_channels[i]`` (before the block's expansion).
    """
    num_modules: int
    block: BlockType
    num_blocks: Tuple[int, ...]
    num_channels: Tuple[int, ...]

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)

    def __post_init__(self):
        if len(self.num_blocks) != len(self.num_channels):
            raise ValueError(
                f'num_blocks {self.num_blocks} and num_channels {self.num_channels} must have one '
                'entry per branch')


@dataclass(frozen=True)
class HRNetConfig:
    """A complete HRNet: stem, stage 1 (one branch) and stages 2-4 (2, 3, 4 branches).

    ``upsample_mode``/``align_corners`` choose how the fusion's 1x1-conv outputs are brought to the
    higher resolution: ``'nearest'`` as in the official classification and pose code (the default,
    so official weights keep their accuracy), ``'bilinear'`` as in the official segmentation code.
    """
    stem_width: int
    stages: Tuple[StageConfig, StageConfig, StageConfig, StageConfig]
    head_channels: Tuple[int, int, int, int] = (32, 64, 128, 256)
    num_features: int = 2048
    head_conv_bias: bool = True
    upsample_mode: UpsampleMode = 'nearest'
    align_corners: bool = False

    @property
    def width(self) -> int:
        """C, the width of the highest-resolution branch in stages 2-4."""
        return self.stages[1].num_channels[0]

    @property
    def branch_channels(self) -> Tuple[int, ...]:
        """Output widths of the four branches of the last stage (C, 2C, 4C, 8C)."""
        return self.stages[3].num_channels

    def with_upsample(self, mode: UpsampleMode, align_corners: bool = False) -> 'HRNetConfig':
        return replace(self, upsample_mode=mode, align_corners=align_corners)


def _standard(width: int) -> HRNetConfig:
    """HRNet-W{width}: stages of 1/1/4/3 modules, 4 units per branch (Table XIV)."""
    c = width
    return HRNetConfig(
        stem_width=64,
        stages=(
            StageConfig(1, 'bottleneck', (4,), (64,)),
            StageConfig(1, 'basic', (4, 4), (c, 2 * c)),
            StageConfig(4, 'basic', (4, 4, 4), (c, 2 * c, 4 * c)),
            StageConfig(3, 'basic', (4, 4, 4, 4), (c, 2 * c, 4 * c, 8 * c)),
        ),
    )


HRNET_CONFIGS: dict[str, HRNetConfig] = {
    # HRNet-W18-small-v1: one module per stage, one bottleneck (width 32) in stage 1, 2 units after.
    'hrnet_w18_small': HRNetConfig(
        stem_width=64,
        stages=(
            StageConfig(1, 'bottleneck', (1,), (32,)),
            StageConfig(1, 'basic', (2, 2), (16, 32)),
            StageConfig(1, 'basic', (2, 2, 2), (16, 32, 64)),
            StageConfig(1, 'basic', (2, 2, 2, 2), (16, 32, 64, 128)),
        ),
    ),
    # HRNet-W18-small-v2: 1/1/3/2 modules, 2 units per branch.
    'hrnet_w18_small_v2': HRNetConfig(
        stem_width=64,
        stages=(
            StageConfig(1, 'bottleneck', (2,), (64,)),
            StageConfig(1, 'basic', (2, 2), (18, 36)),
            StageConfig(3, 'basic', (2, 2, 2), (18, 36, 72)),
            StageConfig(2, 'basic', (2, 2, 2, 2), (18, 36, 72, 144)),
        ),
    ),
    **{f'hrnet_w{w}': _standard(w) for w in (18, 30, 32, 40, 44, 48, 64)},
}
# timm's SSLD-distilled (PaddleClas) weights: plain W18 / W48 whose head convs have no bias.
HRNET_CONFIGS['hrnet_w18_ssld'] = replace(HRNET_CONFIGS['hrnet_w18'], head_conv_bias=False)
HRNET_CONFIGS['hrnet_w48_ssld'] = replace(HRNET_CONFIGS['hrnet_w48'], head_conv_bias=False)


def get_config(name: str) -> HRNetConfig:
    """The config of variant ``name`` (e.g. ``'hrnet_w32'``); a clear KeyError lists the choices."""
    try:
        return HRNET_CONFIGS[name]
    except KeyError:
        raise KeyError(
            f'unknown HRNet variant {name!r}; choose one of {sorted(HRNET_CONFIGS)}') from None
