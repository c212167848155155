"""A rank-based conflict criterion, the alternative formulation that benchmarks/conflict.py measures beside
`conflict_taylor`.

`task_taylor` divides each task's squared Taylor scores by their mean before taking the max over tasks: those scores
are heavy-tailed, so the few channels one task leans on most set the scale and the max is decided by one task almost
everywhere. Here each task's scores become percentile ranks among the channels that task reaches (ties share the
lower rank), so both tasks count equally at every rank, and the conflict penalty acts on that rank:
S(c) = max_t rank_t(c) * (1 - lam * k(c)), k the same cosine conflict `conflict_taylor` uses.
"""

from __future__ import annotations

import torch

import taskprune
from taskprune.criteria.conflict import conflict_scores
from taskprune.criteria.taylor import gradient_stats

__all__ = ["ConflictRank", "percentile_ranks"]


def percentile_ranks(values: torch.Tensor) -> torch.Tensor:
    """Each value's share of the values strictly below it plus one, over their count: in (0, 1], ties equal."""
    ordered = values.sort().values
    below = torch.searchsorted(ordered, values, right=False)
    return (below + 1).double().div(values.numel()).float()


class ConflictRank:
    """S(c) = max over the tasks the group reaches of rank_t(c), times (1 - lam * k(c)).

    Args:
        lam: weight of the conflict penalty, in [0, 1]; 0 gives the rank combination alone.
    """

    name = "conflict_rank"
    needs = frozenset({"task_taylor", "task_gradients"})
    comparable = True  # ranks in (0, 1] share one unit across groups

    def __init__(self, lam: float = 0.5):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"conflict_rank lam must be in [0, 1], got {lam}")
        self.lam = float(lam)

    def score(self, context: taskprune.ScoringContext) -> list[torch.Tensor]:
        stats = gradient_stats(context, self.name)
        combined = [torch.zeros(group.channels) for group in context.groups]
        for task in stats.tasks:
            reached = [i for i, group in enumerate(context.groups) if task in group.tasks or not group.tasks]
            if not reached:
                continue
            scores = torch.cat([stats.task_taylor[task][i] / stats.batches for i in reached])
            ranks = percentile_ranks(scores).split([context.groups[i].channels for i in reached])
            for i, rank in zip(reached, ranks, strict=True):
                combined[i] = torch.maximum(combined[i], rank)
        penalty = conflict_scores(stats, context.groups, "cosine")
        return [score * (1.0 - self.lam * k) for score, k in zip(combined, penalty, strict=True)]
