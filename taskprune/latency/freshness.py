"""Spot checks: before a cached latency table is trusted, a few of its layers are timed again.

A table measured while other processes loaded the machine and reused on an idle one (or the other way round) can
predict every plan wrongly: load does not slow every call alike (a short call that waits out another process's time
slice doubles, a long one barely notices), so the staircases and the layers' shares of the time are off, and the
end-to-end passes can correct only the total. So a table read from the cache is checked against fresh timings of its
slowest layers, at full width and at their narrowest measured width, and measured again when their times relative
to each other disagree with the table's by more than the fresh timings' own scatter allows. A machine uniformly
slower or faster than when the table was measured changes no prediction (the solver only uses relative times), so
that alone is reported, not re-measured.
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

MIN_TOLERANCE = 0.10  # a cached table's relative times are trusted within 10% however steady the check
_LAYERS = 3
_REPEATS = 5


@dataclass(frozen=True)
class SpotCheck:
    """Fresh timings of some of a table's layers, against the table.

    Attributes:
        layers: the layers timed again (the table's slowest).
        ratios: fresh / cached time, two per layer (full width, narrowest measured output width).
        tolerance: how far any ratio may stray from their median: `MIN_TOLERANCE`, or twice the fresh timings'
            spread when that is larger (a check too noisy to judge the table trusts it).
    """

    layers: tuple[str, ...]
    ratios: tuple[float, ...]
    tolerance: float

    @property
    def scale(self) -> float:
        """The median of fresh / cached: how much slower (> 1) or faster the machine runs now, which alone changes
        no prediction."""
        return statistics.median(self.ratios) if self.ratios else 1.0

    @property
    def disagreement(self) -> float:
        """How far the layers' times relative to each other moved: the largest |ratio / scale - 1|."""
        return max(abs(r / self.scale - 1) for r in self.ratios) if self.ratios else 0.0

    @property
    def agrees(self) -> bool:
        return self.disagreement <= self.tolerance

    def describe(self) -> str:
        if not self.ratios:
            return "no layer to spot-check"
        return (f"a spot check of {len(self.layers)} layers ran at {self.scale:.2f}x the table's times, their times "
                f"relative to each other within {self.disagreement:.0%} of the table's (allowed: {self.tolerance:.0%})")


def spot_check(table: Mapping[str, LayerLatency], model: nn.Module, shapes: dict[str, tuple[int, ...]],
               calls: dict[str, int], device: torch.device, timer: LayerTimer, layers: int = _LAYERS,
               repeats: int = _REPEATS) -> SpotCheck:
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
    now = statistics.median(spreads) if spreads else 0.0
    return SpotCheck(tuple(slowest), tuple(ratios), max(MIN_TOLERANCE, 2 * now))
