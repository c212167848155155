"""ModelProfile: counted once, it agrees with torch-pruning's op counter and with hand-computed MACs, and the exact
cost model built from it predicts a pruned model's MACs and parameters."""

from __future__ import annotations

import torch
from torch import nn

from taskprune.budget import CostModel
from taskprune.graph import PruningGraph, count_macs, count_params, profile_model
from taskprune.tasks import Tasks


def test_profile_counts_params_and_macs_by_hand(two_head):
    model, x = two_head
    profile = profile_model(model, x)
    assert profile.params == count_params(model) == sum(p.numel() for p in model.parameters())
    assert profile.macs == count_macs(model, x)
    # a 3x3 conv at 16x16: out_channels * in_channels * 9 per position (its bias adds out_channels per position)
    assert profile.layer_macs["trunk.3"] == 16 * 16 * (32 * 16 * 9 + 32)
    assert profile.own_params["trunk.3"] == 32 * 16 * 9 + 32
    assert profile.shapes["trunk.3.weight"] == (32, 16, 3, 3)
    # the ReLU after trunk.4 shrinks with trunk.4's channels: its MACs are charged to that BatchNorm's weight
    assert profile.activation_macs["trunk.4.weight"] > 0


def test_cost_model_of_a_profile_predicts_the_pruned_model(two_head):
    model, x = two_head
    profile = profile_model(model, x)
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    params, macs = CostModel.of(graph.groups, profile, "params"), CostModel.of(graph.groups, profile, "macs")
    plan = {g.index: list(range(g.channels // 4)) for g in graph.groups if g.prunable and g.channels > 3}
    for index, channels in plan.items():
        for cost in (params, macs):
            cost.removal(index, torch.tensor(channels), commit=True)
    graph.apply(plan)
    assert params.cost == count_params(model)
    assert abs(macs.cost - count_macs(model, x)) / count_macs(model, x) < 0.01


def test_profile_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile_model(model, torch.randn(2, 3, 8, 8))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
