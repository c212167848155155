"""Prune in several steps with recovery between them: how strong pruning is done in practice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from .api import PruneResult, prune

__all__ = ["prune_iteratively", "compose_channel_maps"]


def compose_channel_maps(first: dict[str, list[int]], then: dict[str, list[int]]) -> dict[str, list[int]]:
    """The channel map of two prunes in a row, in the original model's indices."""
    composed = dict(first)
    for name, kept in then.items():
        earlier = first.get(name)
        composed[name] = [earlier[i] for i in kept] if earlier is not None else list(kept)
    return composed


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
        target: "params", "macs" or "channels", as for `prune` (each step's ratio is converted so the reduction is
            measured against the original model).
        **options: passed to every `prune` call (importance, tasks, data, protect, round_to, ...).

    Returns:
        A PruneResult whose report spans the whole schedule and whose channel map and history compose all steps.

    Example:
        >>> result = taskprune.prune_iteratively(model, x, schedule=[0.2, 0.4], importance="taylor", tasks=tasks,
        ...                                      data=loader, between=lambda m, step: taskprune.finetune(m, ...))
    """
    ratios = [float(r) for r in schedule]
    if not ratios or any(not 0 < r < 1 for r in ratios) or any(b <= a for a, b in zip(ratios, ratios[1:], strict=False)):
        raise ValueError(f"schedule must be increasing ratios in (0, 1), e.g. [0.2, 0.35, 0.5]; got {list(schedule)}")
    first = result = prune(model, example_inputs, ratio=ratios[0], target=target, **options)
    history, channel_map = list(result.history), dict(result.channel_map)
    current, done = result.model, result.report.reached
    for step, ratio in enumerate(ratios[1:]):
        if between is not None:
            current = between(current, step) or current
        step_ratio = 1 - (1 - ratio) / (1 - done)
        result = prune(current, example_inputs, ratio=step_ratio, target=target, **options)
        history += result.history
        channel_map = compose_channel_maps(channel_map, result.channel_map)
        current, done = result.model, 1 - (1 - done) * (1 - result.report.reached)
    report = replace(result.report, ratio=ratios[-1], reached=done, params_before=first.report.params_before,
                     macs_before=first.report.macs_before)
    return PruneResult(model=current, report=report, history=history, channel_map=channel_map,
                       example_inputs=example_inputs)
