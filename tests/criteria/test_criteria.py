"""Criteria: registry, and each score against a reference computed another way."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp

import taskprune
from taskprune.criteria import (
    ScoringContext,
    get_criterion,
    list_criteria,
    register_criterion,
    unregister_criterion,
)
from taskprune.criteria.conflict import conflict_scores
from taskprune.criteria.gradients import GradientStats, collect_gradients
from taskprune.graph import PruningGraph
from taskprune.groups import ChannelGroup, ParamSlice


def _graph(model, x, tasks):
    return PruningGraph(model, x, tasks)


def test_registry_lists_and_rejects():
    assert list_criteria() == ["conflict_taylor", "magnitude", "random", "task_taylor", "taylor"]
    assert list_criteria("*taylor") == ["conflict_taylor", "task_taylor", "taylor"]
    with pytest.raises(ValueError, match="Unknown criterion 'tylor'; available: conflict_taylor, magnitude"):
        get_criterion("tylor")
    with pytest.raises(TypeError, match="importance must be"):
        get_criterion(3.5)
    with pytest.raises(ValueError, match="lam must be in"):
        get_criterion("conflict_taylor", lam=2.0)


def test_register_custom_criterion(two_head):
    @register_criterion("test_first_channels")
    class FirstChannels:
        name = "test_first_channels"
        needs: frozenset[str] = frozenset()

        def score(self, context: ScoringContext) -> list[torch.Tensor]:
            return [-torch.arange(g.channels, dtype=torch.float32) for g in context.groups]

    try:
        model, x = two_head
        result = taskprune.prune(model, x, ratio=0.3, importance="test_first_channels", progress=False)
        # the highest indices score lowest, so the lowest indices survive
        kept = result.channel_map["trunk.3"]
        assert kept == list(range(len(kept)))
    finally:
        unregister_criterion("test_first_channels")  # the registry is global: leave it as other tests expect
    assert "test_first_channels" not in list_criteria()
    with pytest.raises(ValueError, match="Unknown criterion 'test_first_channels'"):
        unregister_criterion("test_first_channels")


def test_magnitude_is_group_l2(two_head, two_head_tasks):
    model, x = two_head
    graph = _graph(model, x, two_head_tasks)
    scores = get_criterion("magnitude").score(ScoringContext(model=model, groups=graph.groups))
    group = next(g for g in graph.groups if g.root == "trunk.3")
    conv, bn, a0, b0 = model.trunk[3], model.trunk[4], model.a[0], model.b[0]
    reference = (conv.weight.flatten(1).pow(2).sum(1) + conv.bias.pow(2) + bn.weight.pow(2) + bn.bias.pow(2)
                 + a0.weight.transpose(0, 1).flatten(1).pow(2).sum(1)
                 + b0.weight.transpose(0, 1).flatten(1).pow(2).sum(1)).sqrt()
    torch.testing.assert_close(scores[group.index], reference.detach())


def test_taylor_matches_hand_computed_reference_with_batchnorm(two_head, two_head_tasks, batches):
    model, x = two_head
    graph = _graph(model, x, two_head_tasks)
    stats = collect_gradients(model, graph.groups, two_head_tasks, batches, 3, frozenset({"summed_taylor"}))
    scores = get_criterion("taylor").score(ScoringContext(model=model, groups=graph.groups, gradients=stats))
    group = next(g for g in graph.groups if g.root == "trunk.3")
    conv, bn, a0, b0 = model.trunk[3], model.trunk[4], model.a[0], model.b[0]
    reference = torch.zeros(32)
    for batch in batches:
        model.zero_grad()
        out = model(batch)
        (out["a"].pow(2).mean() + (out["b"] - 1).pow(2).mean()).backward()
        term = ((conv.weight * conv.weight.grad).flatten(1).sum(1) + conv.bias * conv.bias.grad
                + bn.weight * bn.weight.grad + bn.bias * bn.bias.grad
                + (a0.weight * a0.weight.grad).transpose(0, 1).flatten(1).sum(1)
                + (b0.weight * b0.weight.grad).transpose(0, 1).flatten(1).sum(1))
        reference += term.detach() ** 2
    torch.testing.assert_close(scores[group.index], reference / 3, rtol=1e-4, atol=1e-12)
    model.zero_grad()


def test_task_taylor_normalises_per_task_and_takes_max(two_head, two_head_tasks, batches):
    model, x = two_head
    graph = _graph(model, x, two_head_tasks)
    stats = collect_gradients(model, graph.groups, two_head_tasks, batches, 3, frozenset({"task_taylor"}))
    scores = get_criterion("task_taylor").score(ScoringContext(model=model, groups=graph.groups, gradients=stats))
    by_root = {g.root: g.index for g in graph.groups}
    per_task = {t: [acc / 3 for acc in stats.task_taylor[t]] for t in ("a", "b")}
    means = {t: torch.cat(v).mean() for t, v in per_task.items()}
    # b's loss does not reach a.0: zero there, and a.0's score is task a's alone
    assert torch.count_nonzero(per_task["b"][by_root["a.0"]]) == 0
    torch.testing.assert_close(scores[by_root["a.0"]], per_task["a"][by_root["a.0"]] / means["a"])
    shared = by_root["trunk.3"]
    expected = torch.maximum(per_task["a"][shared] / means["a"], per_task["b"][shared] / means["b"])
    torch.testing.assert_close(scores[shared], expected)


def _toy_group(tasks=frozenset({"a", "b"})) -> ChannelGroup:
    piece = ParamSlice("w", 0, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    return ChannelGroup(index=0, layer="w", channels=3, out_layers=("w",), in_layers=(), slices=(piece,), tasks=tasks)


def test_conflict_near_one_when_tasks_oppose_and_zero_when_they_agree():
    direction = torch.tensor([1.0, -2.0, 3.0, 0.5])
    grads_a = torch.stack([direction, direction, direction])
    grads_b = torch.stack([-direction, direction, -0.2 * direction + 0.01])
    stats = GradientStats(tasks=("a", "b"), batches=2,
                          task_gradients={"a": {"w": 2 * grads_a}, "b": {"w": 2 * grads_b}})
    conflict = conflict_scores(stats, [_toy_group()])[0]
    assert conflict[0] == pytest.approx(1.0, abs=1e-6)
    assert conflict[1] == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < conflict[2] <= 1.0
    single = conflict_scores(stats, [_toy_group(frozenset({"a"}))])[0]
    assert torch.count_nonzero(single) == 0


def _reference_conflict(rows: dict[str, list[list[float]]], tasks: list[str]) -> list[float]:
    """k per channel by hand: plain Python floats, every pair of `tasks`, mean of max(0, -cos)."""
    import itertools
    import math

    channels = len(next(iter(rows.values())))
    result = []
    for c in range(channels):
        values = []
        for a, b in itertools.combinations(tasks, 2):
            u, v = rows[a][c], rows[b][c]
            dot = sum(x * y for x, y in zip(u, v, strict=True))
            norm = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
            values.append(max(0.0, -dot / norm) if norm > 0 else 0.0)
        result.append(sum(values) / len(values))
    return result


@pytest.mark.parametrize("names", [("a", "b", "c"), ("a", "b", "c", "d")])
def test_conflict_averages_over_every_task_pair(names):
    generator = torch.Generator().manual_seed(len(names))
    rows = {t: torch.randn(3, 4, generator=generator, dtype=torch.float64) for t in names}
    stats = GradientStats(tasks=names, batches=1, task_gradients={t: {"w": g.float()} for t, g in rows.items()})
    conflict = conflict_scores(stats, [_toy_group(frozenset(names))])[0]
    expected = _reference_conflict({t: g.float().double().tolist() for t, g in rows.items()}, list(names))
    torch.testing.assert_close(conflict, torch.tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6)
    # a group that reaches only two of the tasks averages over that one pair
    pair = conflict_scores(stats, [_toy_group(frozenset(names[:2]))])[0]
    expected_pair = _reference_conflict({t: g.float().double().tolist() for t, g in rows.items()}, list(names[:2]))
    torch.testing.assert_close(pair, torch.tensor(expected_pair, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_conflict_is_scale_free_down_to_tiny_gradients():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[-0.0995037, 0.9950372], [-1.0, -1.0], [1.0, 0.0]])  # cos -0.0995, -1, and a zero gradient
    for scale in (1.0, 1e-12):
        stats = GradientStats(tasks=("a", "b"), batches=1,
                              task_gradients={"a": {"w": a * scale}, "b": {"w": b * scale}})
        group = ChannelGroup(index=0, layer="w", channels=3, out_layers=("w",), in_layers=(),
                             slices=(ParamSlice("w", 0, torch.arange(3), torch.arange(3)),), tasks=frozenset("ab"))
        conflict = conflict_scores(stats, [group])[0]
        torch.testing.assert_close(conflict, torch.tensor([0.0995037, 1.0, 0.0]), rtol=1e-5, atol=1e-6)


def test_sign_purity_against_a_hand_computed_reference():
    a = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, -1.0], [3.0, 4.0], [-1.0, 0.0]])
    stats = GradientStats(tasks=("a", "b"), batches=2, task_gradients={"a": {"w": 2 * a}, "b": {"w": 2 * b}})
    group = ChannelGroup(index=0, layer="w", channels=3, out_layers=("w",), in_layers=(),
                         slices=(ParamSlice("w", 0, torch.arange(3), torch.arange(3)),), tasks=frozenset("ab"))
    # channel 0: purities 1 and 0; channel 1: 1 and 1; channel 2: 0, and 1 where both gradients are zero
    torch.testing.assert_close(conflict_scores(stats, [group], "sign_purity")[0], torch.tensor([0.5, 0.0, 0.5]))


def test_conflict_per_batch_is_the_mean_of_each_batchs_conflict(two_head, two_head_tasks, batches):
    model, x = two_head
    graph = _graph(model, x, two_head_tasks)
    needs = frozenset({"task_taylor", "task_gradients", "batch_conflict"})
    stats = collect_gradients(model, graph.groups, two_head_tasks, batches, 3, needs)
    per_batch = [collect_gradients(model, graph.groups, two_head_tasks, [b], 1, needs) for b in batches]
    expected = [sum(conflict_scores(s, graph.groups, "cosine")[i] for s in per_batch) / 3
                for i in range(len(graph.groups))]
    got = conflict_scores(stats, graph.groups, "batch_cosine")
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    shared = next(g.index for g in graph.groups if g.root == "trunk.3")
    assert got[shared].max() > 0  # the two tasks' losses do pull against each other somewhere
    with pytest.raises(ValueError, match="Unknown conflict measure 'angle'; available: cosine, batch_cosine"):
        get_criterion("conflict_taylor", measure="angle")


def test_conflict_taylor_penalises_conflicting_channels():
    direction = torch.tensor([1.0, 1.0])
    stats = GradientStats(tasks=("a", "b"), batches=1,
                          task_taylor={"a": [torch.ones(3)], "b": [torch.ones(3)]},
                          task_gradients={"a": {"w": torch.stack([direction] * 3)},
                                          "b": {"w": torch.stack([-direction, direction, direction])}})
    context = ScoringContext(model=torch.nn.Identity(), groups=[_toy_group()], gradients=stats)
    scores = get_criterion("conflict_taylor", lam=0.5).score(context)[0]
    torch.testing.assert_close(scores, torch.tensor([0.5, 1.0, 1.0]))


def test_torch_pruning_importance_is_accepted(two_head):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.3, importance=tp.importance.GroupMagnitudeImportance(),
                             progress=False)
    assert result.report.criterion == "GroupMagnitudeImportance"
    assert abs(result.report.reached - 0.3) <= 0.01


def test_conflict_across_groups_penalises_after_each_groups_normalisation():
    direction = torch.tensor([1.0, 1.0])
    stats = GradientStats(tasks=("a", "b"), batches=1,
                          task_taylor={"a": [torch.tensor([1.0, 2.0, 3.0])], "b": [torch.tensor([1.0, 2.0, 3.0])]},
                          task_gradients={"a": {"w": torch.stack([direction] * 3)},
                                          "b": {"w": torch.stack([-direction, direction, direction])}})
    context = ScoringContext(model=torch.nn.Identity(), groups=[_toy_group()], gradients=stats)
    default = get_criterion("conflict_taylor", lam=0.5)
    across = get_criterion("conflict_taylor", lam=0.5, across_groups=True)
    assert not getattr(default, "normalised", False) and across.normalised
    tci = torch.tensor([1.0, 2.0, 3.0]) / 2.0  # each task divided by its mean over all channels, then max
    torch.testing.assert_close(default.score(context)[0], tci * torch.tensor([0.5, 1.0, 1.0]))
    torch.testing.assert_close(across.score(context)[0], tci / tci.mean() * torch.tensor([0.5, 1.0, 1.0]))


def test_conflict_across_groups_without_penalty_plans_like_task_taylor(two_head, two_head_tasks, batches):
    model, x = two_head
    plans = [taskprune.prune(model, x, ratio=0.4, importance=importance, tasks=two_head_tasks, data=batches,
                             progress=False).channel_map
             for importance in ("task_taylor", get_criterion("conflict_taylor", lam=0.0, across_groups=True))]
    assert plans[0] == plans[1]
    penalised = taskprune.prune(model, x, ratio=0.4, importance=get_criterion("conflict_taylor", lam=1.0,
                                across_groups=True), tasks=two_head_tasks, data=batches, progress=False)
    assert abs(penalised.report.reached - 0.4) <= 0.01
