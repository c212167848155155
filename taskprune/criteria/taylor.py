"""Taylor importance: one summed loss (BatchNorm included), and per task with safe combination (TCI)."""

from __future__ import annotations

import torch

from ..gradients import GradientStats
from ..groups import ChannelGroup
from .base import ScoringContext
from .registry import register_criterion

__all__ = ["Taylor", "TaskTaylor", "gradient_stats", "task_taylor_scores"]


def gradient_stats(context: ScoringContext, criterion: str) -> GradientStats:
    """The context's gradient statistics, or a ValueError saying the criterion needs data."""
    if context.gradients is None:
        raise ValueError(f"criterion {criterion!r} needs gradient statistics: pass tasks= and data= to prune()")
    return context.gradients


@register_criterion("taylor")
class Taylor:
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


@register_criterion("task_taylor")
class TaskTaylor:
    """Task Taylor importance (TCI): I(c) = max_t I_t(c) / mean(I_t)."""

    name = "task_taylor"
    needs = frozenset({"task_taylor"})
    comparable = True  # each task normalised by its mean over all channels: one unit across groups

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        stats = gradient_stats(context, self.name)
        return task_taylor_scores(stats, context.groups)
