"""The two-task model most tests know by heart (`TwoHead`, built by `two_head_model`), in any widths, and the
batches a student learns from to imitate it (`imitation_batches`)."""

from __future__ import annotations

import torch
from torch import nn


class TwoHead(nn.Module):
    """trunk.0/trunk.3 serve both tasks; a.0 only task "a"; b.0 only task "b"; a.2 and b.2 are output layers.

    `widths` are the channels of trunk.0, trunk.3, a.0 and b.0; `outputs` those of a.2 and b.2.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 16, 8), outputs: tuple[int, int] = (6, 2)) -> None:
        super().__init__()
        first, trunk, a, b = widths
        self.trunk = nn.Sequential(nn.Conv2d(3, first, 3, padding=1), nn.BatchNorm2d(first), nn.ReLU(),
                                   nn.Conv2d(first, trunk, 3, padding=1), nn.BatchNorm2d(trunk), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(trunk, a, 3, padding=1), nn.ReLU(), nn.Conv2d(a, outputs[0], 1))
        self.b = nn.Sequential(nn.Conv2d(trunk, b, 3, padding=1), nn.ReLU(), nn.Conv2d(b, outputs[1], 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {"a": self.a(features), "b": self.b(features)}


def two_head_model() -> TwoHead:
    """`TwoHead` in eval mode from seed 0, its BatchNorm scales and running variances spread over [0.5, 1.5]."""
    torch.manual_seed(0)
    model = TwoHead().eval()
    for bn in (model.trunk[1], model.trunk[4]):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.running_var.data.uniform_(0.5, 1.5)
    return model


def imitation_batches(teacher: nn.Module, count: int) -> list[dict[str, torch.Tensor]]:
    """`count` batches of four 16x16 images (seed 3), each with the teacher's outputs "a" and "b" as its targets."""
    generator = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(count):
        image = torch.randn(4, 3, 16, 16, generator=generator)
        with torch.no_grad():
            out = teacher(image)
        batches.append({"image": image, "a": out["a"], "b": out["b"]})
    return batches
