"""Tasks: validation on construction, selecting by key by default, and errors that name the task."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

import taskprune
from taskprune.tasks import EqualWeights, MultiTaskAdapter, Tasks, describe_output, task_loss, with_weights


def square(out, batch):
    return out.pow(2).mean()


def test_outputs_default_to_selecting_by_key(two_head):
    model, x = two_head
    tasks = Tasks(losses={"a": square, "b": square})
    assert tasks.names == ("a", "b")
    output = model(x)
    assert tasks.task_output("b", output) is output["b"]
    result = taskprune.prune(model, x, ratio=0.3, importance="task_taylor", tasks=tasks, data=[x, x],
                             round_to=None, progress=False)
    assert abs(result.report.reached - 0.3) <= 0.01


def test_tasks_without_outputs_or_losses_is_refused():
    with pytest.raises(ValueError, match="needs outputs="):
        Tasks()


def test_unknown_names_are_listed():
    with pytest.raises(ValueError, match=r"names unknown task\(s\) \['lanes'\]; tasks are: det, lane"):
        Tasks(outputs={"det": lambda o: o[0], "lane": lambda o: o[1]}, losses={"lanes": square})


def test_a_selector_that_fails_names_the_task_and_the_output():
    tasks = Tasks(losses={"det": square, "lanes": square})
    output = {"det": torch.zeros(1), "lane": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"Tasks.outputs\['lanes'\] .*dict with keys det, lane.*KeyError"):
        tasks.task_output("lanes", output)
    positional = Tasks(outputs={"seg": lambda out: out[3]})
    with pytest.raises(ValueError, match=r"task 'seg'.*tuple of 2.*IndexError"):
        positional.task_output("seg", (torch.zeros(1), torch.zeros(1)))


def test_a_non_scalar_loss_is_refused_with_its_shape(two_head):
    model, x = two_head
    tasks = Tasks(losses={"a": lambda out, batch: out.pow(2), "b": square})
    with pytest.raises(TypeError, match=r"loss of task 'a' must return a scalar tensor, got shape \[1, 6, 16, 16\]"):
        task_loss(tasks, "a", model(x), x)
    with pytest.raises(TypeError, match=r"got shape \[1, 6, 16, 16\]"):
        taskprune.prune(model, x, ratio=0.3, importance="taylor", tasks=tasks, data=[x], round_to=None,
                        progress=False)
    with pytest.raises(TypeError, match=r"got shape \[1, 6, 16, 16\]"):
        taskprune.finetune(model, tasks, [x], epochs=1, progress=False)


def test_describe_output():
    assert describe_output(torch.zeros(1, 2)) == "Tensor [1, 2]"
    assert describe_output({"a": 1, "b": 2}) == "dict with keys a, b"
    assert describe_output([1, 2, 3]) == "list of 3"


class FourMembers:
    """An adapter written with the four required members only: no `weight`."""

    names = ("a", "b")

    def task_output(self, name, model_output):
        return model_output[name]

    def loss(self, name, task_output, batch):
        return task_output.pow(2).mean() if name == "a" else (task_output - 1).pow(2).mean()

    def model_inputs(self, batch):
        return batch


def test_the_adapter_protocol_declares_weight_with_its_default():
    class Subclassed(FourMembers, MultiTaskAdapter):
        pass

    assert Subclassed().weight("a") == 1.0 and isinstance(Subclassed(), MultiTaskAdapter)
    tasks = Tasks(outputs={"a": lambda o: o}, weights={"a": 2.0})
    assert with_weights(tasks) is tasks and tasks.weight("a") == 2.0
    assert not isinstance(FourMembers(), MultiTaskAdapter)  # the protocol has five members; with_weights adds one
    view = with_weights(FourMembers())
    assert isinstance(view, EqualWeights) and isinstance(view, MultiTaskAdapter)
    assert view.names == ("a", "b") and view.weight("a") == view.weight("b") == 1.0
    out = {"a": torch.ones(2), "b": torch.zeros(2)}
    assert torch.equal(view.task_output("a", out), out["a"]) and float(view.loss("b", out["b"], None)) == 1.0


def test_an_adapter_without_weight_trains_like_equal_weights(two_head, batches):
    """`finetune`'s step weighs the losses of an adapter without `weight` 1.0 each, as Tasks without weights."""
    from taskprune.train.step import TrainStep

    model, _ = two_head
    losses = {name: functools.partial(FourMembers().loss, name) for name in FourMembers.names}
    trained = {}
    for label, adapter in [("four", FourMembers()), ("equal", Tasks(losses=losses)),
                           ("heavy_a", Tasks(losses=losses, weights={"a": 3.0}))]:
        student = copy.deepcopy(model)
        step = TrainStep(student, adapter, optimizer="sgd", lr=0.1, grad_clip=None)
        step(batches[0])
        trained[label] = torch.cat([p.detach().flatten() for p in student.parameters()])
    assert torch.equal(trained["four"], trained["equal"])
    assert not torch.allclose(trained["four"], trained["heavy_a"])
