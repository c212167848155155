"""Tasks: validation on construction, selecting by key by default, and errors that name the task."""

from __future__ import annotations

import pytest
import torch

import taskprune
from taskprune.tasks import Tasks, describe_output, task_loss


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
