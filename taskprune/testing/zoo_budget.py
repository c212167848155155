"""A two-task ViT whose budget is hard to hit: most of its parameters hang off one wide group.

The embedding (128 channels) is coupled to every block's norms, attention and MLP, to the class token and to a
position embedding of 257 tokens: in steps of 16 or 32 channels that one group moves the parameter count by 10%
or more per step, so a budget lands within a point only if the planner trades its steps against the MLPs'.
The class token and the position embedding are bare ``nn.Parameter`` tensors, pruned with the embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_test_model
from .zoo_modern import _ViTTrunk

__all__ = ["TwoTaskViT", "two_task_vit"]


class TwoTaskViT(_ViTTrunk):
    """A ViT (embedding 128, four pre-norm blocks, patches of 4 on 64x64) with two task heads: a class from the
    class token and a two-class map from the patch tokens."""

    def __init__(self, image_size: int = 64, patch: int = 4, dim: int = 128, depth: int = 4, num_heads: int = 2,
                 classes: int = 10, seg_classes: int = 2) -> None:
        super().__init__(image_size, patch, dim, depth, num_heads)
        self.head = nn.Linear(dim, classes)
        self.seg_head = nn.Linear(dim, seg_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(x)
        return {"cls": self.head(features[:, 0]), "seg": self.seg_head(features[:, 1:])}


@register_test_model("zoo")
def two_task_vit() -> tuple[nn.Module, torch.Tensor]:
    """:class:`TwoTaskViT` (class + patch map) on ``[1, 3, 64, 64]``."""
    return TwoTaskViT(), torch.randn(1, 3, 64, 64)
