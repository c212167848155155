"""Shared by the latency and budget tests: a model wide enough for steps of 16, and synthetic tables."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from two_task_models import TwoHead

from taskprune.latency import LatencyTable, LayerLatency


class Wide(TwoHead):
    """Two tasks on a 128-channel trunk: wide enough that steps of 16 channels can meet a budget. Its output is a
    tuple, so its tasks are named by position."""

    def __init__(self) -> None:
        super().__init__(widths=(64, 128, 96, 128), outputs=(4, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.trunk(x)
        return self.a(features), self.b(features)


def wide_model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return Wide().eval(), torch.randn(1, 3, 8, 8)


def _misaligned_table(model: nn.Module) -> LatencyTable:
    """Every layer costs its MACs rounded up to 16 channels, and 1.6x more off a multiple of 16: the CPU
    behaviour that makes plain pruning slower than dense."""

    def cost(c: int) -> float:
        return math.ceil(c / 16) * 16 * (1.0 if c % 16 == 0 else 1.6)

    layers = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            ins, outs = tuple(range(1, m.in_channels + 1)), tuple(range(1, m.out_channels + 1))
            layers[name] = LayerLatency("conv", 1.0, m.in_channels, m.out_channels, ins,
                                        tuple(cost(c) for c in ins), outs, tuple(cost(c) for c in outs))
        elif isinstance(m, nn.BatchNorm2d):
            outs = tuple(range(1, m.num_features + 1))
            layers[name] = LayerLatency("norm", 0.1, m.num_features, m.num_features,
                                        out_counts=outs, out_times=tuple(cost(c) for c in outs))
    return LatencyTable(total=1.0, alignment=1, layers=layers)


def _predicted(table: LatencyTable, model: nn.Module, snap: int | None = None) -> float:
    """Latency of a (pruned) model by the table, reading the widths off its layers (counts rounded up to `snap`,
    by default the table's alignment)."""
    modules = dict(model.named_modules())
    total = 0.0
    for name, layer in table.layers.items():
        m = modules[name]
        c_in, c_out = (m.in_channels, m.out_channels) if isinstance(m, nn.Conv2d) else (m.num_features,) * 2
        total += layer.at(c_in, c_out, table.alignment if snap is None else snap)
    return total



class LoadedClock:
    """A stand-in device's `LayerTimer`: seconds per call = parameters x input pixels x 1e-9 x `scale`, plus `wait`
    (what another process's time slice adds to every call, long or short), scattered by +-`jitter` round it;
    `calls` counts the modules timed."""

    def __init__(self, scale: float = 1.0, wait: float = 0.0, jitter: float = 0.02):
        self.scale, self.wait, self.jitter, self.calls = scale, wait, jitter, 0

    def __call__(self, module: nn.Module, inputs: Any, repeats: int) -> list[float]:
        self.calls += 1
        pixels = inputs[0, 0].numel() if isinstance(inputs, torch.Tensor) else 1
        seconds = sum(p.numel() for p in module.parameters()) * pixels * self.scale * 1e-9 + self.wait
        return [seconds * (1 + self.jitter * ((i % 3) - 1)) for i in range(repeats)]
