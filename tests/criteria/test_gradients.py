"""Per-task gradient collection: zeros where a task does not reach, errors that name the task."""

from __future__ import annotations

import pytest
import torch

from taskprune.criteria.gradients import collect_gradients
from taskprune.graph import PruningGraph, module_task_attribution
from taskprune.tasks import Tasks


def test_task_not_reaching_a_group_gives_zero(two_head, two_head_tasks, batches):
    model, x = two_head
    graph = PruningGraph(model, x, two_head_tasks)
    stats = collect_gradients(model, graph.groups, two_head_tasks, batches, 2,
                              frozenset({"task_taylor", "task_gradients"}))
    assert stats.batches == 2
    index = next(g.index for g in graph.groups if g.root == "b.0")
    assert torch.count_nonzero(stats.task_taylor["a"][index]) == 0
    assert torch.count_nonzero(stats.task_taylor["b"][index]) > 0
    assert torch.count_nonzero(stats.task_gradients["a"]["b.0.weight"]) == 0
    assert all(p.grad is None for p in model.parameters()), "collection must not leave .grad behind"


def test_model_mode_is_restored(two_head, two_head_tasks, batches):
    model, x = two_head
    model.train()
    graph = PruningGraph(model, x, two_head_tasks)
    running = model.trunk[1].running_mean.clone()
    collect_gradients(model, graph.groups, two_head_tasks, batches, 3, frozenset({"summed_taylor"}))
    assert model.training
    assert torch.equal(model.trunk[1].running_mean, running), "BatchNorm statistics must not move"


def test_non_scalar_loss_is_a_type_error(two_head, batches):
    model, x = two_head
    tasks = Tasks(outputs={"a": lambda o: o["a"]}, losses={"a": lambda o, b: o})
    graph = PruningGraph(model, x, tasks)
    with pytest.raises(TypeError, match="task 'a' must return a scalar"):
        collect_gradients(model, graph.groups, tasks, batches, 1, frozenset({"summed_taylor"}))


def test_attribution_follows_derived_task_outputs(two_head):
    model, x = two_head
    tasks = Tasks(outputs={"a": lambda o: o["a"], "both": lambda o: o["a"].mean() + o["b"].mean()})
    attribution = module_task_attribution(model, x, tasks)
    assert attribution["a.0"] == {"a", "both"}
    assert attribution["b.0"] == {"both"}
    assert attribution["trunk.0"] == {"a", "both"}
    default = module_task_attribution(model, x)
    assert default["b.2"] == {"b"} and default["trunk.3"] == {"a", "b"}


def test_an_adapter_without_weight_sums_the_task_losses_with_weight_one(two_head, two_head_tasks, batches):
    """The `taylor` criterion's summed loss: an adapter with only the four required members gives what Tasks with
    equal weights gives, and a declared weight changes it."""

    class FourMembers:
        names = two_head_tasks.names
        task_output = staticmethod(two_head_tasks.task_output)
        loss = staticmethod(two_head_tasks.loss)
        model_inputs = staticmethod(two_head_tasks.model_inputs)

    model, x = two_head
    graph = PruningGraph(model, x, two_head_tasks)
    heavy = Tasks(outputs=dict(two_head_tasks.outputs), losses=dict(two_head_tasks.losses), weights={"a": 3.0})
    summed = {label: collect_gradients(model, graph.groups, adapter, batches, 2, frozenset({"summed_taylor"}))
              .summed_taylor for label, adapter in [("four", FourMembers()), ("tasks", two_head_tasks),
                                                     ("heavy", heavy)]}
    for four, tasks in zip(summed["four"], summed["tasks"], strict=True):
        torch.testing.assert_close(four, tasks)
    assert any(not torch.allclose(t, h) for t, h in zip(summed["tasks"], summed["heavy"], strict=True))
