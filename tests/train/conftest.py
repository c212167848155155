"""What the fine-tune tests share: a small segmentation net with one BatchNorm, and its task."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskprune.tasks import Tasks


class Seg(nn.Module):
    """conv -> BatchNorm -> ReLU -> 1x1 head: one mask logit per pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))))


@pytest.fixture
def seg_tasks() -> Tasks:
    """One task, "seg": the whole output against the batch's "mask" (binary cross-entropy); the inputs are
    the batch's "image"."""
    return Tasks(outputs={"seg": lambda out: out}, inputs=lambda batch: batch["image"],
                 losses={"seg": lambda out, b: F.binary_cross_entropy_with_logits(out, b["mask"])})


@pytest.fixture
def seg_net() -> Callable[[], nn.Module]:
    """Builds a fresh `Seg` (from the caller's random state)."""
    return Seg
