"""task_weights on task_taylor and conflict_taylor: a task-balanced budget, checked against a reference."""

from __future__ import annotations

import pytest
import torch

import taskprune
from taskprune.criteria import ScoringContext, get_criterion
from taskprune.criteria.gradients import GradientStats
from taskprune.groups import ChannelGroup, ParamSlice


def _group(index: int, tasks: frozenset[str]) -> ChannelGroup:
    piece = ParamSlice(f"w{index}", 0, torch.tensor([0, 1]), torch.tensor([0, 1]))
    return ChannelGroup(index=index, layer=f"w{index}", channels=2, out_layers=(f"w{index}",), in_layers=(),
                        slices=(piece,), tasks=tasks)


def _context() -> ScoringContext:
    """Three groups: one serving "a", one serving "b", one shared; each task's scores have mean 1."""
    groups = [_group(0, frozenset({"a"})), _group(1, frozenset({"b"})), _group(2, frozenset({"a", "b"}))]
    a = [torch.tensor([1.0, 3.0]), torch.zeros(2), torch.tensor([0.5, 1.5])]
    b = [torch.zeros(2), torch.tensor([2.0, 4.0]), torch.tensor([0.0, 0.0])]
    ones = {f"w{i}": torch.ones(2, 1) for i in range(3)}
    opposed = dict(ones, w2=torch.tensor([[-1.0], [1.0]]))  # the shared group's first channel: the tasks conflict
    stats = GradientStats(tasks=("a", "b"), batches=1, task_taylor={"a": a, "b": b},
                          task_gradients={"a": ones, "b": opposed})
    return ScoringContext(model=torch.nn.Identity(), groups=groups, gradients=stats)


def test_each_group_is_divided_by_its_mean_and_weighted_by_its_heaviest_task():
    context = _context()
    plain = get_criterion("task_taylor").score(context)
    weighted = get_criterion("task_taylor", task_weights={"a": 3.0}).score(context)
    for index, weight in ((0, 3.0), (1, 1.0), (2, 3.0)):  # group 2 serves a and b: the larger weight
        torch.testing.assert_close(weighted[index], plain[index] / plain[index].abs().mean() * weight)
    assert get_criterion("task_taylor", task_weights={"a": 3.0}).normalised
    assert not getattr(get_criterion("task_taylor"), "normalised", False)


def test_conflict_taylor_weights_its_penalised_scores():
    context = _context()
    penalised = get_criterion("conflict_taylor", lam=0.5).score(context)
    assert penalised[2][0] < get_criterion("task_taylor").score(context)[2][0]  # the conflict is penalised
    weighted = get_criterion("conflict_taylor", lam=0.5, task_weights={"b": 2.0}).score(context)
    for index, weight in ((0, 1.0), (1, 2.0), (2, 2.0)):
        torch.testing.assert_close(weighted[index], penalised[index] / penalised[index].abs().mean() * weight)
    # across_groups normalised each group before the penalty: the weights multiply, nothing is divided again
    across = get_criterion("conflict_taylor", lam=0.5, across_groups=True).score(context)
    both = get_criterion("conflict_taylor", lam=0.5, across_groups=True, task_weights={"b": 2.0}).score(context)
    for index, weight in ((0, 1.0), (1, 2.0), (2, 2.0)):
        torch.testing.assert_close(both[index], across[index] * weight)


def test_weights_of_one_plan_as_the_default(two_head, two_head_tasks, batches):
    model, x = two_head
    plans = [taskprune.prune(model, x, ratio=0.4, importance=importance, tasks=two_head_tasks, data=batches,
                             progress=False).channel_map
             for importance in ("task_taylor", get_criterion("task_taylor", task_weights={"a": 1.0, "b": 1.0}))]
    assert plans[0] == plans[1]


def test_a_heavier_task_keeps_more_of_its_own_channels(two_head, two_head_tasks, batches):
    model, x = two_head

    def kept(importance):
        result = taskprune.prune(model, x, ratio=0.3, importance=importance, tasks=two_head_tasks, data=batches,
                                 round_to=None, progress=False)  # channel by channel: the 8-channel b.0 may shrink
        assert abs(result.report.reached - 0.3) <= 0.01  # the budget is met either way
        return {name: len(result.channel_map.get(name, range(layer.out_channels)))
                for name, layer in (("a.0", model.a[0]), ("b.0", model.b[0]))}

    plain, favour_a, favour_b = (kept(get_criterion("task_taylor", task_weights=w))
                                 for w in (None, {"a": 8.0}, {"b": 8.0}))
    assert favour_a["a.0"] > favour_b["a.0"]
    assert favour_b["b.0"] > favour_a["b.0"]
    assert favour_a["a.0"] >= plain["a.0"] and favour_b["b.0"] >= plain["b.0"]


def test_bad_task_weights_are_refused_by_name(two_head, two_head_tasks, batches):
    for bad in ({"a": 0.0}, {"a": -1.0}, {"a": float("nan")}, {"a": True}, ["a"]):
        with pytest.raises(ValueError, match="task_weights must map task names to finite numbers > 0"):
            get_criterion("conflict_taylor", task_weights=bad)
    model, x = two_head
    criterion = get_criterion("task_taylor", task_weights={"lane": 2.0})
    with pytest.raises(ValueError, match=r"task_weights names task\(s\) \['lane'\].*tasks: a, b"):
        taskprune.prune(model, x, ratio=0.3, importance=criterion, tasks=two_head_tasks, data=batches,
                        progress=False)
