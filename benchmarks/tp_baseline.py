"""Plain torch-pruning as its README tells a user to prune for a parameter budget with Taylor importance:
`MetaPruner(model, example_inputs, importance=GroupTaylorImportance(), pruning_ratio=..., global_pruning=True,
isomorphic=True, max_pruning_ratio=..., iterative_steps=..., round_to=..., ignored_layers=[output layers])`,
gradients accumulated by `loss.backward()` over the scoring batches before every `pruner.step()`.

`SETUPS` holds every configuration its README and examples advise (global ranking with and without isomorphic
pruning, a per-layer cap like taskprune's `max_layer_ratio=0.8`, a uniform per-layer ratio, five iterative steps
as its Taylor example prunes); a benchmark runs them all and keeps the best on validation data.

torch-pruning's `pruning_ratio` is a fraction of channels, not of parameters, so it is bisected until the pruned
model has the parameter count asked for. The output layers a user ignores by hand are the ones whose output
channels make a task output (for DrivingNet: the detection convolutions and the two segmentation classifiers).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from taskprune.tasks import MultiTaskAdapter, flatten_outputs, task_loss

__all__ = ["SETUPS", "TorchPruningSetup", "output_layers", "prune_like_torch_pruning", "prune_with_setup"]


@dataclass(frozen=True)
class TorchPruningSetup:
    """One configuration of torch-pruning's MetaPruner with GroupTaylorImportance."""

    global_pruning: bool = True
    isomorphic: bool = False
    max_pruning_ratio: float = 1.0
    iterative_steps: int = 1
    round_to: int | None = 8


SETUPS: dict[str, TorchPruningSetup] = {
    "tp_taylor_global": TorchPruningSetup(),  # the grid's first baseline: global ranking, no cap
    "tp_global_cap": TorchPruningSetup(max_pruning_ratio=0.8),
    "tp_global_iso": TorchPruningSetup(isomorphic=True, max_pruning_ratio=0.8),
    "tp_local": TorchPruningSetup(global_pruning=False, max_pruning_ratio=0.8),
    "tp_global_iso_iter5": TorchPruningSetup(isomorphic=True, max_pruning_ratio=0.8, iterative_steps=5),
}


def output_layers(model: nn.Module, example_inputs: torch.Tensor) -> list[str]:
    """Names of the layers whose output channels are the model's outputs (what a user passes as ignored_layers):
    the last convolution or linear layer before each output tensor, found from the autograd graph."""
    modules = {m: n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    produced: dict[Any, str] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: produced.__setitem__(o.grad_fn, modules[m]))
             for m in modules]
    try:
        with torch.enable_grad():
            outputs = flatten_outputs(model(example_inputs))
    finally:
        for hook in hooks:
            hook.remove()
    names = []
    for tensor in outputs:
        fn = tensor.grad_fn
        while fn is not None and fn not in produced:  # through reshapes and activations to the last layer
            fn = next((nxt for nxt, _ in fn.next_functions if nxt is not None), None)
        if fn is not None:
            names.append(produced[fn])
    return sorted(set(names))


def prune_like_torch_pruning(teacher: nn.Module, example_inputs: torch.Tensor, tasks: MultiTaskAdapter,
                             batches: list[Any], target_params: float, round_to: int | None = 8,
                             iterations: int = 12, setup: TorchPruningSetup | None = None,
                             ) -> tuple[nn.Module, dict[str, list[int]]]:
    """The torch-pruning student nearest `target_params` parameters, and its channel map (kept indices per layer,
    read from torch-pruning's pruning history) for distillation. `setup` defaults to global ranking with
    `round_to`; its own `round_to` wins when given."""
    setup = setup or TorchPruningSetup(round_to=round_to)
    base = copy.deepcopy(teacher).eval()
    ignored = set(output_layers(base, example_inputs))
    low, high, best = 0.0, 0.95, None
    for _ in range(iterations):
        ratio = (low + high) / 2
        model, history = _pruned(base, example_inputs, ratio, setup, ignored, tasks, batches)
        params = sum(p.numel() for p in model.parameters())
        if best is None or abs(params - target_params) < abs(best[0] - target_params):
            best = (params, model, history)
        low, high = (ratio, high) if params > target_params else (low, ratio)
    _, model, history = best
    return model, _channel_map(teacher, example_inputs, history)


def prune_with_setup(teacher: nn.Module, example_inputs: torch.Tensor, ratio: float, setup: TorchPruningSetup,
                     ignored: set[str], tasks: MultiTaskAdapter, batches: list[Any],
                     ) -> tuple[nn.Module, dict[str, list[int]]]:
    """`teacher` (left as it is) pruned by torch-pruning at channel ratio `ratio` in `setup`, with the layers
    named in `ignored` left whole, and its channel map."""
    model, history = _pruned(copy.deepcopy(teacher).eval(), example_inputs, ratio, setup, ignored, tasks, batches)
    return model, _channel_map(teacher, example_inputs, history)


def _accumulate_gradients(model: nn.Module, tasks: MultiTaskAdapter, batches: list[Any]) -> None:
    model.zero_grad(set_to_none=True)
    for batch in batches:
        output = model(tasks.model_inputs(batch))
        sum(tasks.weight(t) * task_loss(tasks, t, output, batch) for t in tasks.names).backward()


def _pruned(base: nn.Module, example_inputs: torch.Tensor, ratio: float, setup: TorchPruningSetup,
            ignored: set[str], tasks: MultiTaskAdapter, batches: list[Any]) -> tuple[nn.Module, list]:
    work = copy.deepcopy(base)
    pruner = tp.pruner.MetaPruner(work, example_inputs, importance=tp.importance.GroupTaylorImportance(),
                                  pruning_ratio=ratio, global_pruning=setup.global_pruning,
                                  isomorphic=setup.isomorphic, max_pruning_ratio=setup.max_pruning_ratio,
                                  iterative_steps=setup.iterative_steps, round_to=setup.round_to,
                                  ignored_layers=[m for n, m in work.named_modules() if n in ignored])
    for _ in range(setup.iterative_steps):  # its Taylor example: fresh gradients before every step
        _accumulate_gradients(work, tasks, batches)
        pruner.step()
    work.zero_grad(set_to_none=True)
    return work.eval(), pruner.DG.pruning_history()


def _channel_map(teacher: nn.Module, example_inputs: torch.Tensor, history: list) -> dict[str, list[int]]:
    """Replay torch-pruning's history on a copy of the teacher and record, for every layer whose output channels
    a step removes (the coupled BatchNorms too, which the history does not name), the original indices it keeps."""
    work = copy.deepcopy(teacher).eval()
    graph = tp.DependencyGraph().build_dependency(work, example_inputs)
    modules, names = dict(work.named_modules()), {m: n for n, m in work.named_modules()}
    kept: dict[str, list[int]] = {}
    for name, is_out, idxs in history:
        module = modules[name]
        pruner = graph.get_pruner_of_module(module)
        handler = pruner.prune_out_channels if is_out else pruner.prune_in_channels
        group = graph.get_pruning_group(module, handler, list(idxs))
        for item in group:
            target = item.dep.target.module
            if graph.is_out_channel_pruning_fn(item.dep.handler) and target in names:
                width = graph.get_out_channels(target)
                current = kept.setdefault(names[target], list(range(width)))
                removed = set(int(i) for i in item.idxs)
                kept[names[target]] = [orig for pos, orig in enumerate(current) if pos not in removed]
        group.prune()
    return kept
