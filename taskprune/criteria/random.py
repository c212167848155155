"""Random scores: the floor every other criterion must beat."""

from __future__ import annotations

import torch

from .base import Criterion, ScoringContext
from .registry import register_criterion

__all__ = ["Random"]


@register_criterion("random")
class Random(Criterion):
    """Uniform random scores from a generator seeded with `context.seed`."""

    name = "random"
    needs: frozenset[str] = frozenset()
    comparable = False

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(context.seed)
        return [torch.rand(group.channels, generator=generator) for group in context.groups]
