"""The criterion protocol and the scoring context every criterion reads its inputs from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..gradients import GradientStats
from ..groups import ChannelGroup

__all__ = ["Criterion", "ScoringContext", "TaskWeighted"]


@dataclass
class ScoringContext:
    """Everything a criterion may use, passed explicitly (never read from stale `.grad` fields).

    Attributes:
        model: the model being pruned (its current weights).
        groups: the channel groups to score.
        gradients: the statistics collected for the criterion's `needs`, or None for data-free criteria.
        seed: seed for criteria with randomness.
        graph: the `PruningGraph`, for criteria that delegate to torch-pruning importances.
    """

    model: nn.Module
    groups: list[ChannelGroup]
    gradients: GradientStats | None = None
    seed: int = 0
    graph: Any = None

    def parameters(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.model.named_parameters()}


@runtime_checkable
class Criterion(Protocol):
    """Ranks channels: `score(context)` gives one 1-D tensor per group, higher means keep.

    `needs` names the gradient statistics the criterion reads (a subset of `taskprune.gradients.NEEDS`);
    an empty set means it works without data. An optional `comparable = True` declares that scores of different
    groups are in one unit (estimates of the loss change), so a latency budget may trade channels between groups by
    their raw scores; without it each group's scores are normalised by their own mean. An optional
    `normalised = True` declares that the criterion normalised each group's scores itself, so no budget divides
    them again (`conflict_taylor(across_groups=True)`).
    """

    name: str
    needs: frozenset[str]

    def score(self, context: ScoringContext) -> list[torch.Tensor]: ...


@runtime_checkable
class TaskWeighted(Protocol):
    """A criterion that can weigh tasks: groups serving a heavier task give up fewer channels (`task_taylor`,
    `conflict_taylor`). `prune_within` uses it to spare a task whose limit broke."""

    task_weights: dict[str, float] | None

    def with_task_weights(self, task_weights: Mapping[str, float]) -> TaskWeighted:
        """The same criterion with these task weights."""
        ...
