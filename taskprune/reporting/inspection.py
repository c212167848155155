"""`inspect()`: what `prune` would see in a model, without pruning anything.

The channel groups (coupled channels that go together), the tasks each group serves, the groups kept whole and
why, the output layers protected automatically, and the parameters and MACs of every layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from .._runtime import ordinary_tensors, preserved_modes, trainable_copy, with_autograd
from ..groups import ChannelGroup
from ..safety import first_call, output_shapes
from ..tasks import MultiTaskAdapter, Tasks, output_leaves, outputs_by_task
from .report import PruneReport

__all__ = ["GroupInfo", "LayerInfo", "ModelReport", "inspect"]


GroupInfo = ChannelGroup  # inspect's group: `layer`, `channels`, `tasks`, `out_layers`, `in_layers`, `kept_whole`


@dataclass(frozen=True)
class LayerInfo:
    """A layer with parameters of its own: its type, parameter elements and MACs on the example inputs."""

    name: str
    type: str
    params: int
    macs: float


@dataclass
class ModelReport:
    """What `inspect` found. `print(report)` shows tables; `to_dict()` / `to_json()` keep it."""

    params: int
    macs: int
    call: str
    outputs: dict[str, list[int]]
    tasks: dict[str, list[str]]
    groups: list[ChannelGroup] = field(default_factory=list)
    protected_outputs: list[str] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = [g.to_dict() for g in self.groups]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def as_report(self) -> PruneReport:
        """The same facts as a `PruneReport` of a prune that removed nothing (for `plots.plot_channels`)."""
        return PruneReport(criterion="-", target="params", ratio=0.0, reached=0.0, params_before=self.params,
                           params_after=self.params, macs_before=self.macs, macs_after=self.macs,
                           groups=list(self.groups), protected_outputs=list(self.protected_outputs),
                           warnings=list(self.warnings), call=self.call)

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        summary = Table(title="taskprune inspect", show_header=False)
        summary.add_row("params", f"{self.params:,}")
        summary.add_row("MACs", f"{self.macs:,}")
        summary.add_row("called as", self.call)
        for key, shape in self.outputs.items():
            summary.add_row(f"output {key}", f"{shape} (tasks: {', '.join(self.tasks.get(key, [])) or '-'})")
        summary.add_row("protected outputs", ", ".join(self.protected_outputs) or "-")
        for warning in self.warnings:
            summary.add_row("warning", warning)
        groups = Table(title=f"{len(self.groups)} channel groups")
        for column in ("root layer", "channels", "serves", "layers", "kept whole"):
            groups.add_column(column)
        for g in self.groups:
            serves = "shared: " + ", ".join(g.tasks) if len(g.tasks) > 1 else (g.tasks[0] if g.tasks else "none")
            groups.add_row(g.layer, str(g.channels), serves, str(len(g.out_layers) + len(g.in_layers)), g.kept_whole)
        return Group(summary, groups)

    def __str__(self) -> str:
        import io

        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO())
        console.print(self)
        return console.export_text()


@with_autograd
def inspect(model: nn.Module, example_inputs: Any, *, tasks: MultiTaskAdapter | None = None,
            protect: Sequence[str] = ()) -> ModelReport:
    """The channel groups, task attribution, protected outputs and per-layer sizes `prune` would work with.

    The model is analysed on a copy and left as it is; a frozen model (`requires_grad_(False)`) and a call inside
    `torch.no_grad()` or `torch.inference_mode()` are analysed as a plain one.

    Args:
        model: any `nn.Module`.
        example_inputs: as for `prune` (a tensor, a tuple of args, a dict of kwargs, or a list).
        tasks: the model's tasks; by default every output leaf is its own task.
        protect: fnmatch patterns of modules to keep whole, as for `prune`.

    Example:
        >>> found = taskprune.inspect(model, torch.randn(1, 3, 384, 640))
        >>> print(found)
    """
    from ..graph import PruningGraph, count_macs, count_params, layer_macs, protect_unsafe_groups

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    patterns = (protect,) if isinstance(protect, str) else tuple(protect)
    work = trainable_copy(model)  # the dependency trace follows autograd, even through frozen layers
    example_inputs = ordinary_tensors(example_inputs)
    with preserved_modes(work, eval=True):
        example_inputs, reference, call = first_call(work, example_inputs)
    adapter = tasks if tasks is not None else Tasks.from_output(reference)
    graph = PruningGraph(work, example_inputs, adapter, protect=patterns)
    protect_unsafe_groups(graph, example_inputs, output_shapes(reference))
    macs = layer_macs(work, example_inputs)
    modules = dict(work.named_modules())
    layers = [LayerInfo(name, type(module).__name__, sum(p.numel() for p in module.parameters(recurse=False)),
                        macs.get(name, 0.0))
              for name, module in modules.items() if any(True for _ in module.parameters(recurse=False))]
    by_task = outputs_by_task(adapter, reference)
    serving = {key: [task for task, tensors in by_task.items() if any(t is tensor for t in tensors)]
               for key, tensor in output_leaves(reference)}
    return ModelReport(
        params=count_params(work), macs=count_macs(work, example_inputs), call=call,
        outputs={key: list(shape) for key, shape in output_shapes(reference).items()}, tasks=serving,
        groups=[g.without_slices() for g in graph.groups],
        protected_outputs=sorted(graph.output_layers), layers=layers, warnings=list(graph.warnings))
