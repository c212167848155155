"""The cost model is exact, and plans respect caps."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from taskprune.budget import CostModel, plan_pruning
from taskprune.graph import PruningGraph, count_params
from taskprune.tasks import Tasks
from taskprune.testing import ZOO_MODELS


def _params_cost(model: nn.Module, graph: PruningGraph) -> CostModel:
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), count_params(model), "params")


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


@pytest.mark.parametrize("name", ["vit_like", "convnext_like", "two_task_vit"])
def test_cost_model_counts_bare_parameters_exactly(name):
    """Class tokens, position embeddings and layer scales are pruned with their group: the cost model must see
    them shrink (it did not, and vit_like at ratio=0.6 removed 62.7% of its parameters)."""
    model, x = ZOO_MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch-pruning announces the unwrapped parameters
        graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    bare = {n for n, p in model.named_parameters() if "." not in n or n.endswith("gamma")}
    owning = [g for g in graph.groups if {piece.param for piece in g.slices} & bare]
    assert owning, "no group owns a bare parameter: nothing is tested"
    cost = _params_cost(model, graph)
    generator = torch.Generator().manual_seed(0)
    plan = {}
    for group in owning:
        plan[group.index] = torch.randperm(group.channels, generator=generator)[:group.channels // 3].tolist()
        cost.removal(group.index, torch.tensor(plan[group.index], dtype=torch.long), commit=True)
    graph.apply(plan)
    assert cost.cost == count_params(model)
