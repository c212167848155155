"""Prune in several steps with recovery between them: how strong pruning is done in practice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from ..prune import PruneResult, prune
from .loop import Steps

__all__ = ["prune_iteratively"]


def prune_iteratively(model: nn.Module, example_inputs: Any, *, schedule: Sequence[float],
                      between: Callable[[nn.Module, int], nn.Module | None] | None = None, target: str = "params",
                      **options: Any) -> PruneResult:
    """Prune to each cumulative ratio of `schedule` in turn, calling `between(model, step)` after every step but
    the last (typically a short `taskprune.finetune`).

    Args:
        model: the model; untouched unless `inplace=True` is among `options`.
        example_inputs: as for `prune`.
        schedule: increasing cumulative reductions of `target` relative to the original model, e.g. [0.2, 0.35, 0.5].
        between: called with the pruned model and the step index; may return a new model to continue with.
        target: "params", "macs", "channels" or "latency", as for `prune` (each step's ratio is converted so the
            reduction is measured against the original model; a latency step is timed against the model it
            prunes, within 5% of its own ask, and the next step's ratio is set from that timing, so the errors
            compound: time the result end to end).
        **options: passed to every `prune` call (importance, tasks, data, protect, round_to, ...).

    Returns:
        A PruneResult whose report spans the whole schedule and whose channel map and history compose all steps.

    Example:
        >>> result = taskprune.prune_iteratively(model, x, schedule=[0.2, 0.4], importance="taylor", tasks=tasks,
        ...                                      data=loader, between=lambda m, step: taskprune.finetune(m, ...))
    """
    ratios = [float(r) for r in schedule]
    if (not ratios or any(not 0 < r < 1 for r in ratios)
            or any(b <= a for a, b in zip(ratios, ratios[1:], strict=False))):
        raise ValueError(f"schedule must be increasing ratios in (0, 1), e.g. [0.2, 0.35, 0.5]; got {list(schedule)}")
    steps = Steps(model)
    for index, ratio in enumerate(ratios):
        if index and between is not None:
            steps = replace(steps, model=between(steps.model, index - 1) or steps.model)
        last = prune(steps.model, example_inputs, ratio=steps.step_ratio(ratio), target=target, **options)
        steps = steps.then(last)
    return steps.result(last, ratio=ratios[-1])
