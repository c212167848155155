"""A model called with two inputs (positional or keyword) that returns a dict, and a seeded builder: shared by the
saving and ONNX export tests."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class TwoInputs(nn.Module):
    """Positional (image, guide) or keyword inputs; returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.guide = nn.Conv2d(1, 16, 1)
        self.seg = nn.Conv2d(16, 2, 1)
        self.det = nn.Conv2d(16, 6, 1)

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.relu(self.image(image) + self.guide(guide))
        return {"seg": self.seg(features), "det": self.det(features)}


def build(factory: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """`factory()` with weights drawn from `seed`, in eval mode."""
    torch.manual_seed(seed)
    return factory().eval()
