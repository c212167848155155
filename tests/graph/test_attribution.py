"""Task attribution: a layer serves the tasks whose outputs it reaches, through adds, concatenations and outputs
derived from several others."""

from __future__ import annotations

import torch
from torch import nn

from taskprune.graph import module_task_attribution
from taskprune.tasks import Tasks


class Derived(nn.Module):
    """Task "sum" is a + b of two heads; task "a" is head a alone; the stem serves both."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 2, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.stem(x))
        a, b = self.a(features), self.b(features)
        return {"a": a, "sum": a + b}


def test_a_task_reaches_every_layer_its_output_was_computed_from():
    model, x = Derived().eval(), torch.randn(1, 3, 8, 8)
    attribution = module_task_attribution(model, x)
    assert attribution["stem"] == {"a", "sum"}
    assert attribution["a"] == {"a", "sum"}
    assert attribution["b"] == {"sum"}


def test_an_adapter_names_the_tasks():
    model, x = Derived().eval(), torch.randn(1, 3, 8, 8)
    tasks = Tasks(outputs={"left": lambda out: out["a"]})
    attribution = module_task_attribution(model, x, tasks)
    assert attribution["a"] == {"left"} and attribution["b"] == frozenset()
