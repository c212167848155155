"""The largest reduction a model can reach under prune's caps, computed without the planner, for the property
tests: a refusal ("cannot remove X%") is right only when the request is out of reach.

Every group that may be pruned (not protected, not kept whole) loses as many channels as `max_layer_ratio` and
`round_to` allow (the kept count a multiple of `round_to`), the channels are really removed through the dependency
graph, and the pruned copy is measured. A request at least a point below that maximum is reachable when no single
removal step is worth more than two points: removing channels only makes later steps cheaper, so walking from the
dense model to the maximum in such steps passes within a point of every request.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from taskprune.graph import PruningGraph, count_params, protect_unsafe_groups
from taskprune.safety import output_shapes
from taskprune.tasks import Tasks, call_model

__all__ = ["Reach", "reach"]


class Reach:
    """`maximum`: the largest reduction of the target; `step`: the largest single removal step, as a fraction."""

    def __init__(self, maximum: float, step: float) -> None:
        self.maximum, self.step = maximum, step

    def covers(self, ratio: float) -> bool:
        """Whether a request of `ratio` is certainly reachable within one point."""
        return ratio <= self.maximum - 0.01 and self.step <= 0.02


def _removable(channels: int, max_layer_ratio: float, round_to: int) -> int:
    """Channels a group may lose: at most max_layer_ratio of them and one less than all, the rest a multiple."""
    most = min(math.floor(max_layer_ratio * channels), channels - 1)
    keep = max(round_to, math.ceil((channels - most) / round_to) * round_to)
    return max(0, channels - keep)


def _owned(group: Any, shapes: dict[str, tuple[int, ...]]) -> torch.Tensor:
    """Parameter elements each root channel of `group` owns (the size of its slices)."""
    owned = torch.zeros(group.channels)
    for piece in group.slices:
        shape = shapes[piece.param]
        per_index = math.prod(shape) // shape[piece.dim]
        owned.index_add_(0, piece.root, torch.full((len(piece.root),), float(per_index)))
    return owned


def reach(model: nn.Module, example: Any, target: str, max_layer_ratio: float, round_to: int | None,
          protect: Any) -> Reach:
    """The reach of `prune(model, example, target=target, ...)` for the "params" and "channels" targets."""
    work = copy.deepcopy(model)
    with torch.no_grad():
        reference = call_model(work, example)
    adapter = Tasks.from_output(reference)
    patterns = (protect,) if isinstance(protect, str) else tuple(protect)
    graph = PruningGraph(work, example, adapter, protect=patterns)
    protect_unsafe_groups(graph, example, output_shapes(reference))
    multiple = int(round_to or 1)
    plan = {g.index: list(range(_removable(g.channels, max_layer_ratio, multiple))) for g in graph.groups
            if g.prunable and g.channels >= 2}
    plan = {index: channels for index, channels in plan.items() if channels}
    shapes = {name: tuple(p.shape) for name, p in work.named_parameters()}
    if target == "channels":
        total = sum(g.channels for g in graph.groups)
        return Reach(sum(map(len, plan.values())) / total, multiple / total)
    before = count_params(work)
    step = max((float(_owned(graph.groups[i], shapes).topk(min(multiple, graph.groups[i].channels)).values.sum())
                for i in plan), default=0.0)
    graph.apply(plan)
    return Reach(1 - count_params(work) / before, step / before)
