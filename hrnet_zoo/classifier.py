"""The ImageNet classifier (paper Appendix B, Fig. 11) and the ``features_only`` model.

:class:`HighResolutionNet` is the timm-facing model: the trunk, the classification head
(``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``) and timm's model API.
:class:`HighResolutionNetFeatures` returns feature maps instead of logits.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from timm.layers import create_classifier
from timm.models import FeatureInfo
from timm.models._features import feature_take_indices

from .backbone import HRNet
from .configs import HRNetConfig
from .layers import BN_MOMENTUM, Bottleneck, init_weights, make_layer
from .representations import HRNetV2, HRNetV2p

FEATURE_LOCATIONS = ('incre', '', 'v2', 'v2p')


def make_classification_head(branch_channels: Sequence[int], head_channels: Sequence[int],
                             num_features: int, conv_bias: bool = True):
    """Appendix B: a bottleneck per branch (C, 2C, 4C, 8C -> 128, 256, 512, 1024), stride-2 3x3
    convs adding each resolution into the next lower one, and a 1x1 conv to ``num_features``."""
    expansion = Bottleneck.expansion
    incre_modules = nn.ModuleList([
        make_layer(Bottleneck, c, h, 1) for c, h in zip(branch_channels, head_channels)])
    downsamp_modules = nn.ModuleList([
        nn.Sequential(
            nn.Conv2d(head_channels[i] * expansion, head_channels[i + 1] * expansion, 3, stride=2,
                      padding=1, bias=conv_bias),
            nn.BatchNorm2d(head_channels[i + 1] * expansion, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True))
        for i in range(len(head_channels) - 1)])
    final_layer = nn.Sequential(
        nn.Conv2d(head_channels[-1] * expansion, num_features, 1, bias=conv_bias),
        nn.BatchNorm2d(num_features, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True))
    return incre_modules, downsamp_modules, final_layer


def _feature_info(cfg: HRNetConfig, location: str, branch_channels: Sequence[int]) -> List[Dict]:
    """timm ``feature_info`` for ``location``. Every ``module`` names a module of the model whose
    output is that feature map, so timm's hook / fx feature wrappers and transformers'
    ``TimmBackbone`` find it: the stem's ``act1`` (stride 2), the head bottlenecks
    ``incre_modules.i``, the raw-branch taps ``branch_out.i``, the V2 / V2p neck."""
    stem = dict(num_chs=cfg.stem_width, reduction=2, module='act1')
    if location == 'v2':
        return [dict(num_chs=int(sum(branch_channels)), reduction=4, module='neck')]
    if location == 'v2p':
        return [dict(num_chs=256, reduction=4 * 2 ** k, module=f'neck.fpn_conv.{k}') for k in range(5)]
    if location == 'incre':
        chs = [h * Bottleneck.expansion for h in cfg.head_channels]
        mods = [f'incre_modules.{i}' for i in range(4)]
    else:
        chs = list(branch_channels)
        mods = [f'branch_out.{i}' for i in range(4)]
    return [stem] + [dict(num_chs=c, reduction=4 * 2 ** i, module=m) for i, (c, m) in enumerate(zip(chs, mods))]


class HighResolutionNet(HRNet):
    """HRNet ImageNet classifier with timm's model interface.

    Args:
        cfg: the variant's :class:`~hrnet_zoo.configs.HRNetConfig`.
        in_chans: input channels.
        num_classes: classifier outputs; 0 gives pooled 2048-d features from ``forward``.
        global_pool: timm pool type (``'avg'``, ``'max'``, ``'avgmax'``, ``''`` for none).
        drop_rate: dropout before the classifier.
    """

    def __init__(self, cfg: HRNetConfig, in_chans: int = 3, num_classes: int = 1000,
                 global_pool: str = 'avg', drop_rate: float = 0.0, output_stride: int = 32,
                 head: str = 'classification', device=None, dtype=None):
        if output_stride != 32:
            raise ValueError(f'HRNet supports output_stride=32 only, got {output_stride}')
        super().__init__(cfg, in_chans=in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = cfg.num_features
        self.incre_modules = self.downsamp_modules = self.final_layer = None
        if head == 'classification':
            self.incre_modules, self.downsamp_modules, self.final_layer = make_classification_head(
                self.branch_channels, cfg.head_channels, cfg.num_features, cfg.head_conv_bias)
        self.global_pool, self.classifier = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self.head_drop = nn.Dropout(drop_rate)
        self.feature_info = _feature_info(cfg, 'incre', self.branch_channels)
        init_weights(self.incre_modules, self.downsamp_modules, self.final_layer)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    # --- timm model API -------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return dict(
            stem=r'^conv[12]|bn[12]',
            blocks=r'^(?:layer|stage|transition)(\d+)' if coarse else [
                (r'^layer(\d+)\.(\d+)', None),
                (r'^stage(\d+)\.(\d+)', None),
                (r'^transition(\d+)', (99999,)),
            ],
        )

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New classifier for ``num_classes`` (0: none); ``global_pool`` None keeps the current pool."""
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.classifier = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def _head_features(self, ys: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self._run(incre, y) for incre, y in zip(self.incre_modules, ys)]

    def _aggregate(self, ys: List[torch.Tensor]) -> torch.Tensor:
        """Add each resolution, downsampled by a stride-2 conv, into the next lower one."""
        y = ys[0]
        for down, y_low in zip(self.downsamp_modules, ys[1:]):
            y = y_low + down(y)
        return self.final_layer(y)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> the 2048-channel stride-32 map before pooling."""
        return self._aggregate(self._head_features(self.forward_stages(self.forward_stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Features at ``self.feature_info`` (stem at stride 2, then the four branches after the
        head's bottlenecks at strides 4-32) and, unless ``intermediates_only``, the final map.
        ``norm`` and ``stop_early`` are accepted for timm compatibility: every branch feeds the last
        fusion, so the whole trunk always runs.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"HRNet's intermediates are NCHW only, got output_fmt={output_fmt!r}")
        take, _ = feature_take_indices(len(self.feature_info), indices)
        half, x = self.stem_features(x)
        intermediates = [half] if 0 in take else []
        ys = self._head_features(self.forward_stages(x))
        intermediates += [y for i, y in enumerate(ys, start=1) if i in take]
        if intermediates_only:
            return intermediates
        return self._aggregate(ys), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop what ``forward_intermediates(intermediates_only=True)`` does not need."""
        take, _ = feature_take_indices(len(self.feature_info), indices)
        if prune_head:
            self.downsamp_modules = None
            self.final_layer = None
            self.reset_classifier(0, '')
        return take


class HighResolutionNetFeatures(HighResolutionNet):
    """HRNet returning a list of feature maps (timm ``features_only``).

    ``feature_location``:
      - ``'incre'`` (timm's default): stem (64 ch, stride 2) and the four branches after the
        classification head's bottlenecks (128, 256, 512, 1024 ch at strides 4-32);
      - ``''``: stem and the raw branches (C, 2C, 4C, 8C);
      - ``'v2'``: one map, the HRNetV2 representation (15C channels at stride 4);
      - ``'v2p'``: the HRNetV2p pyramid, five 256-channel levels at strides 4-64 (its neck is
        newly initialised: no official classification checkpoint contains it).
    ``feature_info`` lists the selected maps (``channels()``, ``reduction()``) and names the
    module that outputs each one. ``return_layers`` (``{module name: output id}``, as on timm's
    ``FeatureDictNet``) selects what ``forward`` returns; it starts as the ``out_indices``, and
    transformers' ``TimmBackbone`` swaps in every level for ``output_hidden_states=True``.
    """

    def __init__(self, cfg: HRNetConfig, in_chans: int = 3, feature_location: str = 'incre',
                 out_indices: Optional[Sequence[int]] = None, drop_rate: float = 0.0,
                 device=None, dtype=None, **kwargs):
        if feature_location not in FEATURE_LOCATIONS:
            raise ValueError(f'feature_location must be one of {FEATURE_LOCATIONS}, got {feature_location!r}')
        kwargs.pop('num_classes', None)
        kwargs.pop('global_pool', None)
        super().__init__(cfg, in_chans=in_chans, num_classes=0, head='features', drop_rate=drop_rate, **kwargs)
        self.feature_location = feature_location
        if feature_location == 'incre':
            self.incre_modules, _, _ = make_classification_head(
                self.branch_channels, cfg.head_channels, cfg.num_features, cfg.head_conv_bias)
        self.neck = self.branch_out = None
        if feature_location == '':  # parameter-free taps: a named module outputs each raw branch
            self.branch_out = nn.ModuleList([nn.Identity() for _ in self.branch_channels])
        if feature_location == 'v2':
            self.neck = HRNetV2(self.branch_channels)
        elif feature_location == 'v2p':
            self.neck = HRNetV2p(self.branch_channels)
        info = _feature_info(cfg, feature_location, self.branch_channels)
        if out_indices is None:
            out_indices = tuple(range(len(info)))
        bad = [i for i in out_indices if not -len(info) <= i < len(info)]
        if bad:
            raise ValueError(f'out_indices {tuple(out_indices)} out of range for feature_location='
                             f'{feature_location!r}, which has {len(info)} feature maps')
        out_indices = tuple(i % len(info) for i in out_indices)
        self.feature_info = FeatureInfo(info, out_indices)
        self.return_layers = {info[i]['module']: str(i) for i in out_indices}
        init_weights(self.incre_modules, self.neck)
        if isinstance(self.neck, HRNetV2p):
            self.neck.reset_parameters()  # the official HRFPN init, not the trunk's
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def forward_features(self, x):
        raise RuntimeError('a features_only model has no forward_features; call the model itself')

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        half, x = self.stem_features(x)
        ys = self.forward_stages(x)
        if self.neck is not None:
            out = self.neck(ys)
            maps = [out] if isinstance(out, torch.Tensor) else out
        elif self.branch_out is not None:
            maps = [half] + [tap(y) for tap, y in zip(self.branch_out, ys)]
        else:
            maps = [half] + self._head_features(ys)
        return [maps[i] for i in self._selected()]

    def _selected(self) -> List[int]:
        """Indices of the maps named by ``return_layers``, in its order; a clear error for a name
        that is not one of ``feature_info``'s modules."""
        names = [f['module'] for f in self.feature_info.info]
        unknown = [n for n in self.return_layers if n not in names]
        if unknown:
            raise KeyError(f'return_layers names {unknown}, which are not feature maps of this model; '
                           f'choose from {names}')
        return [names.index(n) for n in self.return_layers]
