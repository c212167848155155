"""Spot checks: before a cached latency table is trusted, a few of its layers are timed again.

A table measured while other processes loaded the machine and reused on an idle one (or the other way round)
predicts every plan wrongly, and the end-to-end passes can only correct its total, not its shape. So a table read
from the cache is checked against fresh timings of its slowest layers, at full width and at their narrowest
measured width, and measured again when the fresh timings disagree by more than the two measurements' own scatter
allows.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .layers import LayerLatency, time_at
from .timing import LayerTimer, relative_spread

__all__ = ["MIN_TOLERANCE", "SpotCheck", "spot_check"]

MIN_TOLERANCE = 0.10  # a cached table is trusted within 10% however steady both measurements were
_LAYERS = 3
_REPEATS = 5


@dataclass(frozen=True)
class SpotCheck:
    """Fresh timings of some of a table's layers, against the table.

    Attributes:
        layers: the layers timed again (the table's slowest).
        ratios: fresh / cached time, two per layer (full width, narrowest measured output width).
        tolerance: how far the median ratio may stray from 1: `MIN_TOLERANCE`, or twice the sum of the table's and
            the fresh timings' spreads when that is larger.
    """

    layers: tuple[str, ...]
    ratios: tuple[float, ...]
    tolerance: float

    @property
    def disagreement(self) -> float:
        """|median(fresh / cached) - 1|: 0.5 when the layers now run in half the time the table says."""
        return abs(statistics.median(self.ratios) - 1) if self.ratios else 0.0

    @property
    def agrees(self) -> bool:
        return self.disagreement <= self.tolerance

    def describe(self) -> str:
        return (f"a spot check of {len(self.layers)} layers ran at {statistics.median(self.ratios):.2f}x the table's "
                f"times (allowed: within {self.tolerance:.0%})") if self.ratios else "no layer to spot-check"


def spot_check(table: Mapping[str, LayerLatency], model: nn.Module, shapes: dict[str, tuple[int, ...]],
               calls: dict[str, int], device: torch.device, timer: LayerTimer, layers: int = _LAYERS, repeats: int = _REPEATS) -> SpotCheck:
    """Time the `layers` slowest of a table's layers (`table`: name -> `LayerLatency`) again with `timer` and compare
    with what the table says."""
    modules = dict(model.named_modules())
    slowest = sorted((name for name in table if name in shapes and name in modules),
                     key=lambda name: table[name].base, reverse=True)[:layers]
    ratios, spreads = [], []
    for name in slowest:
        entry = table[name]
        tied = entry.kind in ("depthwise", "norm")
        narrow = entry.out_counts[0] if entry.out_counts else entry.out_full
        for c_out, cached in ((entry.out_full, entry.base), (narrow, entry.out_times[0] if entry.out_times else 0)):
            run = time_at(modules[name], entry.kind, shapes[name], c_out if tied else entry.in_full, c_out, device,
                          timer, repeats)
            if cached > 0:
                ratios.append(calls[name] * statistics.median(run) / cached)
                spreads.append(relative_spread(run))
    then = statistics.median(table[name].spread for name in slowest) if slowest else 0.0
    now = statistics.median(spreads) if spreads else 0.0
    return SpotCheck(tuple(slowest), tuple(ratios), max(MIN_TOLERANCE, 2 * (then + now)))
