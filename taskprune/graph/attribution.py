"""Which tasks every layer serves: a networkx graph of the traced modules, with one sink node per task.

A task is attached to every traced model output its tensors were computed from (found by walking autograd from the
task's output), so a task output derived from several outputs (a sum, a slice) is still attributed correctly.
A layer serves task t when the sink of t is among its descendants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..tasks import MultiTaskAdapter, outputs_by_task

__all__ = ["NodeInfo", "attribute_tasks", "autograd_reach"]


@dataclass(frozen=True)
class NodeInfo:
    """One traced operation: a key unique in the graph, a readable name, its autograd node and its inputs."""

    key: int
    name: str
    grad_fn: Any
    inputs: tuple[int, ...]
    is_output: bool


def autograd_reach(tensors: list[torch.Tensor]) -> set[Any]:
    """Every autograd node the given tensors were computed from."""
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    seen: set[Any] = set()
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        stack.extend(nxt for nxt, _ in getattr(fn, "next_functions", ()) if nxt is not None)
    return seen


def attribute_tasks(nodes: list[NodeInfo], adapter: MultiTaskAdapter, model_output: Any,
                    ) -> dict[int, frozenset[str]]:
    """Node key -> names of the tasks whose outputs it reaches."""
    import networkx as nx

    graph = nx.DiGraph()
    for node in nodes:
        graph.add_node(node.key)
        graph.add_edges_from((source, node.key) for source in node.inputs)
    outputs = [node for node in nodes if node.is_output]
    for task, tensors in outputs_by_task(adapter, model_output).items():
        reached = autograd_reach(tensors)
        sink = ("task", task)
        graph.add_node(sink)
        for node in outputs:
            if node.grad_fn in reached:
                graph.add_edge(node.key, sink)
    attribution: dict[int, set[str]] = {node.key: set() for node in nodes}
    for task in adapter.names:
        for key in nx.ancestors(graph, ("task", task)):
            if key in attribution:
                attribution[key].add(task)
    return {key: frozenset(tasks) for key, tasks in attribution.items()}
