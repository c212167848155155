"""Taylor importance: one summed loss (BatchNorm included), and per task with safe combination (TCI)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..groups import ChannelGroup
from .base import Criterion, ScoringContext
from .gradients import GradientStats
from .registry import register_criterion

__all__ = ["Taylor", "TaskTaylor", "checked_task_weights", "gradient_stats", "task_taylor_scores", "weighted_by_task"]


def gradient_stats(context: ScoringContext, criterion: str) -> GradientStats:
    """The context's gradient statistics, or a ValueError saying the criterion needs data."""
    if context.gradients is None:
        raise ValueError(f"criterion {criterion!r} needs gradient statistics: pass tasks= and data= to prune()")
    return context.gradients


@register_criterion("taylor")
class Taylor(Criterion):
    """Molchanov et al. 2019 group Taylor on the weighted sum of task losses:
    I(c) = mean_b (sum over the channel's slices of theta * dL/dtheta)^2, BatchNorm slices included
    (torch-pruning 1.6.1 leaves them out)."""

    name = "taylor"
    needs = frozenset({"summed_taylor"})
    comparable = True  # estimates of the loss change, in one unit across groups

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        stats = gradient_stats(context, self.name)
        return [acc / stats.batches for acc in stats.summed_taylor]


def task_taylor_scores(stats: GradientStats, groups: list[ChannelGroup]) -> list[torch.Tensor]:
    """Per-task Taylor importance normalised by its mean over all channels, combined by max over the tasks each
    group reaches (a channel is a removal candidate only if no task needs it)."""
    combined = [torch.zeros(group.channels) for group in groups]
    for task in stats.tasks:
        per_group = [acc / stats.batches for acc in stats.task_taylor[task]]
        mean = torch.cat(per_group).mean() if per_group else torch.tensor(0.0)
        if mean <= 0:
            continue  # this task's loss reaches no prunable channel
        for i, (score, group) in enumerate(zip(per_group, groups, strict=True)):
            if task in group.tasks or not group.tasks:
                combined[i] = torch.maximum(combined[i], score / mean)
    return combined


def checked_task_weights(weights: Mapping[str, float] | None) -> dict[str, float] | None:
    """`task_weights` as a criterion keeps it, or a ValueError naming what is wrong."""
    if weights is None:
        return None
    if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0 for k, v in weights.items()):
        raise ValueError(f"task_weights must map task names to finite numbers > 0, got {weights!r}")
    return {k: float(v) for k, v in sorted(weights.items())}


def weighted_by_task(scores: list[torch.Tensor], groups: list[ChannelGroup], weights: Mapping[str, float],
                     tasks: tuple[str, ...], per_group: bool = True) -> list[torch.Tensor]:
    """Each group's scores divided by their mean (unless `per_group` is False), times the largest weight among the
    tasks the group serves (1 for a task not named; every task for a group whose tasks are unknown), so that the
    budget takes fewer channels from groups that serve a heavier task."""
    unknown = sorted(set(weights) - set(tasks))
    if unknown:
        raise ValueError(f"task_weights names task(s) {unknown} that the model's tasks do not include; tasks: "
                         f"{', '.join(tasks)}")
    weighted = []
    for score, group in zip(scores, groups, strict=True):
        mean = score.abs().mean() if per_group and score.numel() else torch.tensor(1.0)
        weight = max(weights.get(t, 1.0) for t in (group.tasks or tasks))
        weighted.append(score / mean * weight if mean > 0 else score)
    return weighted


@register_criterion("task_taylor")
class TaskTaylor(Criterion):
    """Task Taylor importance (TCI): I(c) = max_t I_t(c) / mean(I_t).

    Args:
        task_weights: task name -> weight > 0 (1 for a task not named). When given, each group's scores are divided
            by their mean and multiplied by the largest weight among the tasks the group serves, and the budget takes
            them as they are (`normalised`): groups serving a heavier task give up fewer channels, the rest more.
    """

    name = "task_taylor"
    needs = frozenset({"task_taylor"})
    comparable = True  # each task normalised by its mean over all channels: one unit across groups

    def __init__(self, task_weights: Mapping[str, float] | None = None):
        self.task_weights = checked_task_weights(task_weights)
        self.normalised = self.task_weights is not None  # the budget keeps the weights' share between groups

    def with_task_weights(self, task_weights: Mapping[str, float]) -> TaskTaylor:
        """This criterion with other task weights."""
        return TaskTaylor(task_weights=task_weights)

    def settings(self) -> dict[str, Any]:
        return {"normalised": self.normalised, "task_weights": self.task_weights}

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        stats = gradient_stats(context, self.name)
        scores = task_taylor_scores(stats, context.groups)
        if self.task_weights is None:
            return scores
        return weighted_by_task(scores, context.groups, self.task_weights, stats.tasks)
