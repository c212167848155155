"""Group L2 magnitude: the norm of everything a channel owns across its coupled layers."""

from __future__ import annotations

import torch

from .base import Criterion, ScoringContext
from .channels import channel_sums
from .registry import register_criterion

__all__ = ["Magnitude"]


@register_criterion("magnitude")
class Magnitude(Criterion):
    """sqrt(sum over the channel's parameter slices of theta^2). Needs no data."""

    name = "magnitude"
    needs: frozenset[str] = frozenset()
    comparable = False  # weight norms differ in scale from layer to layer

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        squares = {name: p * p for name, p in context.parameters().items()}
        return [s.sqrt() for s in channel_sums(context.groups, squares)]
