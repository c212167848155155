"""A layer torch-pruning does not know: a gated convolution with its own parameters (no nn.Conv2d inside),
the worked example of docs/your_model.md, and a two-task model around it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import taskprune
from taskprune.layers import LayerKind


class GatedConv2d(nn.Module):
    """out = conv(x, weight) * sigmoid(conv1x1(x, gate)); parameters weight [out, in, k, k], bias [out],
    gate [out, in, 1, 1]."""

    def __init__(self, c_in: int, c_out: int, k: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) * 0.1)
        self.bias = nn.Parameter(torch.randn(c_out) * 0.1)
        self.gate = nn.Parameter(torch.randn(c_out, c_in, 1, 1) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.weight.shape[-1] // 2
        return F.conv2d(x, self.weight, self.bias, padding=padding) * torch.sigmoid(F.conv2d(x, self.gate))


def gated_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> float:
    c_out, c_in, k, _ = module.weight.shape
    return output[0, 0].numel() * c_out * c_in * (k * k + 1)


def register_gated() -> LayerKind:
    """The one registration docs/your_model.md shows."""
    return taskprune.register_layer(
        GatedConv2d,
        out_params={"weight": 0, "bias": 0, "gate": 0},   # what goes with an output channel
        in_params={"weight": 1, "gate": 1},               # ... and with an input channel
        channels=lambda m: (m.weight.shape[1], m.weight.shape[0]),
        per_channel="bias",
        resize=lambda m, c_in, c_out: GatedConv2d(c_in, c_out, m.weight.shape[-1]),
        macs=gated_macs,
    )


class GatedNet(nn.Module):
    """A conv stem, the gated layer shared by two tasks, and a head per task."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.gated = GatedConv2d(16, 32)
        self.norm = nn.BatchNorm2d(32)
        self.det = nn.Conv2d(32, 5, 1)
        self.seg = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.norm(self.gated(self.stem(x))))
        return self.det(features), self.seg(features)


def gated_net() -> tuple[GatedNet, torch.Tensor]:
    torch.manual_seed(0)
    return GatedNet().eval(), torch.randn(1, 3, 16, 16)
