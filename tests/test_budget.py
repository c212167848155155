"""The cost model is exact, and plans respect caps."""

from __future__ import annotations

import pytest
import torch

from taskprune.budget import CostModel, plan_pruning
from taskprune.graph import PruningGraph, count_params
from taskprune.tasks import Tasks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_model_predicts_params_exactly(two_head, seed):
    model, x = two_head
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    total = count_params(model)
    cost = CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), total, "params")
    generator = torch.Generator().manual_seed(seed)
    plan = {}
    for group in graph.groups:
        if group.blocked:
            continue
        count = int(torch.randint(0, group.channels - 1, (1,), generator=generator))
        plan[group.index] = torch.randperm(group.channels, generator=generator)[:count].tolist()
        cost.removal(group.index, torch.tensor(plan[group.index], dtype=torch.long), commit=True)
    graph.apply(plan)
    assert cost.cost == count_params(model)


def test_plan_respects_caps_and_ratio(two_head):
    model, x = two_head
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    cost = CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), count_params(model), "params")
    scores = [torch.arange(g.channels, dtype=torch.float32) + 1 for g in graph.groups]
    plan = plan_pruning(graph.groups, scores, cost, 0.3, max_layer_ratio=0.6, round_to=2)
    assert abs(cost.reduction() - 0.3) <= 0.01
    for group in graph.groups:
        removed = plan.get(group.index, [])
        kept = group.channels - len(removed)
        assert len(removed) <= 0.6 * group.channels
        if removed:
            assert kept % 2 == 0
            # least important first: the removed ones are the lowest-scored indices
            assert sorted(removed) == list(range(len(removed)))
