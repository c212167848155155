"""Conflict-penalised task Taylor: TCI times (1 - lambda * k), k the channel's task-gradient conflict."""

from __future__ import annotations

import itertools

import torch

from ..channels import SliceReducer
from ..gradients import GradientStats
from ..graph import ChannelGroup
from .base import ScoringContext
from .registry import register_criterion
from .taylor import _stats, task_taylor_scores

__all__ = ["ConflictTaylor", "conflict_scores"]


def conflict_scores(stats: GradientStats, groups: list[ChannelGroup]) -> list[torch.Tensor]:
    """k(c) = mean over pairs of the tasks the group reaches of max(0, -cos(G_t(c), G_s(c))), in [0, 1];
    G_t(c) is task t's mean gradient restricted to the channel's slices. Zero for single-task groups and for a
    pair where either gradient is zero.

    Computed in float64 with the norms taken apart (sqrt(|a|^2) * sqrt(|b|^2)): gradients near 1e-12 square to
    1e-24, and the product of two such squares underflows float32 to zero, which made k 1.0 instead of 0.0995.
    """
    mean_grads = {t: {n: g.double() / stats.batches for n, g in grads.items()}
                  for t, grads in stats.task_gradients.items()}
    norms = {t: SliceReducer({n: g * g for n, g in grads.items()}, dtype=torch.float64)
             for t, grads in mean_grads.items()}
    conflicts = []
    for group in groups:
        tasks = sorted(group.tasks & set(mean_grads))
        pairs = list(itertools.combinations(tasks, 2))
        total = torch.zeros(group.channels, dtype=torch.float64)
        for a, b in pairs:
            products = {n: mean_grads[a][n] * mean_grads[b][n] for n in _params_of(group)}
            dots = SliceReducer(products, dtype=torch.float64).group(group)
            denominator = norms[a].group(group).sqrt() * norms[b].group(group).sqrt()
            cosine = torch.where(denominator > 0, dots / denominator.clamp_min(1e-300), torch.zeros_like(dots))
            total += torch.clamp(-cosine, min=0.0, max=1.0)
        conflicts.append((total / len(pairs) if pairs else total).float())
    return conflicts


def _params_of(group: ChannelGroup) -> set[str]:
    return {piece.param for piece in group.slices}


@register_criterion("conflict_taylor")
class ConflictTaylor:
    """S(c) = TCI(c) * (1 - lam * k(c)).

    Args:
        lam: weight of the conflict penalty, in [0, 1].
    """

    name = "conflict_taylor"
    needs = frozenset({"task_taylor", "task_gradients"})

    def __init__(self, lam: float = 0.5):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"conflict_taylor lam must be in [0, 1], got {lam}")
        self.lam = float(lam)

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        stats = _stats(context, self.name)
        importance = task_taylor_scores(stats, context.groups)
        penalty = conflict_scores(stats, context.groups)
        return [i * (1.0 - self.lam * k) for i, k in zip(importance, penalty, strict=True)]
