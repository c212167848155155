"""Conflict-penalised task Taylor: TCI times (1 - lambda * k), k the channel's task-gradient conflict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..groups import ChannelGroup
from .base import Criterion, ScoringContext
from .channels import cosine_conflict, sign_conflict
from .gradients import GradientStats
from .registry import register_criterion
from .taylor import checked_task_weights, gradient_stats, task_taylor_scores, weighted_by_task

__all__ = ["CONFLICT_MEASURES", "ConflictTaylor", "conflict_scores"]

CONFLICT_MEASURES = ("cosine", "batch_cosine", "sign_purity")


def conflict_scores(stats: GradientStats, groups: list[ChannelGroup], measure: str = "cosine") -> list[torch.Tensor]:
    """k(c) in [0, 1] per channel; zero for single-task groups.

    - "cosine": mean over pairs of the tasks the group reaches of max(0, -cos(G_t(c), G_s(c))), G_t(c) task t's
      mean gradient over the batches restricted to the channel's slices (the default; see `cosine_conflict`).
    - "batch_cosine": the same measured on every batch's gradients, then averaged over the batches.
    - "sign_purity": GradDrop's sign purity on the mean gradients (see `sign_conflict`).
    """
    if measure == "batch_cosine":
        return [acc / stats.batches for acc in stats.batch_conflict]
    mean_grads = {t: {n: g / stats.batches for n, g in grads.items()} for t, grads in stats.task_gradients.items()}
    if measure == "sign_purity":
        return sign_conflict(mean_grads, groups)
    return cosine_conflict(mean_grads, groups)


@register_criterion("conflict_taylor")
class ConflictTaylor(Criterion):
    """S(c) = TCI(c) * (1 - lam * k(c)).

    Args:
        lam: weight of the conflict penalty, in [0, 1].
        measure: how k is measured: "cosine" (default), "batch_cosine" or "sign_purity" (see `conflict_scores`).
        across_groups: apply the penalty after each group's TCI is divided by its mean, and tell the budget to use
            the scores as they are (`normalised`). By default the budget divides each group's scores by their mean,
            which cancels the part of the penalty shared by a group's channels: the penalty then only reorders
            channels within a group. With `across_groups=True` a group whose channels conflict on average also gives
            up more channels than its neighbours.
        task_weights: as for `task_taylor`: each group's penalised scores divided by their mean (when not
            `across_groups`) and multiplied by the largest weight among the tasks it serves, so groups serving a
            heavier task give up fewer channels.
    """

    name = "conflict_taylor"
    comparable = True  # estimates of the loss change, in one unit across groups

    def __init__(self, lam: float = 0.5, measure: str = "cosine", across_groups: bool = False,
                 task_weights: Mapping[str, float] | None = None):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"conflict_taylor lam must be in [0, 1], got {lam}")
        if measure not in CONFLICT_MEASURES:
            raise ValueError(f"Unknown conflict measure {measure!r}; available: {', '.join(CONFLICT_MEASURES)}")
        self.lam = float(lam)
        self.measure = measure
        self.needs = frozenset({"task_taylor", "batch_conflict" if measure == "batch_cosine" else "task_gradients"})
        self.across_groups = bool(across_groups)
        self.task_weights = checked_task_weights(task_weights)
        # the budget keeps the penalty's (and the weights') share between groups
        self.normalised = self.across_groups or self.task_weights is not None

    def with_task_weights(self, task_weights: Mapping[str, float]) -> ConflictTaylor:
        """This criterion, with its penalty settings, and other task weights."""
        return ConflictTaylor(self.lam, self.measure, self.across_groups, task_weights)

    def settings(self) -> dict[str, Any]:
        return {"across_groups": self.across_groups, "lam": self.lam, "measure": self.measure,
                "normalised": self.normalised, "task_weights": self.task_weights}

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        stats = gradient_stats(context, self.name)
        importance = task_taylor_scores(stats, context.groups)
        penalty = conflict_scores(stats, context.groups, self.measure)
        if self.across_groups:
            importance = [i / i.abs().mean() if i.numel() and i.abs().mean() > 0 else i for i in importance]
        scores = [i * (1.0 - self.lam * k) for i, k in zip(importance, penalty, strict=True)]
        if self.task_weights is None:
            return scores
        # across_groups: already divided by each group's mean before the penalty, whose share between groups stays
        return weighted_by_task(scores, context.groups, self.task_weights, stats.tasks,
                                per_group=not self.across_groups)
