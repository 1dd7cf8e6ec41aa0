"""Residual units used by HRNet: the basic unit (two 3x3 convs) and the bottleneck unit.

Attribute names (``conv1``, ``bn1``, ..., ``downsample``) are those of the official code and timm,
so official checkpoints load without key surgery.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

BN_MOMENTUM = 0.1


def conv_bn(in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, act: bool = True,
            bias: bool = False) -> nn.Sequential:
    """``Conv2d -> BatchNorm2d [-> ReLU]`` with 'same' padding (keys ``0``, ``1``)."""
    layers = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_chs, momentum=BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Basic residual unit: 3x3 conv, BN, ReLU, 3x3 conv, BN, add shortcut, ReLU."""
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        x += shortcut  # in place: x is a fresh BN output (saves an allocation per unit)
        return self.act2(x)


class Bottleneck(nn.Module):
    """Bottleneck residual unit: 1x1 reduce, 3x3, 1x1 expand (x4), add shortcut, ReLU."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x += shortcut  # in place: x is a fresh BN output
        return self.act3(x)


def init_weights(*modules: Optional[nn.Module]) -> None:
    """The official initialisation: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
    for module in modules:
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


BLOCKS = {'basic': BasicBlock, 'bottleneck': Bottleneck}


def make_layer(block: type, inplanes: int, planes: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """``num_blocks`` residual units; the first gets a 1x1 conv-BN shortcut when shapes change."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = conv_bn(inplanes, planes * block.expansion, kernel_size=1, stride=stride, act=False)
    layers = [block(inplanes, planes, stride, downsample)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)
