"""The criterion protocol and the scoring context every criterion reads its inputs from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..groups import ChannelGroup
from .gradients import GradientStats

__all__ = ["Criterion", "Scorer", "ScoringContext", "TaskWeighted", "WithDefaults", "attributes", "declared"]


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
class Scorer(Protocol):
    """The members a criterion must have: `name`, `needs` and `score`. `get_criterion` accepts any object with
    them and gives it the rest of the `Criterion` protocol with its defaults."""

    name: str
    needs: frozenset[str]

    def score(self, context: ScoringContext) -> list[torch.Tensor]: ...


@runtime_checkable
class Criterion(Protocol):
    """Ranks channels: `score(context)` gives one 1-D tensor per group, higher means keep.

    Attributes:
        name: the name the report shows.
        needs: the gradient statistics the criterion reads (a subset of `taskprune.criteria.gradients.NEEDS`); an
            empty set means it works without data.
        comparable: the scores of different groups are in one unit (estimates of the loss change), so a latency
            budget may trade channels between groups by their raw scores; when False (the default) each group's
            scores are normalised by their own mean.
        normalised: the criterion normalised each group's scores itself, so no budget divides them again
            (`conflict_taylor(across_groups=True)`). Default False.

    A class that subclasses `Criterion` inherits the defaults; an object that has only `name`, `needs` and `score`
    (the `Scorer` members) gets them from `get_criterion`.
    """

    name: str
    needs: frozenset[str]
    comparable: bool = False
    normalised: bool = False

    def score(self, context: ScoringContext) -> list[torch.Tensor]: ...

    def settings(self) -> dict[str, Any]:
        """The options the criterion was built with (conflict_taylor's `lam`, `measure`, ...): what a `prune_within`
        checkpoint records and compares before resuming. By default its instance attributes but `needs`."""
        return attributes(self)


def attributes(obj: object) -> dict[str, Any]:
    """An object's instance attributes but `needs`: the settings of a criterion that does not declare them."""
    return {k: v for k, v in vars(obj).items() if k != "needs"} if hasattr(obj, "__dict__") else {}


class WithDefaults:
    """A `Scorer` that leaves out members of `Criterion`, with the defaults for what it leaves out.

    Attributes:
        criterion: the object given; `name`, `needs` and `score` are its own.
    """

    def __init__(self, criterion: Scorer, comparable: bool = False, normalised: bool = False):
        self.criterion = criterion
        self.name, self.needs = criterion.name, criterion.needs
        self.comparable = comparable
        self.normalised = normalised

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        return self.criterion.score(context)

    def settings(self) -> dict[str, Any]:
        """The given object's settings: its instance attributes but `needs`."""
        return attributes(self.criterion)


def declared(criterion: Scorer) -> Criterion:
    """`criterion` with every member `Criterion` declares: itself when it has them all, else a `WithDefaults` view
    that keeps the flags it sets and gives the others their defaults (the flags are optional members)."""
    if isinstance(criterion, Criterion):
        return criterion
    flags = {flag: bool(getattr(criterion, flag)) for flag in ("comparable", "normalised") if hasattr(criterion, flag)}
    return WithDefaults(criterion, **flags)


@runtime_checkable
class TaskWeighted(Protocol):
    """A criterion that can weigh tasks: groups serving a heavier task give up fewer channels (`task_taylor`,
    `conflict_taylor`). `prune_within` uses it to spare a task whose limit broke."""

    task_weights: dict[str, float] | None

    def with_task_weights(self, task_weights: Mapping[str, float]) -> TaskWeighted:
        """The same criterion with these task weights."""
        ...
