"""The step loop that `prune_iteratively` and `prune_within` share: prune the current model by the ratio that takes
the original model to a cumulative reduction, then compose what every step removed into one result.

    >>> steps = Steps(model)
    >>> for ratio in (0.2, 0.4):
    ...     last = prune(steps.model, x, ratio=steps.step_ratio(ratio))
    ...     steps = steps.then(last)
    >>> steps.result(last, ratio=0.4).report.reached   # against `model`, not against the 20%-pruned one
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from ..prune import PruneResult

__all__ = ["Steps", "compose_channel_maps"]


def compose_channel_maps(first: dict[str, list[int]], then: dict[str, list[int]]) -> dict[str, list[int]]:
    """The channel map of two prunes in a row, in the original model's indices."""
    composed = dict(first)
    for name, kept in then.items():
        earlier = first.get(name)
        composed[name] = [earlier[i] for i in kept] if earlier is not None else list(kept)
    return composed


@dataclass(frozen=True)
class Steps:
    """What the steps taken so far removed from the original model.

    Attributes:
        model: the model after the last step (the original before the first), which the next step prunes.
        reached: the reduction of the target so far, against the original model.
        history: every step's pruning history, in order: replaying it on the original gives `model`'s shapes.
        channel_map: per layer, the original model's channel indices `model` keeps.
        taken: how many steps were taken.
        params_before, macs_before: the original model's size, for the combined report (by default the first
            step's report gives it).
    """

    model: nn.Module
    reached: float = 0.0
    history: list[list[Any]] = field(default_factory=list)
    channel_map: dict[str, list[int]] = field(default_factory=dict)
    taken: int = 0
    params_before: int | None = None
    macs_before: int | None = None

    @classmethod
    def resumed(cls, result: PruneResult) -> Steps:
        """Carry on from a result that already spans the steps before (one `result` made, or a checkpoint's)."""
        report = result.report
        return cls(model=result.model, reached=report.reached, history=list(result.history),
                   channel_map=dict(result.channel_map), taken=1, params_before=report.params_before,
                   macs_before=report.macs_before)

    def step_ratio(self, ratio: float) -> float:
        """The ratio to prune `model` by so that `ratio` of the original model's target is gone (the first step
        prunes `ratio` as asked)."""
        return ratio if not self.taken else 1 - (1 - ratio) / (1 - self.reached)

    def then(self, step: PruneResult, model: nn.Module | None = None) -> Steps:
        """The steps after one more: `step` pruned `self.model`; `model` is what to continue with (by default
        `step.model`; a recovered copy of it, say)."""
        reached = step.report.reached if not self.taken else 1 - (1 - self.reached) * (1 - step.report.reached)
        return Steps(model=step.model if model is None else model, reached=reached,
                     history=[*self.history, *step.history],
                     channel_map=compose_channel_maps(self.channel_map, step.channel_map), taken=self.taken + 1,
                     params_before=step.report.params_before if self.params_before is None else self.params_before,
                     macs_before=step.report.macs_before if self.macs_before is None else self.macs_before)

    def result(self, last: PruneResult, ratio: float) -> PruneResult:
        """All steps as one `PruneResult`: `last` (the last step's result) with this model, history and channel
        map, and its report rewritten to span every step (`ratio` the cumulative one asked)."""
        if not self.taken:
            raise ValueError("Steps.result needs at least one step taken; call then() with a step's result first")
        report = last.report
        report = replace(report, ratio=ratio, reached=self.reached,
                         params_before=report.params_before if self.params_before is None else self.params_before,
                         macs_before=report.macs_before if self.macs_before is None else self.macs_before)
        return replace(last, model=self.model, report=report, history=self.history, channel_map=self.channel_map)
