"""`extract()`: a model that computes only the tasks a product needs, with everything else removed.

The model is traced into a `torch.fx` graph that keeps its modules (`tracing.py`), its output is replaced
by `{task: that task's output}` for the kept tasks, and every operation and layer no kept output depends on is
deleted. The kept outputs are computed by the same operations on the same weights in the same order, so they are
bit-identical to the original model's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn

from .._runtime import ordinary_tensors, preserved_modes, restore_requires_grad, trainable_copy, with_autograd
from ..keeping.rebuild import mark_rebuild, register_rebuild
from ..prune import PruneResult
from ..reporting import PruneReport
from ..safety import first_call
from ..tasks import MultiTaskAdapter, Tasks, call_model, flatten_outputs
from .tracing import TraceFailure, trace

__all__ = ["extract"]


@with_autograd
def extract(model: nn.Module, example_inputs: Any, *, keep: Sequence[str], tasks: MultiTaskAdapter | None = None,
            ) -> PruneResult:
    """A copy of `model` that computes only the tasks in `keep` and returns `{task: output}` for them.

    Args:
        model: any `nn.Module` whose forward `torch.fx` can follow (branches on shapes and unpacking are taken as
            on `example_inputs`; see `taskprune.extract.tracing`). It is left untouched.
        example_inputs: as for `prune`.
        keep: the names of the tasks to keep (at least one).
        tasks: the model's tasks; by default every output leaf is its own task, named by key or position.

    Returns:
        A `PruneResult` whose model is a `torch.fx.GraphModule` (the original's layers under their own names),
        whose report says per dropped task which modules went and how many parameters and MACs they held, and
        which `prune`, `save` / `load` and `export_onnx` accept.

    Raises:
        ValueError: `keep` is empty or names an unknown task (the message lists the tasks).
        RuntimeError: fx cannot trace the model (the message names the call that stopped it), or a kept output
            would differ from the original's.

    Example:
        >>> parking = taskprune.extract(model, x, keep=["det", "drivable"], tasks=tasks).model
        >>> parking(x).keys()
        dict_keys(['det', 'drivable'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    work = trainable_copy(model)  # the task attribution traces autograd, even through frozen layers
    example_inputs = ordinary_tensors(example_inputs)
    with preserved_modes(work, eval=True):
        example_inputs, reference, call = first_call(work, example_inputs)
    adapter = tasks if tasks is not None else Tasks.from_output(reference)
    keep = _checked(keep, adapter.names)
    try:
        graph_module = trace(work, example_inputs)
    except TraceFailure as failure:
        raise RuntimeError(f"{failure}; extract needs a forward torch.fx can follow (no branches on tensor values, "
                           "no calls fx cannot record)") from failure
    _select(graph_module, adapter, keep)
    graph_module.graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    graph_module.training = model.training  # its layers are the copy's, each in its own mode
    _check_identical(graph_module, work, adapter, keep, example_inputs)
    mark_rebuild(graph_module, "extract", f"{type(model).__module__}.{type(model).__qualname__}",
                 keep=list(keep), by_key=_by_key(adapter, keep))
    report = _report(model, graph_module, example_inputs, adapter, keep, call)
    restore_requires_grad(graph_module, model)
    return PruneResult(model=graph_module, report=report, history=[], channel_map={}, example_inputs=example_inputs)


def _checked(keep: Sequence[str], names: Sequence[str]) -> list[str]:
    if isinstance(keep, str):
        keep = [keep]
    keep = list(dict.fromkeys(keep))
    unknown = [name for name in keep if name not in names]
    if not keep or unknown:
        what = f"unknown task(s) {unknown}" if unknown else "no task"
        raise ValueError(f"keep names {what}; tasks are: {', '.join(names)}")
    return keep


def _select(graph_module: fx.GraphModule, adapter: MultiTaskAdapter, keep: list[str]) -> None:
    """Make the graph return {task: output} for the kept tasks, reading through constructed outputs."""
    graph = graph_module.graph
    output = next(node for node in graph.nodes if node.op == "output")
    tracer = fx.proxy.GraphAppendingTracer(graph)
    with graph.inserting_before(output):
        wrap: Any = lambda a: fx.Proxy(a, tracer) if isinstance(a, fx.Node) else a  # noqa: E731
        structure: Any = fx.node.map_aggregate(output.args[0], wrap)
        selected = {task: adapter.task_output(task, structure) for task in keep}
    nodes = fx.node.map_aggregate(selected, lambda a: a.node if isinstance(a, fx.Proxy) else a)
    output.args = (_through_constructors(nodes),)


def _through_constructors(value: Any) -> Any:
    """A field read from an output object the forward built (a dataclass or a namedtuple made by a call) is the
    value it was built from, so the object, and what only it needed, can go."""
    if isinstance(value, dict):
        return {k: _through_constructors(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(*map(_through_constructors, value)) if hasattr(value, "_fields") else \
            type(value)(map(_through_constructors, value))
    if not (isinstance(value, fx.Node) and value.op == "call_function" and len(value.args) == 2):
        return value
    source, key = value.args
    built = source if isinstance(source, fx.Node) and source.op == "call_function" else None
    if built is None or not isinstance(built.target, type):
        return value
    if value.target is getattr and isinstance(key, str):
        names = [f.name for f in dataclasses.fields(built.target)] if dataclasses.is_dataclass(built.target) \
            else list(getattr(built.target, "_fields", ()))
        if key in built.kwargs:
            return _through_constructors(built.kwargs[key])
        if key in names and names.index(key) < len(built.args):
            return _through_constructors(built.args[names.index(key)])
    return value


def _check_identical(graph_module: fx.GraphModule, original: nn.Module, adapter: MultiTaskAdapter,
                     keep: list[str], example_inputs: Any) -> None:
    with torch.no_grad(), preserved_modes(graph_module, original, eval=True):
        expected = call_model(original, example_inputs)
        got = call_model(graph_module, example_inputs)
    for task in keep:
        want, have = flatten_outputs(adapter.task_output(task, expected)), flatten_outputs(got[task])
        if len(want) != len(have) or not all(torch.equal(a, b) for a, b in zip(want, have, strict=True)):
            raise RuntimeError(f"the extracted model's output for task {task!r} differs from the original's; "
                               "please report this model")


def _by_key(adapter: MultiTaskAdapter, keep: list[str]) -> bool:
    """Whether the kept tasks select `output[name]` (so `load` can rebuild them without the user's Tasks)."""
    probe = {name: object() for name in keep}
    try:
        return all(adapter.task_output(name, probe) is probe[name] for name in keep)
    except Exception:
        return False


def _report(model: nn.Module, extracted: fx.GraphModule, example_inputs: Any, adapter: MultiTaskAdapter,
            keep: list[str], call: str) -> PruneReport:
    from ..graph import count_macs, count_params, layer_macs, module_task_attribution

    attribution = module_task_attribution(model, example_inputs, adapter)
    macs = layer_macs(model, example_inputs)
    remaining = {name for name, _ in extracted.named_modules()}
    removed: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if not own or name in remaining:
            continue
        served = sorted(attribution.get(name, frozenset()) - set(keep)) or ["(no task)"]
        entry = removed.setdefault("+".join(served), {"modules": [], "params": 0, "macs": 0.0})
        entry["modules"].append(name)
        entry["params"] += own
        entry["macs"] += macs.get(name, 0.0)
    params_before, params_after = count_params(model), count_params(extracted)
    dropped = [t for t in adapter.names if t not in keep]
    return PruneReport(criterion="extract", target="tasks", ratio=0.0,
                       reached=1 - params_after / params_before if params_before else 0.0,
                       params_before=params_before, params_after=params_after,
                       macs_before=count_macs(model, example_inputs), macs_after=count_macs(extracted, example_inputs),
                       warnings=[f"kept tasks: {', '.join(keep)}; dropped: {', '.join(dropped) or 'none'}"],
                       call=call, removed=removed)


def _extract_again(fresh_model: nn.Module, example_inputs: Any, recorded: Mapping[str, Any], tasks: Any,
                   where: str) -> nn.Module:
    """`load`'s rebuild of an extracted model: extract the recorded tasks from a fresh instance again."""
    keep = list(recorded["keep"])
    if tasks is None:
        if not recorded.get("by_key"):
            raise ValueError(f"{where} is a model extracted for tasks {keep} whose outputs are picked by your "
                             "Tasks; pass the same tasks: taskprune.load(path, fresh_model, tasks=tasks)")
        tasks = Tasks(outputs={name: _output_by_key(name) for name in keep})
    return extract(fresh_model, example_inputs, keep=keep, tasks=tasks).model


def _output_by_key(name: str) -> Any:
    return lambda output: output[name]


register_rebuild("extract", _extract_again)
