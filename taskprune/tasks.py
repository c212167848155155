"""Tasks: which part of a model's output belongs to which task, and how each task's loss is computed.

A multi-task model returns one structure (tuple, dict, namedtuple, dataclass, nested). `Tasks` names the tasks,
says how to pick each task's output from that structure, how to score it against a batch, what the model takes
from a batch and how the task losses are weighed. Anything with the same members (the `MultiTaskAdapter` protocol;
`weight` may be left out) works in its place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["EqualWeights", "MultiTaskAdapter", "Tasks", "call_model", "default_inputs", "describe_output",
           "flatten_outputs", "output_leaves", "outputs_by_task", "task_loss", "with_weights"]

OutputFn = Callable[[Any], Any]
LossFn = Callable[[Any, Any], torch.Tensor]


@runtime_checkable
class MultiTaskAdapter(Protocol):
    """What `prune`, the gradient collection and `finetune` need to know about a multi-task model.

    `names`, `task_output`, `loss` and `model_inputs` are required. `weight` is declared with its default (every
    task weighs 1.0): a class that subclasses `MultiTaskAdapter` inherits it, and an object that has only the four
    required members is weighed that way too (`with_weights`).
    """

    @property
    def names(self) -> tuple[str, ...]: ...

    def task_output(self, name: str, model_output: Any) -> Any: ...

    def loss(self, name: str, task_output: Any, batch: Any) -> torch.Tensor: ...

    def model_inputs(self, batch: Any) -> Any: ...

    def weight(self, name: str) -> float:
        """Task `name`'s weight where the task losses are summed (the `taylor` criterion, fine-tuning)."""
        return 1.0


class EqualWeights:
    """An adapter with only the four required members, every task weighed 1.0 (`MultiTaskAdapter.weight`'s default).

    Attributes:
        adapter: the adapter given; its four members answer as they are.
    """

    def __init__(self, adapter: Any):
        self.adapter = adapter

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.adapter.names)

    def task_output(self, name: str, model_output: Any) -> Any:
        return self.adapter.task_output(name, model_output)

    def loss(self, name: str, task_output: Any, batch: Any) -> torch.Tensor:
        return self.adapter.loss(name, task_output, batch)

    def model_inputs(self, batch: Any) -> Any:
        return self.adapter.model_inputs(batch)

    def weight(self, name: str) -> float:
        return 1.0


def with_weights(adapter: Any) -> MultiTaskAdapter:
    """`adapter` itself when it has every member of `MultiTaskAdapter`, else an `EqualWeights` view of it."""
    return adapter if isinstance(adapter, MultiTaskAdapter) else EqualWeights(adapter)


def default_inputs(batch: Any) -> Any:
    """What the model takes from a batch when `Tasks.inputs` is not given.

    A tensor is the input itself; a tuple or list gives its first element; a dict its "image" or "input" entry.
    """
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    if isinstance(batch, Mapping):
        for key in ("image", "images", "input", "inputs"):
            if key in batch:
                return batch[key]
    raise TypeError(
        f"cannot tell the model input from a batch of type {type(batch).__name__}; "
        "pass Tasks(inputs=lambda batch: ...) (defaults understand a tensor, a tuple/list whose first item is the "
        "input, or a dict with an 'image' or 'input' key)"
    )


@dataclass(frozen=True)
class Tasks:
    """The tasks of a multi-task model.

    Args:
        outputs: task name -> function picking that task's output from the model's output. May be left out
            when the model returns a dict whose keys are the task names: each task of `losses` then picks
            `output[name]`.
        losses: task name -> `loss(task_output, batch) -> scalar tensor`. Needed by gradient criteria and
            fine-tuning; may be empty for data-free pruning.
        inputs: what `model(...)` takes from a batch (a tensor, a tuple of positional args or a dict of kwargs).
        weights: task name -> loss weight (default 1.0 each).

    Example:
        >>> tasks = Tasks(outputs={"det": lambda out: out[0], "seg": lambda out: out[1]},
        ...               losses={"det": det_loss, "seg": seg_loss}, inputs=lambda b: b["image"])
        >>> Tasks(losses={"det": det_loss, "seg": seg_loss})   # the model returns {"det": ..., "seg": ...}
    """

    outputs: Mapping[str, OutputFn] = field(default_factory=dict)
    losses: Mapping[str, LossFn] = field(default_factory=dict)
    inputs: Callable[[Any], Any] = default_inputs
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.outputs, Mapping) and not self.outputs and isinstance(self.losses, Mapping) \
                and self.losses:
            object.__setattr__(self, "outputs", {name: _getter((name,)) for name in self.losses})
        if not isinstance(self.outputs, Mapping) or not self.outputs:
            raise ValueError("Tasks needs outputs= (task name -> output function), or losses= alone when the model "
                             "returns a dict keyed by the task names")
        for name, fn in self.outputs.items():
            if not isinstance(name, str) or not callable(fn):
                raise TypeError(f"Tasks.outputs[{name!r}] must map a str name to a callable")
        for kind, mapping in (("losses", self.losses), ("weights", self.weights)):
            unknown = sorted(set(mapping) - set(self.outputs))
            if unknown:
                raise ValueError(
                    f"Tasks.{kind} names unknown task(s) {unknown}; tasks are: {', '.join(self.outputs)}"
                )
        for name, loss in self.losses.items():
            if not callable(loss):
                raise TypeError(f"Tasks.losses[{name!r}] must be callable loss(task_output, batch) -> tensor")
        if not callable(self.inputs):
            raise TypeError("Tasks.inputs must be callable: batch -> model inputs")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.outputs)

    def task_output(self, name: str, model_output: Any) -> Any:
        if name not in self.outputs:
            raise ValueError(f"unknown task {name!r}; tasks are: {', '.join(self.outputs)}")
        try:
            return self.outputs[name](model_output)
        except (KeyError, IndexError, AttributeError, TypeError) as error:
            raise ValueError(f"Tasks.outputs[{name!r}] cannot pick the output of task {name!r} from the model output "
                             f"({describe_output(model_output)}): {type(error).__name__}: {error}") from error

    def loss(self, name: str, task_output: Any, batch: Any) -> torch.Tensor:
        if name not in self.losses:
            raise ValueError(
                f"task {name!r} has no loss; give Tasks(losses={{{name!r}: fn}}) to use gradient criteria"
            )
        return self.losses[name](task_output, batch)

    def model_inputs(self, batch: Any) -> Any:
        return self.inputs(batch)

    def weight(self, name: str) -> float:
        """Task `name`'s loss weight: `weights[name]`, 1.0 for a task not named."""
        return float(self.weights.get(name, 1.0))

    @classmethod
    def from_output(cls, model_output: Any) -> Tasks:
        """One task per output leaf, named by key or position ("0", "det", "aux.1"). No losses."""
        outputs: dict[str, OutputFn] = {}
        for path, _ in _leaves(model_output, ()):
            name = ".".join(str(p) for p in path) or "output"
            outputs[name] = _getter(path)
        return cls(outputs=outputs)


def _getter(path: tuple[Any, ...]) -> OutputFn:
    def pick(output: Any) -> Any:
        for key in path:
            output = getattr(output, key) if isinstance(key, str) and not isinstance(output, Mapping) else output[key]
        return output

    return pick


def _leaves(obj: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    """Tensor leaves of a nested output with their access path (index, key or attribute name)."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _leaves(getattr(obj, f.name), path + (f.name,))
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for name in obj._fields:
            yield from _leaves(getattr(obj, name), path + (name,))
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _leaves(item, path + (i,))
    elif isinstance(obj, Mapping):
        for key, item in obj.items():
            yield from _leaves(item, path + (key,))


def output_leaves(model_output: Any) -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a nested output with its key: the access path joined by dots ("0", "det", "aux.1")."""
    return [(".".join(str(p) for p in path) or "output", tensor) for path, tensor in _leaves(model_output, ())]


def flatten_outputs(model_output: Any) -> list[torch.Tensor]:
    """Every tensor in a nested output (tensor, tuple, list, dict, namedtuple, dataclass), in a fixed order."""
    return [tensor for _, tensor in _leaves(model_output, ())]


def describe_output(model_output: Any) -> str:
    """A short description of an output's structure for error messages: "dict with keys det, lane",
    "tuple of 3", "Tensor [1, 2, 8, 8]"."""
    if isinstance(model_output, torch.Tensor):
        return f"Tensor {list(model_output.shape)}"
    if isinstance(model_output, Mapping):
        return f"{type(model_output).__name__} with keys {', '.join(map(str, model_output))}"
    if isinstance(model_output, tuple) and hasattr(model_output, "_fields"):
        return f"{type(model_output).__name__} with fields {', '.join(model_output._fields)}"
    if dataclasses.is_dataclass(model_output) and not isinstance(model_output, type):
        return (f"{type(model_output).__name__} with fields "
                f"{', '.join(f.name for f in dataclasses.fields(model_output))}")
    if isinstance(model_output, (tuple, list)):
        return f"{type(model_output).__name__} of {len(model_output)}"
    return type(model_output).__name__


def task_loss(adapter: MultiTaskAdapter, name: str, model_output: Any, batch: Any) -> torch.Tensor:
    """Task `name`'s loss on a model output, checked to be a scalar tensor (the error gives what came back)."""
    loss = adapter.loss(name, adapter.task_output(name, model_output), batch)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"the loss of task {name!r} must return a scalar tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise TypeError(f"the loss of task {name!r} must return a scalar tensor, got shape {list(loss.shape)}; "
                        "reduce it (e.g. .mean())")
    return loss.reshape(())


def outputs_by_task(adapter: MultiTaskAdapter, model_output: Any) -> dict[str, list[torch.Tensor]]:
    """Each task's output tensors, flattened."""
    return {name: flatten_outputs(adapter.task_output(name, model_output)) for name in adapter.names}


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Call a model the way torch-pruning does: a tuple/list is positional args, a dict keyword args."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)
