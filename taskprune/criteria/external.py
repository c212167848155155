"""torch-pruning importances used as taskprune criteria."""

from __future__ import annotations

from typing import Any

import torch

from .base import Criterion, ScoringContext, attributes

__all__ = ["TorchPruningImportance"]


class TorchPruningImportance(Criterion):
    """Wraps a `torch_pruning.importance.Importance`. It reads what it reads (for its Taylor variants, the `.grad`
    of a `loss.backward()` you ran yourself); taskprune only hands it each group."""

    needs: frozenset[str] = frozenset()
    comparable = False

    def __init__(self, importance: Any):
        self.importance = importance
        self.name = type(importance).__name__

    @staticmethod
    def accepts(obj: Any) -> bool:
        from ..graph import is_tp_importance

        return is_tp_importance(obj)

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        return [context.graph.tp_scores(self.importance, group.index) for group in context.groups]

    def settings(self) -> dict[str, Any]:
        """The wrapped importance's settings (its instance attributes: its norm, reduction, ...)."""
        return attributes(self.importance)
